"""Everything the orchestration layer decides before the first container starts.

:func:`plan_orchestration` turns a scenario and its service specs into an
:class:`OrchestrationPlan`: the dependency graph, each service's readiness
probes, the temporal constraints, the topology and the network links that
enforce it.  Every reference is checked here, so a file naming an unknown
service fails with exit code 2 and nothing started; :func:`judge_orchestration`
turns the plan plus what a run recorded into validation results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clnrm.errors import ClnrmError, ScenarioError
from clnrm.layers import layer_active
from clnrm.orchestration.graph import DependencyGraph, dependency_graph
from clnrm.orchestration.readiness import ReadinessCheck, checks_for
from clnrm.orchestration.temporal import judge_temporal
from clnrm.orchestration.topology import judge_topology, network_links
from clnrm.otel.span import Span
from clnrm.plugins.base import ServiceSpec
from clnrm.results import ServiceTimeline, ValidationResult
from clnrm.scenario.layers import TemporalConstraint, Topology, split_event
from clnrm.scenario.model import Scenario


@dataclass(frozen=True)
class OrchestrationPlan:
    """How one test's services start, what "ready" means for each, and what is judged after."""

    graph: DependencyGraph
    checks: Mapping[str, tuple[ReadinessCheck, ...]]
    temporal: tuple[TemporalConstraint, ...] = ()
    topology: Topology | None = None
    links: tuple[tuple[str, ...], ...] | None = None
    """network groups enforcing the topology; None: one shared network"""
    source: str | None = None
    services: tuple[str, ...] = field(default=())

    @property
    def needs_spans(self) -> bool:
        """The topology is compared with the span graph, so spans must be settled first."""
        return self.topology is not None and self.topology.match != "off"

    def readiness_text(self) -> dict[str, list[str]]:
        return {name: [c.describe() for c in checks] for name, checks in self.checks.items()}


def plan_orchestration(scenario: Scenario, specs: Mapping[str, ServiceSpec]) -> OrchestrationPlan:
    """Check and plan; raise ScenarioError (with the key path) on anything unrunnable."""
    source = scenario.source
    graph = dependency_graph({name: cfg.depends_on for name, cfg in scenario.services.items()},
                             source=source)
    checks = {}
    for name, spec in specs.items():
        try:
            checks[name] = checks_for(spec)
        except ClnrmError as exc:
            raise ScenarioError(exc.message, file=source, key_path=f"services.{name}.readiness",
                                hint=exc.hint) from exc
    services = tuple(graph.services)
    orch = scenario.orchestration
    active = orch is not None and layer_active(scenario, "orchestration")
    temporal = tuple(orch.temporal) if orch is not None and active else ()
    topology = orch.topology if orch is not None and active else None
    _check_temporal(temporal, services, source)
    links = None
    if topology is not None:
        _check_topology(topology, services, source)
        if topology.enforce:
            links = network_links(topology, services)
    return OrchestrationPlan(graph=graph, checks=checks, temporal=temporal, topology=topology,
                             links=links, source=source, services=services)


def _unknown(name: str, services: Sequence[str], source: str | None, key_path: str,
             what: str) -> ScenarioError:
    declared = ", ".join(sorted(services)) or "(none)"
    return ScenarioError(f"{what} names service {name!r}, which is not declared",
                         file=source, key_path=key_path, hint=f"declared services: {declared}")


def _check_temporal(constraints: Sequence[TemporalConstraint], services: Sequence[str],
                    source: str | None) -> None:
    for i, c in enumerate(constraints):
        for key in ("first", "then"):
            service, _ = split_event(getattr(c, key))
            if service not in services:
                raise _unknown(service, services, source,
                               f"orchestration.temporal[{i}].{key}", "a temporal constraint")


def _check_topology(topology: Topology, services: Sequence[str], source: str | None) -> None:
    for i, edge in enumerate(topology.allow):
        for name in edge:
            if name not in services:
                raise _unknown(name, services, source, f"orchestration.topology.allow[{i}]",
                               "a topology edge")
    for i, name in enumerate(topology.entry or []):
        if name not in services:
            raise _unknown(name, services, source, f"orchestration.topology.entry[{i}]",
                           "the topology's entry list")


def judge_orchestration(plan: OrchestrationPlan, spans: Sequence[Span],
                        timeline: Sequence[ServiceTimeline]) -> list[ValidationResult]:
    """Temporal constraints against the timeline, the topology against the spans."""
    if not plan.temporal and plan.topology is None:
        return []
    from clnrm.validators.base import Declarations

    where = Declarations(plan.source)
    results = judge_temporal(plan.temporal, timeline, where)
    if plan.topology is not None:
        results += judge_topology(plan.topology, spans, plan.services, where)
    return results
