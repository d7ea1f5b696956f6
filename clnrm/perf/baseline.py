"""Baselines and history in the shared memory: what a run measured, kept to compare with.

One measured run is a :class:`RunMeasurement`: per metric its samples and summary.
It is stored as one :class:`clnrm.memory.BaselineRecord` per metric in ``swarm/performance``
(scenario, metric, run id; the samples, summary and fingerprint ride in the record's
metadata), so ``clnrm memory query "baseline demo_system"`` finds them too.  Every
stored run is *history* (for change points); runs marked ``baseline`` are the
reference a new run is compared with: the first run of a scenario on a fingerprint,
runs saved with ``clnrm perf baseline save`` and runs of files with
``record_baseline = true``.

:class:`BaselineStore` is the only code that knows this layout; everything else
reads and writes the typed models.  Nothing here imports Chroma: the store is any
:class:`clnrm.memory.MemoryStore`, opened by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from clnrm.perf.fingerprint import Fingerprint

if TYPE_CHECKING:
    from clnrm.memory.records import BaselineRecord
    from clnrm.memory.types import MemoryStore
    from clnrm.perf.metrics import PerfMeasurements

log = structlog.get_logger("clnrm.perf")

STORED_SAMPLES: Final = 1000
"""Samples kept per metric and run in the memory (evenly spaced order statistics)."""
_FETCH: Final = 100_000
"""Upper bound on records read for one scenario and fingerprint."""

Direction = Literal["higher_is_worse", "lower_is_worse"]


class MetricRun(BaseModel):
    """One metric of one run: its samples and the figures people read.

    ``value`` is the run's typical value (the robust location the regression test
    compares, see :func:`clnrm.perf.regression.robust_location`): what the history
    and its change points are drawn from.
    """

    model_config = ConfigDict(extra="forbid")

    metric: str
    unit: str
    direction: Direction
    statistic: str  # what a verdict reports: p95 for latencies, mean for rates
    value: float
    count: int
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    samples: list[float] = Field(default_factory=list)


class RunMeasurement(BaseModel):
    """Everything one run of one scenario measured, keyed as the memory keeps it."""

    model_config = ConfigDict(extra="forbid")

    scenario: str
    run_id: str
    fingerprint: Fingerprint
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    file: str = ""
    baseline: bool = False
    metrics: dict[str, MetricRun] = Field(default_factory=dict)


class Baseline(BaseModel):
    """The reference for one scenario on one fingerprint: its baseline runs, oldest first.

    Also the format of a baseline file (``[performance] baseline = "file.json"``),
    which is what ``clnrm perf baseline show --format json`` prints.
    """

    model_config = ConfigDict(extra="forbid")

    scenario: str
    fingerprint: Fingerprint
    runs: list[RunMeasurement] = Field(default_factory=list)

    def metric_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(run.metrics))
        return list(seen)

    def samples(self, metric: str) -> list[list[float]]:
        """One sample list per baseline run that measured ``metric``."""
        return [run.metrics[metric].samples for run in self.runs
                if metric in run.metrics and run.metrics[metric].samples]

    def pooled(self, metric: str) -> list[float]:
        return [x for run in self.samples(metric) for x in run]


class BaselineSummary(BaseModel):
    """One line of ``clnrm perf baseline list``."""

    scenario: str
    fingerprint: str
    baseline_runs: int
    history_runs: int
    metrics: int
    last_at: datetime | None = None


class BaselineStore:
    """Reads and writes :class:`RunMeasurement` s in a :class:`clnrm.memory.MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    # -- reading ---------------------------------------------------------------------

    def runs(self, scenario: str, fingerprint: str | None = None) -> list[RunMeasurement]:
        """Every stored run of ``scenario`` (on ``fingerprint``), oldest first."""
        # Operators, not bare values: they send the filter to Chroma itself, which also
        # copes with "nothing matches" (the store's post-filter path does not, today).
        where: dict[str, Any] = {"scenario": {"$eq": scenario}}
        if fingerprint is not None:
            where["m.fingerprint"] = {"$eq": fingerprint}
        return _assemble(self._records(scenario, where))

    def baseline(self, scenario: str, fingerprint: str, *, runs: int = 10) -> Baseline | None:
        """The last ``runs`` baseline runs, or None when there is none."""
        return select_baseline(self.runs(scenario, fingerprint), runs=runs)

    def fingerprints(self, scenario: str) -> dict[str, int]:
        """Fingerprint key -> number of baseline runs, for "no baseline here" messages."""
        out: dict[str, int] = {}
        for run in self.runs(scenario):
            out[run.fingerprint.key] = out.get(run.fingerprint.key, 0) + int(run.baseline)
        return out

    def summaries(self) -> list[BaselineSummary]:
        """Every scenario and fingerprint the memory has measurements of."""
        from clnrm.memory.records import BaselineRecord, Kind

        groups: dict[tuple[str, str], list[BaselineRecord]] = {}
        for record in self.store.records(Kind.baseline):
            if isinstance(record, BaselineRecord) and _ours(record):
                key = (record.scenario, str(record.metadata.get("fingerprint", "")))
                groups.setdefault(key, []).append(record)
        out = []
        for (scenario, fp), records in sorted(groups.items()):
            runs = _assemble(records)
            out.append(BaselineSummary(
                scenario=scenario, fingerprint=fp,
                baseline_runs=sum(1 for r in runs if r.baseline), history_runs=len(runs),
                metrics=len({m for r in runs for m in r.metrics}),
                last_at=max((r.at for r in runs), default=None)))
        return out

    def _records(self, scenario: str, where: dict[str, Any]) -> list[BaselineRecord]:
        from clnrm.memory.records import BaselineRecord, Kind

        hits = self.store.query(f"baseline {scenario}", kind=Kind.baseline,
                                agent="performance", k=_FETCH, where=where)
        return [h.record for h in hits
                if isinstance(h.record, BaselineRecord) and _ours(h.record)]

    # -- writing ---------------------------------------------------------------------

    def record(self, run: RunMeasurement, *, history: int = 20,
               baseline_runs: int = 10) -> None:
        """Store ``run``; keep ``history`` runs (baseline runs are never pruned while
        among the last ``baseline_runs``)."""
        self.store.put(to_records(run))
        if history <= 0:
            return
        stored = self.runs(run.scenario, run.fingerprint.key)
        old = pruned(stored, history=history, baseline_runs=baseline_runs)
        if old:
            ids = [rec.id for r in old for rec in to_records(r)]
            self.store.delete(ids)
            log.info("perf.history_pruned", scenario=run.scenario, runs=len(old))

    def mark_baseline(self, runs: Iterable[RunMeasurement], *, value: bool = True) -> None:
        """Re-store runs with their baseline flag set (or cleared): an upsert by id."""
        self.store.put([rec for r in runs
                        for rec in to_records(r.model_copy(update={"baseline": value}))])

    def forget(self, scenario: str, fingerprint: str | None = None) -> int:
        """Delete every stored run of ``scenario`` (on ``fingerprint``); returns how many."""
        runs = self.runs(scenario, fingerprint)
        ids = [rec.id for r in runs for rec in to_records(r)]
        if ids:
            self.store.delete(ids)
        return len(runs)


# -- what is kept: pure functions, shared by the store and bench/regression.py ----------


def select_baseline(stored: Sequence[RunMeasurement], *, runs: int) -> Baseline | None:
    """The newest ``runs`` baseline runs among ``stored`` (oldest first), or None."""
    marked = [r for r in stored if r.baseline]
    if not marked:
        return None
    return Baseline(scenario=marked[-1].scenario, fingerprint=marked[-1].fingerprint,
                    runs=marked[-runs:])


def pruned(stored: Sequence[RunMeasurement], *, history: int,
           baseline_runs: int) -> list[RunMeasurement]:
    """The runs of ``stored`` (oldest first) to forget: all but the newest ``history``,
    except the baseline runs in use (the newest ``baseline_runs`` of them)."""
    if history <= 0 or len(stored) <= history:
        return []
    keep_base = {r.run_id for r in [r for r in stored if r.baseline][-baseline_runs:]}
    return [r for r in stored[:-history] if r.run_id not in keep_base]


# -- the record layout ---------------------------------------------------------------

_LAYOUT: Final = "perf-run-v1"


def to_records(run: RunMeasurement) -> list[BaselineRecord]:
    """One record per metric; scalars in metadata, the samples as a JSON list."""
    from clnrm.memory.records import Agent, BaselineRecord

    fp = run.fingerprint
    common: dict[str, str | int | float | bool] = {
        "layout": _LAYOUT, "fingerprint": fp.key, "fp_backend": fp.backend,
        "fp_cpus": fp.cpus, "fp_engine": fp.engine, "fp_kernel": fp.kernel,
        "baseline": run.baseline, "file": run.file}
    out = []
    for name, m in run.metrics.items():
        meta = dict(common)
        meta.update({"direction": m.direction, "statistic": m.statistic, "count": m.count,
                     "samples": json.dumps(_thin(m.samples), separators=(",", ":"))})
        for key in ("mean", "p50", "p95", "p99", "max"):
            value = getattr(m, key)
            if value is not None:
                meta[key] = float(value)
        out.append(BaselineRecord(agent=Agent.performance, run_id=run.run_id,
                                  created_at=run.at, scenario=run.scenario, metric=name,
                                  value=m.value, unit=m.unit, metadata=meta))
    return out


def _ours(record: BaselineRecord) -> bool:
    return record.metadata.get("layout") == _LAYOUT


def _assemble(records: Sequence[BaselineRecord]) -> list[RunMeasurement]:
    runs: dict[tuple[str, str, str], RunMeasurement] = {}
    for rec in records:
        meta = rec.metadata
        key = (rec.scenario, rec.run_id or "", str(meta.get("fingerprint")))
        run = runs.get(key)
        if run is None:
            run = runs[key] = RunMeasurement(
                scenario=rec.scenario, run_id=rec.run_id or "", at=rec.created_at,
                file=str(meta.get("file", "")), baseline=bool(meta.get("baseline")),
                fingerprint=Fingerprint(backend=str(meta.get("fp_backend")),
                                        cpus=int(meta.get("fp_cpus", 0)),
                                        engine=str(meta.get("fp_engine")),
                                        kernel=str(meta.get("fp_kernel"))))
        run.metrics[rec.metric] = MetricRun(
            metric=rec.metric, unit=rec.unit, value=rec.value,
            direction=meta.get("direction", "higher_is_worse"),  # type: ignore[arg-type]
            statistic=str(meta.get("statistic", "p95")), count=int(meta.get("count", 0)),
            samples=json.loads(str(meta.get("samples", "[]"))),
            **{k: float(meta[k]) for k in ("mean", "p50", "p95", "p99", "max") if k in meta})
    ordered = sorted(runs.values(), key=lambda r: (r.at, r.run_id))
    for run in ordered:
        run.metrics = dict(sorted(run.metrics.items()))
    return ordered


def _thin(samples: list[float]) -> list[float]:
    from clnrm.perf.metrics import thin

    return thin(sorted(samples), STORED_SAMPLES)


def load_baseline_file(path: str, *, source: str | None = None) -> Baseline:
    """A baseline file (``clnrm perf baseline show --format json``), relative to the test
    file's folder; a bad file is a :class:`~clnrm.errors.ClnrmError` naming it."""
    from pathlib import Path

    from pydantic import ValidationError

    from clnrm.errors import ClnrmError

    file = Path(path)
    if not file.is_absolute() and source:
        file = Path(source).parent / file
    try:
        from clnrm.output import strip_envelope_text  # show --format json prints an envelope

        return Baseline.model_validate_json(strip_envelope_text(file.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ClnrmError(f"cannot read the baseline file {file}: {exc.strerror or exc}",
                         hint="write one with `clnrm perf baseline show FILE --format json`"
                         ) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "file"
        raise ClnrmError(f"{file}: not a baseline file ({where}: {first['msg']})",
                         hint="write one with `clnrm perf baseline show FILE --format json`"
                         ) from exc


def baseline_measurements(baseline: Baseline) -> PerfMeasurements:
    """The baseline's latencies pooled over its runs, in the shape reports draw."""
    from clnrm.perf.metrics import PerfMeasurements, summarize_ms

    latency = {}
    for name in baseline.metric_names():
        kind, _, span = name.partition(":")
        pooled = baseline.pooled(name)
        if kind == "latency" and span and pooled:
            latency[span] = summarize_ms(pooled)
    rates = [r.metrics["throughput"].mean for r in baseline.runs
             if "throughput" in r.metrics and r.metrics["throughput"].mean is not None]
    return PerfMeasurements(span_count=sum(s.count for s in latency.values()),
                            requests_per_s=sum(rates) / len(rates) if rates else 0.0,
                            latency=latency)
