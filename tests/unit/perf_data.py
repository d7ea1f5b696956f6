"""Synthetic request traces for the performance layer's unit tests.

One request is a gateway SERVER span ``GET /items`` with an api CLIENT span
``SELECT items`` inside it; latencies are log-normal around a median, so a run can
be made slower (a larger median), noisier (a larger sigma), drift from run to run
(``drift``) or carry rare outliers, all from a seed.
"""

from __future__ import annotations

import math
import random

from clnrm.otel.span import Span

T0 = 1_700_000_000_000_000_000


def request_spans(n: int = 200, *, db_ms: float = 5.0, app_ms: float = 3.0,
                  sigma: float = 0.25, seed: int = 0, rate: float = 40.0,
                  drift: float = 1.0, outliers: float = 0.0, start: int = T0) -> list[Span]:
    """``n`` requests at ``rate`` per second; ``drift`` scales every latency of the run."""
    rng = random.Random(seed)
    spans: list[Span] = []
    for i in range(n):
        trace = f"{seed:08x}{i:024x}"
        t = start + int(i * 1e9 / rate)
        db = rng.lognormvariate(math.log(db_ms * drift), sigma)
        if outliers and rng.random() < outliers:
            db *= 10  # a GC pause, a retry
        app = rng.lognormvariate(math.log(app_ms * drift), sigma)
        before = int(app / 2 * 1e6)
        total = int((db + app) * 1e6)
        spans.append(Span(name="GET /items", trace_id=trace, span_id=f"{1:016x}",
                          start_time_unix_nano=t, end_time_unix_nano=t + total,
                          kind="server", resource={"service.name": "gateway"}))
        spans.append(Span(name="SELECT items", trace_id=trace, span_id=f"{2:016x}",
                          parent_span_id=f"{1:016x}", start_time_unix_nano=t + before,
                          end_time_unix_nano=t + before + int(db * 1e6), kind="client",
                          attributes={"db.system": "postgresql"},
                          resource={"service.name": "api"}))
    return spans
