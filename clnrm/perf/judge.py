"""From spans and samples to metrics, and from metrics to verdicts a test result carries.

:func:`run_measurement` turns what one test measured into the metrics the memory
keeps (:class:`~clnrm.perf.baseline.RunMeasurement`):

- ``latency:<span name>``: durations of every SERVER and CLIENT span of that name in
  the measured window (ms, p95 reported);
- ``throughput``: requests (entry SERVER spans) per second, one sample per slice of
  the window (so a run gives a distribution, not one number; mean reported);
- ``load:latency``: the load driver's latencies, corrected for coordinated omission;
- ``cpu:<service>`` and ``memory:<service>``: the Docker stats samples (kept for the
  history; compared only when ``metrics`` asks for them).

:func:`judge_verdicts` turns :func:`clnrm.perf.regression.compare` verdicts into
``ValidationResult`` s (validator ``performance``) that say effect size, interval,
p-value and confidence; :func:`judge_expectations` judges ``[[expect.performance]]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from clnrm.perf.baseline import Baseline, MetricRun, RunMeasurement
from clnrm.perf.fingerprint import Fingerprint
from clnrm.results import ValidationResult, ValidationStatus

if TYPE_CHECKING:
    from clnrm.otel.span import Span
    from clnrm.perf.load import LoadRunResult
    from clnrm.perf.metrics import PerfMeasurements, Window
    from clnrm.perf.regression import Thresholds, Verdict
    from clnrm.perf.sampler import ContainerSample
    from clnrm.scenario.expect import PerformanceExpectation
    from clnrm.scenario.layers import Performance
    from clnrm.validators.base import Declarations

COMPARED_BY_DEFAULT: Final = ("latency", "throughput", "load")
"""Metric kinds judged against the baseline unless ``[performance] metrics`` says otherwise."""
SLICES: Final = 10
"""Throughput is counted in this many slices of the window (at most 1 s each)."""
_TIMED_KINDS: Final = frozenset({"server", "client"})


def in_window(spans: Iterable[Span], window: Window | None) -> list[Span]:
    """Spans that started inside ``window`` (all timed spans when None)."""
    out = []
    for s in spans:
        start = s.start_time_unix_nano
        if start is None or s.end_time_unix_nano is None:
            continue
        if window is None or window[0] <= start < window[1]:
            out.append(s)
    return out


def run_measurement(*, scenario: str, run_id: str, fingerprint: Fingerprint, file: str,
                    spans: Sequence[Span], measured: PerfMeasurements,
                    window: Window | None, load: LoadRunResult | None = None,
                    load_warmup_s: float = 0.0,
                    container_samples: Sequence[ContainerSample] = ()) -> RunMeasurement:
    """Every metric of one run (see the module docstring for the names)."""
    from clnrm.perf.metrics import entry_servers

    kept = in_window(spans, window)
    timed_names = {s.name for s in kept if s.kind in _TIMED_KINDS}
    metrics: dict[str, MetricRun] = {}
    for name in sorted(timed_names):
        summary = measured.latency.get(name)
        if summary is not None and summary.samples_ms:
            metrics[f"latency:{name}"] = _metric(f"latency:{name}", "ms", "higher_is_worse",
                                                 "p95", summary.samples_ms)
    rates = throughput_samples(entry_servers(kept), window)
    if rates:
        metrics["throughput"] = _metric("throughput", "rps", "lower_is_worse", "mean", rates)
    if load is not None:
        corrected = [r.latency_ms for r in load.requests
                     if r.latency_ms is not None and r.intended_ms >= load_warmup_s * 1000]
        if corrected:
            metrics["load:latency"] = _metric("load:latency", "ms", "higher_is_worse", "p95",
                                              corrected)
    by_service: dict[str, list[ContainerSample]] = {}
    for sample in container_samples:
        by_service.setdefault(sample.service, []).append(sample)
    for service, rows in sorted(by_service.items()):
        cpu = [r.cpu_pct for r in rows if r.cpu_pct is not None]
        if cpu:
            metrics[f"cpu:{service}"] = _metric(f"cpu:{service}", "%", "higher_is_worse",
                                                "mean", cpu)
        mem = [r.mem_bytes / 2**20 for r in rows]
        if mem:
            metrics[f"memory:{service}"] = _metric(f"memory:{service}", "MiB",
                                                   "higher_is_worse", "mean", mem)
    return RunMeasurement(scenario=scenario, run_id=run_id, fingerprint=fingerprint,
                          file=file, metrics=metrics)


def throughput_samples(requests: Sequence[Span], window: Window | None) -> list[float]:
    """Requests per second in :data:`SLICES` equal slices of the window (at most 1 s each,
    at least 0.1 s); a run too short for two slices gives no samples."""
    starts = sorted(s.start_time_unix_nano for s in requests
                    if s.start_time_unix_nano is not None)
    if not starts:
        return []
    lo, hi = window if window is not None else (starts[0], starts[-1] + 1)
    span_s = (hi - lo) / 1e9
    width = min(1.0, max(0.1, span_s / SLICES))
    n = int(span_s / width)
    if n < 2:
        return []
    counts = [0] * n
    for start in starts:
        i = int((start - lo) / 1e9 / width)
        if 0 <= i < n:
            counts[i] += 1
    return [c / width for c in counts]


def _metric(name: str, unit: str, direction: str, statistic: str,
            samples: Sequence[float]) -> MetricRun:
    from clnrm.perf.metrics import percentile
    from clnrm.perf.regression import run_location

    values = sorted(float(x) for x in samples if math.isfinite(x))
    value = run_location(values, location_of(name, direction)) if values else math.nan
    if not math.isfinite(value):
        value = sum(values) / len(values) if values else 0.0
    return MetricRun(
        metric=name, unit=unit, direction=direction, statistic=statistic,  # type: ignore[arg-type]
        value=value, count=len(values), mean=sum(values) / len(values) if values else None,
        p50=percentile(values, 50) if values else None,
        p95=percentile(values, 95) if values else None,
        p99=percentile(values, 99) if values else None,
        max=values[-1] if values else None, samples=values)


# -- which metrics are compared, and by which per-run statistic ----------------------------

LATENCY_LOCATION: Final = "p10"
"""What the run-level test compares for latencies (``latency:*``, ``load:latency``): each
run's 10th percentile (Harrell-Davis).  Why not the middle: on a shared 2-CPU machine
contention only ever adds delay, to some requests of some runs, so it moves a run's
middle and tail far more than its fast end, while a real regression (a slower query, a
longer sleep) moves every quantile.  Measured through ``clnrm run``
(``bench/regression_calibration.json``): on a fixed 20 ms service the run-to-run drift
(SD of the log) of the 20 % trimmed mean was 12 %, of the p95 47 %, of the p10 1.2 %."""
TAIL_STATISTIC: Final = "p95"
"""The tail check's per-run statistic: a regression only in the slow requests (a lock
held now and then) leaves the p10 alone, so each latency is also tested on its p95."""
TAIL_MIN_EFFECT_PCT: Final = 50.0
"""The tail check's practical floor: the p95 must grow by more than this, and
significantly against the run-to-run drift the baseline's own p95s show (measured at
47-96 % on the shared machine), before a tail regression is reported.

Reported, not failing, unless ``[performance] fail_on_tail = true``: on a machine whose
load changes between the baseline and the run, the tail moves with the load and a
20 ms sleep's p95 went from 23 ms to 45-95 ms in A/A runs (7 of 19 would have failed,
``bench/regression_e2e.py``); a tail regression cannot be told apart from contention
there, so by default it is a warning with its figures, never silent."""
TAIL_SUFFIX: Final = " (tail)"
"""Appended to a latency's name in the tail check's verdicts."""
_LOCATED_KINDS: Final = frozenset({"latency", "load"})


def location_of(metric: str, direction: str = "higher_is_worse") -> str:
    """The per-run location the test compares for ``metric``: :data:`LATENCY_LOCATION`
    for latencies, the 20 % trimmed mean of logs for everything else (rates, CPU,
    memory: contention does not only push those one way)."""
    kind = metric.partition(":")[0]
    if kind in _LOCATED_KINDS and direction == "higher_is_worse":
        return LATENCY_LOCATION
    return "trimmed"



def compared(metric: str, perf: Performance | None) -> bool:
    """Whether ``metric`` is judged against the baseline under ``perf``'s settings."""
    kind, _, rest = metric.partition(":")
    wanted = perf.metrics if perf is not None and perf.metrics else COMPARED_BY_DEFAULT
    if metric not in wanted and kind not in wanted:
        return False
    if kind == "latency" and perf is not None and perf.spans:
        return rest in perf.spans
    return True


def thresholds_of(perf: Performance | None, *, alpha: float | None = None) -> Thresholds:
    """The TOML's thresholds; ``alpha`` overrides the file's (a check's share of it)."""
    from clnrm.perf.regression import Thresholds

    if perf is None:
        return Thresholds() if alpha is None else Thresholds(alpha=alpha)
    return Thresholds(p95_latency_increase_max_percent=perf.latency_threshold_pct,
                      throughput_decrease_max_percent=perf.throughput_decrease_max_percent,
                      fail_on_regression=perf.fail_on_regression,
                      alpha=perf.alpha if alpha is None else alpha)


def compare_runs(baseline: Baseline, run: RunMeasurement, perf: Performance | None, *,
                 seed: int = 0, alpha: float | None = None) -> list[Verdict]:
    """Verdicts for every compared metric that both the baseline and ``run`` measured
    (at ``alpha`` when given, else at the file's), each on its :func:`location_of`;
    then the tail check of every latency (``"<metric> (tail)"``: its p95 per run, beyond
    :data:`TAIL_MIN_EFFECT_PCT`), a family of its own at the same ``alpha``."""
    from clnrm.perf.regression import compare

    names = [m for m in run.metrics if compared(m, perf) and baseline.samples(m)]
    current = {m: run.metrics[m].samples for m in names}
    base = {m: baseline.samples(m) for m in names}
    directions = {m: run.metrics[m].direction for m in names}
    th = thresholds_of(perf, alpha=alpha)
    verdicts = compare(base, current, thresholds=th, directions=directions,
                       statistics={m: run.metrics[m].statistic for m in names}, seed=seed,
                       locations={m: location_of(m, directions[m]) for m in names})
    tails = [m for m in names if location_of(m, directions[m]) != "trimmed"]
    if not tails:
        return verdicts
    fail_on_tail = perf is not None and perf.fail_on_tail
    tail_th = th.model_copy(update={
        "min_effect_percent": max(th.min_effect_percent, TAIL_MIN_EFFECT_PCT),
        "fail_on_regression": th.fail_on_regression and fail_on_tail,
        "reported_because": th.reported_because if not th.fail_on_regression
        else "the tail moves with the machine's load; fail_on_tail = true fails on it"})
    return verdicts + compare(
        {m + TAIL_SUFFIX: base[m] for m in tails}, {m + TAIL_SUFFIX: current[m] for m in tails},
        thresholds=tail_th, directions={m + TAIL_SUFFIX: directions[m] for m in tails},
        statistics={m + TAIL_SUFFIX: TAIL_STATISTIC for m in tails}, seed=seed + 1,
        locations={m + TAIL_SUFFIX: TAIL_STATISTIC for m in tails})


# -- the baseline policy: one run judged as `clnrm run` judges it -------------------------

FILL_RUNS: Final = 10
"""Runs a new baseline collects before any run is judged (the default of ``[performance]
baseline_runs``).  Ten, not three: the run-level test estimates run-to-run drift from
the baseline runs, and with three its t-test has two degrees of freedom, too few to
see +10 % through a few percent of drift (``bench/regression.py``)."""
NEW_RUN_ALPHA_SHARE: Final = 0.01
"""Share of ``alpha`` spent on the new run alone against the baseline (1e-4 at the
default 0.01), for its location check and, apart, its tail check.  Strict, because
one-off slow runs have a heavier tail than the t-test assumes; no stricter, because
with the p10 (:data:`LATENCY_LOCATION`) drifting ~1 % run to run a +10 % slowdown is
~7 drift SDs, seen by the first slow run at this level (t > 6.0 on 9 df) but not at
1e-6 (t > 10.7).  With the trimmed mean (12 % drift) the share had to be 1e-4, and the
first slow run was never caught (``bench/regression.py``, ``bench/regression_e2e.py``)."""
HISTORY_ALPHA_SHARE: Final = 0.9
"""Share of ``alpha`` spent on the history check (0.009 at the default): an upward change
point in the runs' typical values, confirmed by comparing the runs since it with the
runs before it.  A regression is a shift that lasts; this check sees it once it has
lasted two runs.  The rest of ``alpha`` is left for the repeated looks of later runs."""
HISTORY_MIN_BEFORE: Final = 3
"""Runs needed before a change point for the history check to confirm it (the
run-level test needs three to estimate run-to-run drift)."""

JudgementState = Literal["no_baseline", "filling", "judged"]


@dataclass(frozen=True)
class RunJudgement:
    """What the baseline policy decided about one run (:func:`judge_run`).

    ``state``: ``no_baseline`` (this run starts one), ``filling`` (the baseline has
    fewer than ``fill_to`` runs: nothing judged, the run joins it) or ``judged``.
    ``verdicts``: the new run against the baseline; ``shifts``: confirmed or rejected
    shifts over the history.  ``as_baseline``: record the run as a baseline run.
    """

    state: JudgementState
    baseline: Baseline | None
    fill_to: int
    message: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    shifts: list[Verdict] = field(default_factory=list)
    as_baseline: bool = False

    @property
    def all_verdicts(self) -> list[Verdict]:
        return [*self.verdicts, *self.shifts]

    @property
    def regressed(self) -> bool:
        return any(v.regressed for v in self.all_verdicts)

    @property
    def fails(self) -> bool:
        return any(v.fails for v in self.all_verdicts)


def judge_run(stored: Sequence[RunMeasurement], run: RunMeasurement,
              perf: Performance | None, *, seed: int = 0, baseline_file: Baseline | None = None,
              not_recorded: str = "") -> RunJudgement:
    """Judge ``run`` as ``clnrm run`` does, given what the memory holds.

    ``stored``: every stored run of the scenario on the run's fingerprint, oldest first
    (:meth:`~clnrm.perf.baseline.BaselineStore.runs`); ``baseline_file``: the
    ``[performance] baseline`` file, which replaces the stored baseline and is never
    filled.  ``not_recorded``: why the run will not be stored ("" if it will).

    The policy (docs/performance.md, measured by ``bench/regression.py``):

    1. no baseline: this run starts one, nothing is judged;
    2. a stored baseline with fewer than ``baseline_runs`` (:data:`FILL_RUNS`) runs:
       nothing is judged ("baseline 4/10: not judged yet") and the run joins it;
    3. a full baseline: the run is compared with it at ``alpha`` x
       :data:`NEW_RUN_ALPHA_SHARE`, and the history (stored runs and this one) is
       checked for a lasting shift at ``alpha`` x :data:`HISTORY_ALPHA_SHARE`.
    """
    from clnrm.perf.baseline import select_baseline

    fill_to = perf.baseline_runs if perf is not None else FILL_RUNS
    alpha = perf.alpha if perf is not None else 0.01
    earlier = [r for r in stored if r.run_id != run.run_id]
    baseline = baseline_file or select_baseline(earlier, runs=fill_to)
    where = f"{run.scenario} on {run.fingerprint.key}"
    if baseline is None:
        head = f"no baseline for {where}: "
        return RunJudgement("no_baseline", None, fill_to,
                            head + (f"this run is not recorded ({not_recorded})"
                                    if not_recorded else "this run is now the baseline"),
                            as_baseline=not not_recorded)
    have = len(baseline.runs)
    if baseline_file is None and have < fill_to:
        if not_recorded:
            tail = f"this run is not recorded ({not_recorded})"
        else:
            left = fill_to - have - 1
            tail = ("this run joins it; runs are judged from the next run on" if left == 0
                    else f"this run joins it; {left} more run{'s' if left != 1 else ''} "
                         "before runs are judged")
        return RunJudgement("filling", baseline, fill_to,
                            f"baseline {have}/{fill_to} runs for {where}: not judged yet; "
                            + tail, as_baseline=not not_recorded)
    verdicts = compare_runs(baseline, run, perf, seed=seed, alpha=alpha * NEW_RUN_ALPHA_SHARE)
    shifts = history_shifts([*earlier, run], perf, seed=seed,
                            alpha=alpha * HISTORY_ALPHA_SHARE)
    return RunJudgement("judged", baseline, fill_to, verdicts=verdicts, shifts=shifts)


def history_shifts(runs: Sequence[RunMeasurement], perf: Performance | None, *,
                   alpha: float, seed: int = 0) -> list[Verdict]:
    """Lasting shifts of the newest run's compared metrics over ``runs`` (oldest first).

    Per metric: e-divisive change points of the runs' typical values at ``alpha``; when
    the newest one came after the last baseline run (a step among the baseline runs is
    part of the accepted reference) and moved the metric the worse way, the runs since
    it are compared with
    the runs between it and the change point before (at least
    :data:`HISTORY_MIN_BEFORE`) by the same run-level test, at ``alpha`` (Holm across
    the metrics tested).  One verdict per metric tested; its message names the run
    the shift started with.
    """
    from clnrm.perf.changepoint import change_points
    from clnrm.perf.regression import compare, run_location

    if not runs:
        return []
    newest = runs[-1]
    before: dict[str, list[list[float]]] = {}
    after: dict[str, list[list[float]]] = {}
    since: dict[str, str] = {}
    for name, metric in newest.metrics.items():
        if not compared(name, perf) or not metric.samples:
            continue
        where = location_of(name, metric.direction)
        kept = [r for r in runs if name in r.metrics and r.metrics[name].samples
                and math.isfinite(r.metrics[name].value)]
        series = [r.metrics[name] for r in kept]
        # from the samples, not the stored value: runs stored before the location changed
        values = [run_location(m.samples, where) for m in series]
        ids = [r.run_id for r in kept]
        # a shift among the baseline runs is part of the accepted reference
        first_new = max((i + 1 for i, r in enumerate(kept) if r.baseline), default=0)
        if len(series) < HISTORY_MIN_BEFORE + 2:
            continue
        points = change_points(values, alpha=alpha, seed=seed)
        if not points:
            continue
        last = points[-1]
        worse = last.change_pct > 0 if metric.direction == "higher_is_worse" \
            else last.change_pct < 0
        start = points[-2].index if len(points) > 1 else 0
        if not worse or last.index < first_new or last.index - start < HISTORY_MIN_BEFORE:
            continue
        before[name] = [m.samples for m in series[start:last.index]]
        after[name] = [m.samples for m in series[last.index:]]
        since[name] = f"{ids[last.index]} ({len(after[name])} runs since, " \
                      f"{len(before[name])} before)"
    if not after:
        return []
    verdicts = compare(before, after, thresholds=thresholds_of(perf, alpha=alpha),
                       directions={m: newest.metrics[m].direction for m in after},
                       statistics={m: newest.metrics[m].statistic for m in after}, seed=seed,
                       locations={m: location_of(m, newest.metrics[m].direction)
                                  for m in after})
    return [v.model_copy(update={"message": f"shift since run {since[v.metric]}: "
                                            f"{v.message}"}) for v in verdicts]


# -- verdicts as validation results -----------------------------------------------------


def describe_confidence(v: Verdict) -> str:
    """The verdict's own sentence plus its confidence, the form every result states.

    The confidence is ``1 - p_adjusted``: how sure the test is that the metric got
    worse at all (not that it got worse by more than the allowed percentage)."""
    if v.test == "none":
        return v.message
    return f"{v.message}; confidence it got worse {v.confidence:.1%}"


def judge_verdicts(verdicts: Sequence[Verdict], baseline: Baseline, perf: Performance | None,
                   where: Declarations, *, alpha: float | None = None,
                   history: bool = False) -> list[ValidationResult]:
    """One result per verdict: FAIL when it fails, SKIP when it could not be judged.

    ``alpha``: the level the verdicts were reached at (a check's share of the file's);
    ``history``: the verdicts are :func:`history_shifts` (the runs since a change point
    against the runs before it), not the new run against the baseline."""
    th = thresholds_of(perf, alpha=alpha)
    at = where.at(("performance",))
    runs = len(baseline.runs)
    out = []
    for v in verdicts:
        worse = "increase" if v.direction == "higher_is_worse" else "decrease"
        sign = "+" if v.direction == "higher_is_worse" else "-"
        than = "the runs before the shift" if history else "the baseline"
        if v.allowed_pct is not None:
            expected = (f"{v.statistic} within {sign}{v.allowed_pct:g}% of {than}, or no "
                        f"significant {worse} (alpha={th.alpha:g})")
        else:
            expected = (f"no significant {worse} beyond {th.min_effect_percent:g}% "
                        f"over {than} (alpha={th.alpha:g})" if history else
                        f"no significant {worse} beyond {th.min_effect_percent:g}% "
                        f"(alpha={th.alpha:g})")
        if v.test == "none":
            status = ValidationStatus.SKIP
        elif v.fails:
            status = ValidationStatus.FAIL
        else:
            status = ValidationStatus.PASS
        what = (f"{v.metric} over the history (a change point, {baseline.fingerprint.key})"
                if history else
                f"{v.metric} vs baseline ({runs} run{'s' if runs != 1 else ''}, "
                f"{baseline.fingerprint.key})")
        out.append(ValidationResult(
            validator="performance", expectation=what,
            status=status, message=describe_confidence(v), expected=expected,
            seen=describe_confidence(v), declared_at=at))
    return out


def missing_spans(perf: Performance | None, run: RunMeasurement, baseline: Baseline | None,
                  where: Declarations) -> list[ValidationResult]:
    """Spans named in ``[performance] spans`` that this run (or the baseline) never had."""
    if perf is None or not perf.spans:
        return []
    out = []
    for name in perf.spans:
        metric = f"latency:{name}"
        if metric not in run.metrics:
            out.append(ValidationResult(
                validator="performance", expectation=f"{metric} measured",
                status=ValidationStatus.FAIL, expected=f"server or client spans named {name!r}",
                seen="none in the measured window", declared_at=where.at(("performance",
                                                                          "spans"))))
        elif baseline is not None and not baseline.samples(metric):
            out.append(ValidationResult(
                validator="performance", expectation=f"{metric} vs baseline",
                status=ValidationStatus.SKIP,
                message=f"the baseline has no {name!r} spans to compare with",
                declared_at=where.at(("performance", "spans"))))
    return out


# -- [[expect.performance]] -------------------------------------------------------------


def judge_expectations(expectations: Sequence[PerformanceExpectation], *,
                       spans: Sequence[Span], window: Window | None,
                       run: RunMeasurement, baseline: Baseline | None,
                       perf: Performance | None, where: Declarations,
                       seed: int = 0, no_baseline: str = "") -> list[ValidationResult]:
    """Absolute bounds on the spans, and regressions against the baseline, per entry."""
    from clnrm.perf.expectations import judge_expectation

    return [judge_expectation(e, i, spans=spans, window=window, run=run, baseline=baseline,
                              perf=perf, where=where, seed=seed, no_baseline=no_baseline)
            for i, e in enumerate(expectations)]
