"""What the performance layer found in one test, as plain data on the test result.

:class:`PerformanceResult` is :attr:`clnrm.results.TestResult.performance`:
the JSON report carries it as is and the HTML report draws it (latency
histograms against the baseline, metric histories with change points, the
critical path on the waterfall).  Every part is optional, so a test that only
sampled containers, or only ran a load, still reports what it has.

Verdicts and change points are the typed models of :mod:`clnrm.perf.verdict`,
which imports no numpy: loading or rendering a result must not import it, though
:mod:`clnrm.perf.regression` and :mod:`clnrm.perf.changepoint` (which make them)
need it.  For the same reason the models of the load run and the container stats
live here, not beside the engines that produce them: :mod:`clnrm.results` imports this
module, and loading a result must not load the load driver (asyncio) or the stats
sampler (sockets, threads).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from clnrm.perf.critical_path import CriticalPathReport
from clnrm.perf.metrics import LatencySummary, PerfMeasurements
from clnrm.perf.verdict import ChangePoint, Verdict

Arrival = Literal["constant", "poisson"]
"""How intended send times are spaced: evenly, or exponential gaps from the seed."""


# -- the load driver's result (clnrm.perf.load runs it) ---------------------


class RequestSample(BaseModel):
    """One request; times are ms since the schedule's start."""

    index: int
    intended_ms: float
    sent_ms: float | None = None  # None: never sent (the run ended or connecting failed)
    latency_ms: float | None = None  # end - intended: corrected for coordinated omission
    service_time_ms: float | None = None  # end - sent: uncorrected
    status: int | None = None
    error: str | None = None


class LoadRunResult(BaseModel):
    """What a load run did; ``latency`` is corrected, ``service_time`` is not.

    Both summaries cover requests that got a response (any status); transport
    errors and timeouts are counted in ``errors`` instead.
    """

    target: str
    method: str
    arrival: Arrival
    rate_rps: float
    duration_s: float
    seed: int
    concurrency: int
    started_unix_nano: int
    sent: int = 0
    completed: int = 0  # got a response, whatever its status
    errors: int = 0  # no response: refused, reset, timed out
    status_counts: dict[str, int] = Field(default_factory=dict)
    achieved_rps: float = 0.0
    driver_lag_p99_ms: float = 0.0  # how late the driver dispatched (its own delay)
    latency: LatencySummary | None = None
    service_time: LatencySummary | None = None
    warnings: list[str] = Field(default_factory=list)
    requests: list[RequestSample] = Field(default_factory=list)

    @property
    def window(self) -> tuple[int, int]:
        """The run as a :func:`clnrm.perf.metrics.measure` window (Unix ns)."""
        return (self.started_unix_nano,
                self.started_unix_nano + int((self.duration_s + 0.001) * 1e9))


# -- container stats (clnrm.perf.sampler takes them) ------------------------


class ContainerSample(BaseModel):
    """One tick of one container; counters are cumulative since the container started."""

    service: str
    container_id: str
    time_unix_nano: int  # the engine's read time
    cpu_pct: float | None  # None when there is no earlier tick to compare with
    mem_bytes: int
    mem_limit_bytes: int | None = None
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    blk_read_bytes: int = 0
    blk_write_bytes: int = 0
    pids: int | None = None


class ContainerStatsSummary(BaseModel):
    """Peak and mean of one service's container over the sampling; I/O as deltas."""

    service: str
    container_id: str
    samples: int
    cpu_pct_mean: float | None = None
    cpu_pct_peak: float | None = None
    mem_bytes_mean: float | None = None
    mem_bytes_peak: int | None = None
    mem_limit_bytes: int | None = None
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    blk_read_bytes: int = 0
    blk_write_bytes: int = 0
    gone: bool = False  # the container was removed (or never existed) while sampled
    error: str | None = None  # why sampling stopped early, if it did



class MetricHistory(BaseModel):
    """One metric over past runs, oldest first, this run last, with its change points."""

    metric: str
    unit: str = "ms"
    run_ids: list[str] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)
    change_points: list[ChangePoint] = Field(default_factory=list)


class PerformanceResult(BaseModel):
    """Measurements, their judgement against the baseline and history, and the analyses.

    ``focus`` names the span operations whose histograms the report draws, in order;
    left empty, the report picks those with verdicts, then the busiest.
    """

    measurements: PerfMeasurements | None = None
    baseline: PerfMeasurements | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    history: list[MetricHistory] = Field(default_factory=list)
    critical_path: CriticalPathReport | None = None
    containers: dict[str, ContainerStatsSummary] = Field(default_factory=dict)
    container_samples: list[ContainerSample] = Field(default_factory=list)
    load: LoadRunResult | None = None
    focus: list[str] = Field(default_factory=list)

    @property
    def recommendations(self) -> list[str]:
        return self.critical_path.recommendations if self.critical_path else []
