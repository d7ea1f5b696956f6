"""``clnrm campaign report ID --html FILE``: what a campaign found, in one self-contained page.

Four sections, all read from what the campaign recorded (the ledger) and what the swarm
learned (the memory); nothing is measured here:

- findings: each deduplicated weakness, how often it was seen, its reproducer and whether
  the reproducer failed every rerun;
- learned remediations: the healer's :class:`~clnrm.memory.records.RemediationRecord`
  entries for this campaign's runs, by action, with how often each worked;
- performance trend: per scenario, each unit's figures in plan order with the change
  points :func:`clnrm.perf.changepoint.change_points` finds in them (e-divisive, seeded);
- the fault x service map: per pair, how many units tried it and how many found a weakness.

Like ``clnrm run --report-html`` the page is one file with inline CSS and SVG, no script
at all, and a Content Security Policy that forbids every fetch, so it can be mailed or
attached to a CI job.  Every value is escaped by the template (span names and messages
are untrusted text).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from clnrm.swarm.campaign.explore import tallies
from clnrm.swarm.campaign.findings import reproducible

if TYPE_CHECKING:
    from clnrm.memory import MemoryStore
    from clnrm.memory.records import BaselineRecord, RemediationRecord
    from clnrm.swarm.campaign.ledger import Ledger
    from clnrm.swarm.campaign.model import Finding, UnitResult, UnitSpec

    from clnrm.perf.verdict import ChangePoint

PERF_FACT: Final = re.compile(r"(?:^|_)(?:p50|p90|p95|p99|mean|median|latency|rps)\w*$")
"""Numeric unit facts drawn as performance series (``p95_ms``, ``latency_mean_ms``...)."""
DOTS: Final = 80
"""Series this short get a dot (with its unit in a tooltip) per point."""
_W: Final = 560.0
_H: Final = 150.0
_PAD: Final = (44.0, 12.0, 12.0, 22.0)  # left, top, right, bottom


@dataclass(frozen=True)
class Trend:
    """One series of a scenario's figures in unit order, laid out as an SVG polyline."""

    title: str
    values: list[float]
    units: list[str]
    change_points: list[ChangePoint]
    points: str = ""
    marks: list[tuple[float, str]] = field(default_factory=list)  # x, label
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, label
    low: float = 0.0
    high: float = 0.0


@dataclass(frozen=True)
class Cell:
    tries: int
    weaknesses: int
    findings: int

    @property
    def shade(self) -> str:
        """Red in proportion to the weaknesses found; grey when never tried."""
        if self.tries == 0 and self.findings == 0:
            return "#f6f8fa"
        ratio = self.weaknesses / self.tries if self.tries else 0.5  # the file's own fault
        return f"rgba(207, 34, 46, {0.12 + 0.7 * ratio:.2f})"


@dataclass(frozen=True)
class RemediationLine:
    action: str
    worked: int
    failed: int
    other: int
    failures: list[str]
    detail: str


def write_html(campaign: str | Ledger, path: str | Path, *, home: Path | None = None,
               ledger: Ledger | None = None, memory: MemoryStore | str | None = None,
               remediations: Iterable[RemediationRecord] | None = None,
               baselines: Iterable[BaselineRecord] | None = None) -> Path:
    """Write the report of ``campaign`` (its id, or its open ledger) to ``path``; return it.

    An id's ledger is opened from ``home`` unless ``ledger`` is given.  Remediations and
    baselines come from the arguments, else from ``memory`` (a store or its location),
    else from the memory the campaign was started with when that exists; a memory that
    cannot be read leaves those sections empty with the reason shown, never a failed
    report.
    """
    from clnrm.swarm.campaign.ledger import Ledger

    if isinstance(campaign, Ledger):
        ledger = campaign
    own = ledger is None
    book = Ledger.open(str(campaign), home) if ledger is None else ledger
    try:
        if memory is None and (remediations is None or baselines is None):
            memory = _campaign_memory(book.spec.memory)
        html = render_html(book, memory=memory, remediations=remediations,
                           baselines=baselines)
    finally:
        if own:
            book.close()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8", errors="backslashreplace")
    return target


def _campaign_memory(location: str) -> str | None:
    """The campaign's memory, if there is one to read (a report never creates a store)."""
    if location.startswith(("http://", "https://")):
        return location
    return location if location and Path(location).expanduser().is_dir() else None


def render_html(ledger: Ledger, *, memory: MemoryStore | str | None = None,
                remediations: Iterable[RemediationRecord] | None = None,
                baselines: Iterable[BaselineRecord] | None = None) -> str:
    """The report of ``ledger``'s campaign as one HTML document."""
    spec = ledger.spec
    planned, results, findings = ledger.planned(), ledger.results(), ledger.findings()
    memory_note = ""
    if (remediations is None or baselines is None) and memory is not None:
        try:
            fetched_r, fetched_b = _from_memory(memory)
        except Exception as exc:  # noqa: BLE001 - an unreachable memory is a note, not a crash
            fetched_r, fetched_b = [], []
            memory_note = f"memory not read ({type(exc).__name__}: {str(exc)[:200]})"
        remediations = fetched_r if remediations is None else remediations
        baselines = fetched_b if baselines is None else baselines
    runs = _run_ids(results)
    remedies = [r for r in (remediations or []) if not runs or r.run_id in runs]
    scenarios = {Path(p).name: p for p, _ in spec.files}
    names = _scenario_names(spec.files)
    base = [b for b in (baselines or []) if b.scenario in names or b.scenario in scenarios]
    faults, services, cells = fault_service_map(results, planned, findings)
    outcomes = Counter(r.outcome for r in results)
    return _template().render(
        spec=spec, state=ledger.state().value, reason=ledger.reason(),
        units_planned=len(planned), units_done=len(results), outcomes=outcomes,
        findings=findings, reproducible=reproducible, remedies=remediation_lines(remedies),
        remedies_scope="this campaign's runs" if runs else "every run in the memory",
        trends=trends(planned, results, base, seed=spec.seed), faults=faults,
        services=services, cells=cells, memory_note=memory_note,
        generated=datetime.now(UTC).isoformat(timespec="seconds"))


def _from_memory(memory: MemoryStore | str) -> tuple[list[Any], list[Any]]:
    from clnrm.memory import open_memory

    store = open_memory(memory) if isinstance(memory, str) else memory
    try:
        return list(store.records("remediation")), list(store.records("baseline"))
    finally:
        if isinstance(memory, str):
            store.close()


def _run_ids(results: Sequence[UnitResult]) -> set[str]:
    """Every run id a unit's facts name (``*run*`` facts: the swarm run, the clnrm runs)."""
    found: set[str] = set()
    for r in results:
        for key, value in r.facts.items():
            if "run" in key and isinstance(value, str):
                found.update(v for v in re.split(r"[,\s]+", value) if v)
    return found


def _scenario_names(files: Sequence[tuple[str, str]]) -> set[str]:
    import tomli

    names: set[str] = set()
    for _, text in files:
        try:
            meta = tomli.loads(text).get("meta", {})
        except tomli.TOMLDecodeError:
            continue
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            names.add(meta["name"])
    return names


def fault_service_map(results: Sequence[UnitResult], planned: Sequence[UnitSpec],
                      findings: Sequence[Finding]
                      ) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    """Rows (fault types), columns (services) and each pair's tries and weaknesses (units
    whose explored fault it was) and the units its findings were seen in (any fault: the
    files' own faults too)."""
    seen = tallies(results, planned)
    found: Counter[tuple[str, str]] = Counter()
    for f in findings:
        found[(f.fault, f.service)] += f.occurrences
    pairs = set(seen) | set(found)
    faults = sorted({f for f, _ in pairs})
    services = sorted({s for _, s in pairs})
    cells = {(f, s): Cell(seen[(f, s)].tries if (f, s) in seen else 0,
                          seen[(f, s)].weaknesses if (f, s) in seen else 0, found[(f, s)])
             for f in faults for s in services}
    return faults, services, cells


def remediation_lines(records: Iterable[RemediationRecord]) -> list[RemediationLine]:
    """Remediations by action: how often each worked, failed or was only proposed."""
    by_action: dict[str, list[RemediationRecord]] = defaultdict(list)
    for r in records:
        by_action[r.action].append(r)
    lines = []
    for action, recs in by_action.items():
        counts = Counter(r.outcome.value for r in recs)
        worked = counts.get("succeeded", 0) + counts.get("passed", 0) + counts.get("healed", 0)
        failed = counts.get("failed", 0)
        lines.append(RemediationLine(
            action=action, worked=worked, failed=failed, other=len(recs) - worked - failed,
            failures=sorted({r.failure_id for r in recs})[:5],
            detail=next((r.detail for r in recs if r.detail), "")))
    return sorted(lines, key=lambda x: (-x.worked, x.failed, x.action))


def trends(planned: Sequence[UnitSpec], results: Sequence[UnitResult],
           baselines: Sequence[BaselineRecord] = (), *, seed: int = 0) -> list[Trend]:
    """Per scenario: unit durations and numeric performance facts in plan order, and the
    memory's baselines per metric in time order, each with its change points."""
    from clnrm.perf.changepoint import change_points

    scenario_of = {u.id: Path(u.scenario).name for u in planned}
    series: dict[str, tuple[list[float], list[str]]] = {}
    for r in sorted(results, key=lambda r: r.index):
        if r.outcome == "error":
            continue
        name = scenario_of.get(r.unit, "?")
        figures: dict[str, float] = {"unit duration (s)": r.duration_s}
        figures.update({k: float(v) for k, v in r.facts.items()
                        if PERF_FACT.search(k) and isinstance(v, int | float)
                        and not isinstance(v, bool)})
        for metric, value in figures.items():
            values, units = series.setdefault(f"{name} · {metric}", ([], []))
            values.append(value)
            units.append(r.unit)
    for b in sorted(baselines, key=lambda b: b.created_at):
        values, units = series.setdefault(f"{b.scenario} · {b.metric} (memory)", ([], []))
        values.append(b.value)
        units.append(b.run_id or "")
    out = []
    for title, (values, units) in sorted(series.items()):
        cps = change_points(values, run_ids=units, seed=seed) if len(values) >= 4 else []
        out.append(_laid_out(Trend(title, values, units, cps)))
    return out


def _laid_out(t: Trend) -> Trend:
    left, top, right, bottom = _PAD
    low, high = min(t.values), max(t.values)
    span = (high - low) or 1.0
    n = len(t.values)

    def x(i: float) -> float:
        return left + (_W - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (_H - top - bottom) * (1 - (v - low) / span)

    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(t.values))
    marks = [(x(cp.index - 0.5), f"{cp.change_pct:+.0f}% at {cp.run_id or cp.index}")
             for cp in t.change_points]
    dots = [(x(i), y(v), f"{u}: {v:.4g}") for i, (v, u) in enumerate(zip(t.values, t.units,
                                                                         strict=True))
            ] if n <= DOTS else []
    return Trend(t.title, t.values, t.units, t.change_points, points, marks, dots, low, high)


TEMPLATE: Final = "report.html.j2"


@cache
def _template() -> Any:
    from importlib.resources import files

    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    source = files("clnrm.swarm.campaign").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(source)


__all__ = ["Cell", "RemediationLine", "Trend", "fault_service_map", "remediation_lines",
           "render_html", "trends", "write_html"]
