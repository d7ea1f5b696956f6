"""``[orchestration.topology]``: who may call whom, enforced by networks, checked in spans.

Enforcement is reachability.  The test's own network stays (the OTLP
receiver listens on its gateway) but its containers cannot reach each other
on it; each allowed pair gets a private network of its own, where both
services answer to their names.  A forbidden path therefore has no route,
not merely a rule.  A pair shares a network both ways, so *direction* is
judged from the spans: an edge A -> B is counted when a span of B has a
parent span of A (see :func:`clnrm.otel.service_graph.service_graph`).

The steps (the test driver) reach the ``entry`` services (default: all) by
joining as few of those pair networks as cover them, plus one private
network for each entry service no pair covers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from clnrm.backends.base import STEPS_MEMBER
from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.layers import Topology
from clnrm.validators.base import Declarations, verdict

Edge = tuple[str, str]


def allowed_edges(topology: Topology) -> list[Edge]:
    return sorted({(a, b) for a, b in topology.allow})


def network_links(topology: Topology, services: Collection[str]) -> tuple[tuple[str, ...], ...]:
    """The groups that share a private network: allowed pairs, with the steps added to cover
    the entry services (greedy: pairs with two uncovered entries first)."""
    pairs = sorted({tuple(sorted(edge)) for edge in allowed_edges(topology)})
    entry = set(services if topology.entry is None else topology.entry)
    links: list[list[str]] = [list(p) for p in pairs]
    uncovered = set(entry)
    while uncovered:
        best = max(links, key=lambda link: (len(uncovered & set(link)), link), default=None)
        if best is None or not uncovered & set(best):
            break
        uncovered -= set(best)
        best.append(STEPS_MEMBER)
    links.extend([name, STEPS_MEMBER] for name in sorted(uncovered))
    return tuple(tuple(link) for link in links)


def _edges_text(edges: Sequence[Edge], calls: dict[Edge, int] | None = None) -> str:
    if not edges:
        return "(no edges)"
    if calls is None:
        return ", ".join(f"{a} -> {b}" for a, b in edges)
    return ", ".join(f"{a} -> {b} ({calls[(a, b)]} call{'s' if calls[(a, b)] != 1 else ''})"
                     for a, b in edges)


def judge_topology(topology: Topology, spans: Sequence[Span], services: Collection[str],
                   where: Declarations) -> list[ValidationResult]:
    """One result: the declared graph against the one in the spans (between declared services).

    Calls from or to anything that is not a declared service (clnrm's own
    spans, steps, external names) are not topology edges and are ignored.
    """
    if topology.match == "off":
        return []
    from clnrm.otel.service_graph import service_graph  # the graph the HTML report draws

    declared = allowed_edges(topology)
    calls = {(e.source, e.target): e.calls for e in service_graph(spans).edges
             if e.source in services and e.target in services}
    seen = sorted(calls)
    unexpected = [e for e in seen if e not in declared]
    missing = [e for e in declared if e not in calls] if topology.match == "exact" else []
    seen_text = _edges_text(seen, calls)
    if unexpected:
        seen_text += f"; unexpected: {_edges_text(unexpected)}"
    if missing:
        seen_text += f"; missing: {_edges_text(missing)}"
    what = "exactly" if topology.match == "exact" else "no more than"
    return [verdict(
        "topology", topology.description or f"spans show {what} the declared service graph",
        not unexpected and not missing, expected=_edges_text(declared), seen=seen_text,
        declared_at=where.at(("orchestration", "topology", "allow"),
                             ("orchestration", "topology")))]
