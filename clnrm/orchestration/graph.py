"""The start order of a test's services, from their ``depends_on`` lists.

A service starts the moment *its own* dependencies are ready, not when a
whole level is: levels are kept only to describe the graph (and for callers
that want them), while :attr:`DependencyGraph.requires` is what the start
schedule follows.  Teardown reverses the same edges (:attr:`required_by`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clnrm.errors import ScenarioError


@dataclass(frozen=True)
class DependencyGraph:
    """Services and their dependency edges; acyclic by construction."""

    requires: Mapping[str, frozenset[str]]
    """service -> the services that must be ready before it starts"""
    levels: tuple[tuple[str, ...], ...]
    """topological generations, names sorted within each"""

    @property
    def services(self) -> list[str]:
        return [name for level in self.levels for name in level]

    @property
    def required_by(self) -> dict[str, frozenset[str]]:
        """service -> its dependants (which must be gone before it is stopped)."""
        out: dict[str, set[str]] = {name: set() for name in self.requires}
        for name, deps in self.requires.items():
            for dep in deps:
                out[dep].add(name)
        return {name: frozenset(deps) for name, deps in out.items()}

    def level_of(self, service: str) -> int:
        return next(i for i, level in enumerate(self.levels) if service in level)


def dependency_graph(depends_on: Mapping[str, Sequence[str]], *,
                     source: str | None = None) -> DependencyGraph:
    """Check the edges and order the services; raise ScenarioError naming a cycle.

    ``depends_on`` maps every service to the names it depends on (all of them
    declared: the loader has checked that, but files built in code have not).
    """
    for name, deps in depends_on.items():
        for dep in deps:
            if dep not in depends_on:
                raise ScenarioError(f"service {name!r} depends on unknown service {dep!r}",
                                    file=source, key_path=f"services.{name}.depends_on",
                                    hint="declared services: " + ", ".join(sorted(depends_on)))
    requires = {name: frozenset(deps) for name, deps in depends_on.items()}
    if not any(requires.values()):
        # no edges: one level, and no reason to pay for importing networkx
        return DependencyGraph(requires, (tuple(sorted(requires)),) if requires else ())
    import networkx as nx  # lazy: keeps `clnrm --help` fast

    graph = nx.DiGraph()
    graph.add_nodes_from(requires)
    graph.add_edges_from((dep, name) for name, deps in requires.items() for dep in deps)
    try:
        cycle = nx.find_cycle(graph.reverse(copy=False))  # name -> dep: "a needs b"
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
        raise ScenarioError(f"services depend on each other in a cycle: {path} "
                            "(each depends on the next)",
                            file=source, key_path="services.*.depends_on",
                            hint="remove one depends_on entry to break the cycle")
    levels = tuple(tuple(sorted(gen)) for gen in nx.topological_generations(graph))
    return DependencyGraph(requires, levels)
