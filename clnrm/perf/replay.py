"""A run measurement rebuilt from a finished test result (a JSON report).

``clnrm perf baseline save|diff --from-report`` use it: the report keeps the spans,
the measured window (``performance.measurements.window_*``), the load and the
container samples, which is everything :func:`clnrm.perf.judge.run_measurement`
reads.  The report does not say which environment it was measured in, so the
caller supplies the fingerprint (this machine's by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clnrm.perf.baseline import RunMeasurement
    from clnrm.perf.fingerprint import Fingerprint
    from clnrm.results import TestResult


def run_from_test(test: TestResult, *, run_id: str,
                  fingerprint: Fingerprint) -> RunMeasurement:
    """The metrics the performance layer would have stored for ``test``."""
    from clnrm.perf.judge import run_measurement
    from clnrm.perf.metrics import measure

    perf = test.performance
    window = None
    if perf is not None and perf.measurements is not None:
        m = perf.measurements
        if m.window_start_unix_nano is not None and m.window_end_unix_nano is not None:
            window = (m.window_start_unix_nano, m.window_end_unix_nano)
    load = perf.load if perf is not None else None
    warmup = 0.0
    if load is not None and window is not None:
        warmup = max(0.0, (window[0] - load.started_unix_nano) / 1e9)
    return run_measurement(
        scenario=test.name, run_id=run_id, fingerprint=fingerprint, file=test.file,
        spans=test.spans, measured=measure(test.spans, window=window), window=window,
        load=load, load_warmup_s=warmup,
        container_samples=perf.container_samples if perf is not None else [])
