"""What an agent's bid is worth, read from the shared memory: value, cost and the facts.

Every agent's :meth:`~clnrm.agents.base.SwarmAgent.propose` asks here, so a bid says
*why* in memory's own terms ("2 of 3 faults never tried on demo; pause:db found a
weakness before; cost 41.2 s: median of 4 past chaos runs").  Reads are cheap on
purpose: a bid runs for every ready task in every round, so each function here
makes one or two filtered reads (``where`` on the record's fields, ``$eq`` operators
so Chroma filters, never a similarity ranking over everything) of at most
:data:`READ_LIMIT` records.  Nothing here writes, and the same memory contents give
the same figures: results are sorted before they are used, and the clock is an
argument.

Values are in 0..1 and mean "how much the swarm learns from this task now":

- chaos: faults of the file never injected on this scenario's services (by the chaos
  agent's runs, ``m.faults``), and faults that found a weakness before (its failure
  records); perturbing a scenario whose verdict run failed mostly re-finds the failure.
- performance: no baseline, a thin one (fewer than the file's ``baseline_runs``), a
  stale one (older than :data:`STALE_AFTER`), a change point among the newest runs
  (:func:`clnrm.perf.changepoint.change_points`); a failed verdict run is not measured.
- intelligence: request types mined before without a generated test
  (``PatternRecord`` s of the scenario).
- cost: the median ``duration_s`` of the bidder's past ``RunRecord`` s of the scenario,
  else :data:`~clnrm.agents.base.DEFAULT_COST_S` of its layer, stated as a default.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from clnrm.memory import Agent

if TYPE_CHECKING:
    from clnrm.agents.base import Layer, Task, TaskOutcome
    from clnrm.memory import MemoryStore, Record

    from clnrm.scenario.model import Scenario

READ_LIMIT: Final = 50
"""Records one evidence read returns at most (the newest matter; older add little)."""
STALE_AFTER: Final = timedelta(days=7)
"""A baseline whose newest run is older than this is stale: the system has moved on."""
RECENT_RUNS: Final = 3
"""A change point among this many newest runs is recent."""
FAILED_VERDICT_FACTOR: Final = 0.25
"""What perturbing or measuring a scenario whose verdict run failed is still worth."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def read(store: MemoryStore | None, kind: str, query: str,
         where: dict[str, Any]) -> list[Record]:
    """Records of ``kind`` whose fields equal ``where`` (at most :data:`READ_LIMIT`),
    oldest first; nothing without a store."""
    if store is None:
        return []
    clause = {key: {"$eq": value} for key, value in where.items()}
    hits = store.query(query, kind=kind, k=READ_LIMIT, where=clause)
    return sorted((h.record for h in hits), key=lambda r: (r.created_at, r.id))


# -- cost -----------------------------------------------------------------------


def past_cost(store: MemoryStore | None, scenario: str, agent: Agent, layer: Layer, *,
              factor: float = 1.0, what: str = "") -> tuple[float, str]:
    """Seconds ``agent``'s next run of ``scenario`` will take, and the sentence why.

    The median ``duration_s`` of its past runs (robust to one run that hung), times
    ``factor`` (the healer: a run and a healed rerun); without any, the layer's default.
    """
    from clnrm.agents.base import DEFAULT_COST_S

    runs = read(store, "run", f"run {scenario}", {"agent": agent.value, "scenario": scenario})
    durations = [float(d) for r in runs if (d := getattr(r, "duration_s", None)) is not None]
    if durations:
        cost = max(statistics.median(durations) * factor, 0.1)
        return round(cost, 3), (f"cost {cost:.1f} s: {what}median of {len(durations)} past "
                                f"{agent.value} run(s) of {scenario}")
    cost = DEFAULT_COST_S[layer]
    return cost, (f"cost {cost:.0f} s: the {layer.value} default (no past {agent.value} run "
                  f"of {scenario} in memory)")


# -- the verdict run --------------------------------------------------------------


def failed_verdict(outcomes: dict[str, TaskOutcome], task: Task) -> TaskOutcome | None:
    """The failed outcome of the scenario's orchestration run among ``task.after``."""
    from clnrm.agents.base import Layer, TaskStatus

    for dep in task.after:
        done = outcomes.get(dep)
        if dep.endswith(f"/{Layer.orchestration.value}") and done is not None \
                and done.status is TaskStatus.failed:
            return done
    return None


# -- chaos ----------------------------------------------------------------------


def fault_key(kind: str, target: str | None) -> str:
    """``pause:db``: what was injected where, the unit "tried before" is counted in."""
    return f"{kind}:{target}" if target else kind


def faults_of(scenario: Scenario) -> list[str]:
    return sorted({fault_key(f.type, f.target) for f in scenario.chaos.faults}) \
        if scenario.chaos is not None else []


def _listed(records: Sequence[Record], key: str = "faults") -> tuple[set[str], int]:
    """The union of a comma list in ``m.<key>``, and how many records carried one."""
    found: set[str] = set()
    carried = 0
    for r in records:
        value = r.metadata.get(key)
        if isinstance(value, str):
            carried += 1
            found.update(x for x in value.split(",") if x)
    return found, carried


def chaos_value(store: MemoryStore | None, scenario: Scenario) -> tuple[float, str]:
    """How much a chaos run of ``scenario`` would teach, from the chaos agent's memory."""
    faults = faults_of(scenario)
    if not faults:
        return 0.0, f"{scenario.name} has no faults to inject"
    runs = read(store, "run", f"run {scenario.name}",
                {"agent": Agent.chaos.value, "scenario": scenario.name})
    tried, _ = _listed(runs)
    failures = read(store, "failure", f"chaos {scenario.name}",
                    {"agent": Agent.chaos.value, "m.scenario": scenario.name})
    weak, _ = _listed(failures)
    untried = [f for f in faults if f not in tried]
    weak_here = [f for f in faults if f in weak]
    value = 0.2 + 0.5 * len(untried) / len(faults) + (0.3 if weak_here else 0.0)
    parts = [f"{len(untried)} of {len(faults)} fault(s) never tried on {scenario.name}"
             + (f" ({', '.join(untried)})" if untried else "")
             + f" in {len(runs)} past chaos run(s)"]
    if weak_here:
        parts.append(f"{', '.join(weak_here)} found a weakness before "
                     f"({len(failures)} chaos failure record(s))")
    return round(min(value, 1.0), 3), "; ".join(parts)


# -- performance -------------------------------------------------------------------


def perf_value(store: MemoryStore | None, scenario: Scenario, *,
               clock: Clock = utc_now) -> tuple[float, str]:
    """How much a measurement of ``scenario`` is needed, from its baseline in memory."""
    from clnrm.perf.baseline import BaselineStore

    perf = scenario.performance
    needed = perf.baseline_runs if perf is not None else 10
    if perf is not None and perf.baseline:
        return 0.5, f"{scenario.name} is judged against the baseline file {perf.baseline}"
    stored = BaselineStore(store).runs(scenario.name) if store is not None else []
    if not stored:
        return 0.9, f"no baseline of {scenario.name} in memory: this run starts it"
    newest = max(stored, key=lambda r: (r.at, r.run_id))
    fp = newest.fingerprint.key  # the environment measured last is the one that matters
    runs = sorted((r for r in stored if r.fingerprint.key == fp), key=lambda r: (r.at, r.run_id))
    base = [r for r in runs if r.baseline]
    candidates: list[tuple[float, str]] = [
        (0.3, f"baseline of {scenario.name} has {len(base)} run(s) on {fp}, fresh and steady")]
    if len(base) < needed:
        candidates.append((round(0.6 + 0.3 * (1 - len(base) / needed), 3),
                           f"thin baseline of {scenario.name}: {len(base)} of the {needed} "
                           f"run(s) needed on {fp}"))
    if base:
        age = clock() - max(r.at for r in base)
        if age > STALE_AFTER:
            candidates.append((0.7, f"stale baseline of {scenario.name}: its newest run is "
                                    f"{age.days} day(s) old (stale after {STALE_AFTER.days})"))
    recent = _recent_change_point(runs)
    if recent:
        candidates.append((0.8, f"recent change point in {scenario.name}: {recent}"))
    value, why = max(candidates, key=lambda c: c[0])
    return value, why


def _recent_change_point(runs: Sequence[Any]) -> str:
    """The first metric whose history has a change point among its newest runs, in words."""
    if len(runs) < 4:
        return ""
    from clnrm.perf.changepoint import change_points

    metrics = sorted({m for r in runs for m in r.metrics})[:5]  # bounded work per bid
    for name in metrics:
        series = [(r.run_id, r.metrics[name].value) for r in runs if name in r.metrics]
        if len(series) < 4:
            continue
        points = change_points([v for _, v in series], run_ids=[i for i, _ in series],
                               alpha=0.01, seed=0)
        late = [p for p in points if p.index >= len(series) - RECENT_RUNS]
        if late:
            return f"{name} changed at run {late[-1].run_id}"
    return ""


# -- intelligence ------------------------------------------------------------------


def intelligence_value(store: MemoryStore | None, scenario: str) -> tuple[float, str]:
    """How much mining ``scenario``'s spans would add: request types without a test."""
    patterns = read(store, "pattern", f"{scenario} generated test",
                    {"agent": Agent.intelligence.value, "m.scenario": scenario})
    if not patterns:
        return 0.8, f"no patterns or generated tests of {scenario} in memory yet"
    types = sorted({str(t) for p in patterns if (t := p.metadata.get("request_type"))})
    tests = {getattr(p, "name", "") for p in patterns
             if p.metadata.get("pattern") == "generated_test"}
    if f"{scenario}: generated test" in tests:  # one test covers every request type
        untested: list[str] = []
    else:
        untested = [t for t in types if f"{scenario}: generated test {t}" not in tests]
    if not tests:
        return 0.7, f"{len(patterns)} pattern(s) of {scenario} but no generated test"
    if untested:
        value = 0.4 + 0.4 * len(untested) / max(len(types), 1)
        return round(value, 3), (f"{len(untested)} of {len(types)} request type(s) of "
                                 f"{scenario} without a generated test: "
                                 + ", ".join(untested[:5]))
    return 0.3, (f"every request type of {scenario} ({len(types)}) has a generated test; "
                 "mining again refreshes their confidence")


__all__ = ["chaos_value", "failed_verdict", "fault_key", "intelligence_value", "past_cost",
           "perf_value", "read"]
