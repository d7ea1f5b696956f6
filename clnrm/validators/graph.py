"""``[expect.graph]``: parent/child edges that must, or must not, exist.

Upstream semantics (``validation/graph_validator.rs``): ``must_include
[a, b]`` holds when some span named ``b`` has a parent named ``a`` (a missing
``a`` or ``b`` fails); ``must_not_cross [a, b]`` fails only if such an edge
exists (missing names pass); ``acyclic = true`` follows parent links and
ignores parents that are not among the spans.  Deviations:

- names may be globs, as in ``[[expect.span]]``;
- a parent link resolves within the child's trace, so reused span ids in
  different traces do not create edges (or cycles) that never happened;
- ``acyclic = false`` asks nothing and yields no result.
"""

from __future__ import annotations

from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect
from clnrm.validators._text import listing, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex, name_matches


def _edges_into(children: list[Span], parent_pattern: str, index: SpanIndex) -> list[Span]:
    """Children whose parent's name matches ``parent_pattern``."""
    found: list[Span] = []
    for child in children:
        parent = index.parent_of(child)
        if parent is not None and name_matches(parent.name, parent_pattern):
            found.append(child)
    return found


def find_cycle(index: SpanIndex) -> list[Span] | None:
    """The spans of one parent-link cycle, or ``None``.

    Each span is visited once: a walk stamps the spans it passes with its own
    number and stops at a span stamped by an earlier walk (already known to
    end at a root or outside the spans); meeting its own stamp means a cycle.
    With unique span ids (real exports) stamps are keyed by id, whose hash
    is already cached: ~0.5 s per million spans; otherwise by object identity.
    """
    by_id, shared = index.id_maps
    if shared:
        return _find_cycle_by_identity(index)
    stamp: dict[str, int] = {}
    for walk, span in enumerate(index.spans):
        if span.span_id in stamp:
            continue
        stamp[span.span_id] = walk
        current = span
        while (parent_id := current.parent_span_id) is not None:
            parent = by_id.get(parent_id)
            if parent is None or parent.trace_id != current.trace_id:
                break
            seen = stamp.get(parent_id)
            if seen is not None:
                if seen == walk:
                    return _cycle_from(parent, index)
                break
            stamp[parent_id] = walk
            current = parent
    return None


def _find_cycle_by_identity(index: SpanIndex) -> list[Span] | None:
    """:func:`find_cycle` for span sets that reuse ids across traces."""
    stamp: dict[int, int] = {}
    for walk, span in enumerate(index.spans):
        current: Span | None = span
        while current is not None:
            seen = stamp.get(id(current))
            if seen is not None:
                if seen == walk:
                    return _cycle_from(current, index)
                break
            stamp[id(current)] = walk
            current = index.parent_of(current)
    return None


def _cycle_from(start: Span, index: SpanIndex) -> list[Span]:
    cycle = [start]
    current = index.parent_of(start)
    while current is not None and current is not start:
        cycle.append(current)
        current = index.parent_of(current)
    return cycle


class GraphValidator:
    """One result per ``must_include`` / ``must_not_cross`` edge, then ``acyclic``."""

    name = "graph"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        graph = expect.graph
        if graph is None:
            return []
        results = [
            self._include(i, parent, child, index, where)
            for i, (parent, child) in enumerate(graph.must_include)
        ]
        results += [
            self._not_cross(i, parent, child, index, where)
            for i, (parent, child) in enumerate(graph.must_not_cross)
        ]
        if graph.acyclic:
            results.append(self._acyclic(index, where))
        return results

    def _include(
        self, i: int, parent: str, child: str, index: SpanIndex, where: Declarations
    ) -> ValidationResult:
        expectation = f"graph must_include {parent} -> {child}"
        expected = f"a span named {quoted(child)} whose parent is named {quoted(parent)}"
        declared_at = where.at(("expect", "graph", "must_include", i))
        for name in (parent, child):
            if not index.names_matching(name):
                seen = f"no span named {quoted(name)}; {name_counts(index.name_counts)}"
                return verdict(self.name, expectation, False, expected=expected, seen=seen,
                               declared_at=declared_at)
        children = index.named(child)
        for span in children:
            up = index.parent_of(span)
            if up is not None and name_matches(up.name, parent):
                seen = f"span {span.span_id} ({span.name}) under {up.span_id} ({up.name})"
                return verdict(self.name, expectation, True, expected=expected, seen=seen,
                               declared_at=declared_at)
        seen = (f"{plural(len(children), 'span')} named {quoted(child)}, "
                f"their parents: {listing(index.parent_names(children))}")
        return verdict(self.name, expectation, False, expected=expected, seen=seen,
                       declared_at=declared_at)

    def _not_cross(
        self, i: int, parent: str, child: str, index: SpanIndex, where: Declarations
    ) -> ValidationResult:
        expectation = f"graph must_not_cross {parent} -> {child}"
        expected = f"no span named {quoted(child)} directly under a span named {quoted(parent)}"
        declared_at = where.at(("expect", "graph", "must_not_cross", i))
        children = index.named(child)
        crossing = _edges_into(children, parent, index) if index.names_matching(parent) else []
        if not crossing:
            seen = (f"{plural(len(children), 'span')} named {quoted(child)}, none under "
                    f"{quoted(parent)}")
            return verdict(self.name, expectation, True, expected=expected, seen=seen,
                           declared_at=declared_at)
        first = crossing[0]
        seen = (f"{plural(len(crossing), 'span')} named {quoted(child)} under {quoted(parent)}, "
                f"e.g. span {first.span_id} in trace {first.trace_id[:8]}")
        return verdict(self.name, expectation, False, expected=expected, seen=seen,
                       declared_at=declared_at)

    def _acyclic(self, index: SpanIndex, where: Declarations) -> ValidationResult:
        expectation = "graph acyclic"
        expected = "parent links that never loop back"
        declared_at = where.at(("expect", "graph", "acyclic"))
        cycle = find_cycle(index)
        if cycle is None:
            seen = f"no cycle among {plural(len(index), 'span')}"
            return verdict(self.name, expectation, True, expected=expected, seen=seen,
                           declared_at=declared_at)
        shown = cycle if len(cycle) <= 6 else cycle[:5]
        path = " -> ".join(f"{s.name} ({s.span_id})" for s in shown)
        if len(shown) < len(cycle):
            path += f" -> ... {len(cycle) - len(shown)} more"
        path += f" -> {cycle[0].name} ({cycle[0].span_id})"
        seen = f"a cycle of {plural(len(cycle), 'span')}: {path}"
        return verdict(self.name, expectation, False, expected=expected, seen=seen,
                       declared_at=declared_at)
