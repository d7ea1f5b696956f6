"""The service graph seen in the spans: who calls whom, with call counts.

An edge ``A -> B`` is counted once for every span of service B whose parent
span (looked up in the same trace) belongs to service A; calls within one
service are not edges.  Spans without ``service.name`` are grouped under
:data:`UNKNOWN_SERVICE` rather than dropped, since a missing resource
attribute is itself worth seeing.

It lives beside the span model because two layers read it: the topology check
(:mod:`clnrm.orchestration.topology`, direction of calls) and the HTML report
(:mod:`clnrm.reports._graph` draws it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from clnrm.otel.span import Span

UNKNOWN_SERVICE: Final = "(no service.name)"


@dataclass(frozen=True, slots=True)
class ServiceEdge:
    source: str
    target: str
    calls: int


@dataclass(frozen=True, slots=True)
class ServiceGraph:
    """Services sorted by name; edges sorted by ``(source, target)``."""

    services: list[str]
    edges: list[ServiceEdge]


def service_graph(spans: Sequence[Span]) -> ServiceGraph:
    """Services and caller -> callee edges with call counts, from parent links."""
    by_key = {(s.trace_id, s.span_id): s for s in reversed(spans)}  # first of duplicates wins
    services: set[str] = set()
    calls: Counter[tuple[str, str]] = Counter()
    for span in spans:
        service = span.service_name or UNKNOWN_SERVICE
        services.add(service)
        if not span.parent_span_id:
            continue
        parent = by_key.get((span.trace_id, span.parent_span_id))
        if parent is None or parent is span:
            continue
        caller = parent.service_name or UNKNOWN_SERVICE
        if caller != service:
            calls[(caller, service)] += 1
    edges = [ServiceEdge(a, b, n) for (a, b), n in sorted(calls.items())]
    return ServiceGraph(services=sorted(services), edges=edges)


def merge_graphs(graphs: Iterable[ServiceGraph]) -> ServiceGraph:
    """One graph for several tests: services united, call counts added."""
    services: set[str] = set()
    calls: Counter[tuple[str, str]] = Counter()
    for graph in graphs:
        services.update(graph.services)
        for e in graph.edges:
            calls[(e.source, e.target)] += e.calls
    return ServiceGraph(services=sorted(services),
                        edges=[ServiceEdge(a, b, n) for (a, b), n in sorted(calls.items())])
