"""The performance layer's result in a few terminal lines (``clnrm run``'s human output).

Rendering only: the verdicts, the critical path and the advice were computed by the
layer; this picks what a reader of a terminal needs first (regressions, the baseline
note, what dominates the critical path, the load) and leaves the rest to the reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from clnrm.results import TestResult

SHARES_SHOWN: Final = 3
ADVICE_SHOWN: Final = 2


def summary_lines(test: TestResult) -> list[str]:
    """Lines about ``test.performance``; empty when the layer did not run."""
    perf = test.performance
    if perf is None:
        return []
    lines = []
    notes = [v.message for v in test.validations
             if v.validator == "performance" and v.expectation == "baseline" and v.message]
    lines += [f"performance: {n}" for n in notes]
    for v in perf.verdicts:
        mark = "✗" if v.fails else ("!" if v.regressed else "✓")
        if v.test == "none":
            mark = "-"
        conf = "" if v.test == "none" else f"; confidence it got worse {v.confidence:.1%}"
        lines.append(f"{mark} {v.message}{conf}")
    m = perf.measurements
    if m is not None and m.requests:
        lat = m.request_latency
        tail = f", p95 {lat.p95_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms" if lat else ""
        lines.append(f"requests: {m.requests} in {m.window_s:.1f} s "
                     f"({m.requests_per_s:.1f}/s{tail})")
    if perf.load is not None:
        load = perf.load
        lat = load.latency
        lines.append(f"load: {load.sent} sent to {load.target} at {load.rate_rps:g} rps "
                     f"({load.arrival}), {load.errors} errors"
                     + (f", corrected p95 {lat.p95_ms:.1f} ms" if lat else ""))
    cp = perf.critical_path
    if cp is not None and cp.shares:
        top = ", ".join(f"{s.service}/{s.name} {s.share:.0%}" for s in cp.shares[:SHARES_SHOWN])
        lines.append(f"critical path ({cp.path_count} {cp.per}s): {top}")
        lines += [f"advice: {r}" for r in cp.recommendations[:ADVICE_SHOWN]]
    return lines
