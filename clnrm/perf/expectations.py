"""``[[expect.performance]]``: budgets on the measured spans, and regressions per entry.

Each entry gets one result.  Absolute bounds (``min``/``max``) are read off the spans
of the measured window; ``max_regression_pct`` runs the same significance test as
``[performance]`` on that entry's metric alone, with the entry's percentage as the
allowed worsening, so a failure states effect, interval and confidence too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clnrm.results import ValidationResult, ValidationStatus

if TYPE_CHECKING:
    from clnrm.otel.span import Span
    from clnrm.perf.baseline import Baseline, RunMeasurement
    from clnrm.perf.metrics import Window
    from clnrm.scenario.expect import PerformanceExpectation
    from clnrm.scenario.layers import Performance
    from clnrm.validators.base import Declarations


def judge_expectation(e: PerformanceExpectation, index: int, *, spans: Sequence[Span],
                      window: Window | None, run: RunMeasurement,
                      baseline: Baseline | None, perf: Performance | None,
                      where: Declarations, seed: int = 0,
                      no_baseline: str = "") -> ValidationResult:
    at = where.at(("expect", "performance", index))
    label = e.name or _label(e)
    if e.max is not None or e.min is not None:
        bound = _bounds(e, label, _label(e), spans, window, at)
        if bound.status is not ValidationStatus.PASS or e.max_regression_pct is None:
            return bound
    return _regression(e, label, run, baseline, perf, at, seed, no_baseline)


def _label(e: PerformanceExpectation) -> str:
    what = {"duration_ms": "duration", "throughput_rps": "throughput",
            "error_rate": "error rate", "run_duration_ms": "run duration"}[e.metric]
    stat = f"p{e.percentile:g} " if e.percentile is not None else ""
    return f"{stat}{what}" + (f" of {e.span!r}" if e.span else "")


def _value(e: PerformanceExpectation, spans: Sequence[Span],
           window: Window | None) -> tuple[float | None, float | None, str]:
    """``(low, high, what)``: the figure the bounds apply to (low for ``min``, high for
    ``max``; equal unless every span is bounded), or Nones with the reason."""
    from clnrm.perf.judge import in_window
    from clnrm.perf.metrics import entry_servers, percentile

    if e.metric == "run_duration_ms":
        tests = [s for s in spans if s.name == "clnrm.test" and s.duration_ms is not None]
        if not tests:
            return None, None, "no clnrm.test span"
        ms = max(s.duration_ms or 0.0 for s in tests)
        return ms, ms, f"{ms:.1f} ms"
    kept = in_window(spans, window)
    chosen = [s for s in kept if s.name == e.span] if e.span else entry_servers(kept)
    what = f"spans named {e.span!r}" if e.span else "requests (entry server spans)"
    if not chosen:
        return None, None, f"no {what} in the measured window"
    if e.metric == "throughput_rps":
        seconds = ((window[1] - window[0]) if window else
                   (max(s.end_time_unix_nano or 0 for s in kept)
                    - min(s.start_time_unix_nano or 0 for s in kept))) / 1e9
        rate = len(chosen) / seconds if seconds > 0 else 0.0
        return rate, rate, f"{rate:.2f}/s ({len(chosen)} {what} in {seconds:.2f} s)"
    if e.metric == "error_rate":
        share = sum(1 for s in chosen if s.status == "ERROR") / len(chosen)
        return share, share, f"{share:.1%} of {len(chosen)} {what}"
    durations = sorted(s.duration_ms or 0.0 for s in chosen)
    if e.percentile is not None:
        p = percentile(durations, e.percentile)
        return p, p, f"p{e.percentile:g} = {p:.2f} ms over {len(durations)} {what}"
    return (durations[0], durations[-1],
            f"{durations[0]:.2f}..{durations[-1]:.2f} ms over {len(durations)} {what}")


def _bounds(e: PerformanceExpectation, label: str, what: str, spans: Sequence[Span],
            window: Window | None, at: str) -> ValidationResult:
    low, high, seen = _value(e, spans, window)
    unit = {"duration_ms": " ms", "run_duration_ms": " ms", "throughput_rps": "/s",
            "error_rate": ""}[e.metric]
    parts = []
    if e.min is not None:
        parts.append(f">= {e.min:g}{unit}")
    if e.max is not None:
        parts.append(f"<= {e.max:g}{unit}")
    expected = f"{what} " + " and ".join(parts)
    if low is None or high is None:
        return ValidationResult(validator="performance", expectation=label,
                                status=ValidationStatus.FAIL, expected=expected, seen=seen,
                                declared_at=at)
    ok = (e.min is None or low >= e.min) and (e.max is None or high <= e.max)
    return ValidationResult(validator="performance", expectation=label,
                            status=ValidationStatus.PASS if ok else ValidationStatus.FAIL,
                            message=seen, expected=expected, seen=seen, declared_at=at)


def _regression(e: PerformanceExpectation, label: str, run: RunMeasurement,
                baseline: Baseline | None, perf: Performance | None, at: str, seed: int,
                no_baseline: str) -> ValidationResult:
    from clnrm.perf.judge import describe_confidence
    from clnrm.perf.regression import Thresholds, compare

    assert e.max_regression_pct is not None
    metric = f"latency:{e.span}" if e.metric == "duration_ms" else "throughput"
    expectation = f"{label} vs baseline"
    if baseline is None:
        return ValidationResult(validator="performance", expectation=expectation,
                                status=ValidationStatus.SKIP,
                                message=no_baseline or "no baseline to compare with",
                                declared_at=at)
    current = run.metrics.get(metric)
    if current is None or not baseline.samples(metric):
        where_missing = "this run" if current is None else "the baseline"
        return ValidationResult(validator="performance", expectation=expectation,
                                status=ValidationStatus.SKIP,
                                message=f"{metric} was not measured in {where_missing}",
                                declared_at=at)
    higher = e.metric == "duration_ms"
    statistic = f"p{e.percentile:g}" if e.percentile is not None and higher else \
        ("p95" if higher else "mean")
    alpha = e.alpha or (perf.alpha if perf is not None else 0.01)
    th = Thresholds(p95_latency_increase_max_percent=e.max_regression_pct if higher else None,
                    throughput_decrease_max_percent=None if higher else e.max_regression_pct,
                    alpha=alpha)
    [v] = compare({metric: baseline.samples(metric)}, {metric: current.samples},
                  thresholds=th, statistics={metric: statistic},
                  directions={metric: current.direction}, seed=seed)
    sign = "+" if higher else "-"
    status = (ValidationStatus.SKIP if v.test == "none" else
              ValidationStatus.FAIL if v.fails else ValidationStatus.PASS)
    text = describe_confidence(v)
    return ValidationResult(
        validator="performance", expectation=expectation, status=status, message=text,
        expected=f"{statistic} within {sign}{e.max_regression_pct:g}% of the baseline, or no "
                 f"significant change (alpha={alpha:g})",
        seen=text, declared_at=at)
