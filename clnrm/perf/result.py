"""What the performance layer found in one test, as plain data on the test result.

:class:`PerformanceResult` is :attr:`clnrm.results.TestResult.performance`:
the JSON report carries it as is and the HTML report draws it (latency
histograms against the baseline, metric histories with change points, the
critical path on the waterfall).  Every part is optional, so a test that only
sampled containers, or only ran a load, still reports what it has.

Verdicts and change points are stored as the plain dicts of
``Verdict.model_dump()`` and ``ChangePoint.model_dump()``: loading or
rendering a result must not import numpy, which :mod:`clnrm.perf.regression`
and :mod:`clnrm.perf.changepoint` need.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from clnrm.perf.critical_path import CriticalPathReport
from clnrm.perf.load import LoadResult
from clnrm.perf.metrics import PerfMeasurements
from clnrm.perf.sampler import ContainerSample, ContainerStatsSummary


class MetricHistory(BaseModel):
    """One metric over past runs, oldest first, this run last, with its change points."""

    metric: str
    unit: str = "ms"
    run_ids: list[str] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)
    change_points: list[dict[str, Any]] = Field(default_factory=list)  # ChangePoint dumps


class PerformanceResult(BaseModel):
    """Measurements, their judgement against the baseline and history, and the analyses.

    ``focus`` names the span operations whose histograms the report draws, in order;
    left empty, the report picks those with verdicts, then the busiest.
    """

    measurements: PerfMeasurements | None = None
    baseline: PerfMeasurements | None = None
    verdicts: list[dict[str, Any]] = Field(default_factory=list)  # Verdict dumps
    history: list[MetricHistory] = Field(default_factory=list)
    critical_path: CriticalPathReport | None = None
    containers: dict[str, ContainerStatsSummary] = Field(default_factory=dict)
    container_samples: list[ContainerSample] = Field(default_factory=list)
    load: LoadResult | None = None
    focus: list[str] = Field(default_factory=list)

    @property
    def recommendations(self) -> list[str]:
        return self.critical_path.recommendations if self.critical_path else []
