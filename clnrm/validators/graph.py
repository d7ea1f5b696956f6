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

from collections.abc import Sequence
from operator import attrgetter
from typing import Final

from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect
from clnrm.validators._text import listing, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex

_parent_id: Final = attrgetter("parent_span_id")


def _edges_into(children: list[Span], parent_pattern: str, index: SpanIndex) -> list[Span]:
    """Children whose parent's name matches ``parent_pattern``."""
    found: list[Span] = []
    for child in children:
        if index.parent_named(child, parent_pattern) is not None:
            found.append(child)
    return found


def find_cycle(index: SpanIndex) -> list[Span] | None:
    """The spans of one parent-link cycle, or ``None``.

    Each span is visited once: a walk stamps the spans it passes with its own
    number and stops at a span stamped by an earlier walk (already known to
    end at a root or outside the spans); meeting its own stamp means a cycle.
    With unique span ids (real exports) stamps are keyed by id; otherwise by
    object identity.
    """
    # Every span on a cycle is the parent of another, so walking only from spans
    # that are someone's parent (a few percent of a real export) tells whether a
    # cycle exists, without the full id map (~0.6 s per million spans).  Only
    # then is the full walk made, so which cycle is reported, from which span,
    # does not depend on this shortcut.
    parents = set(map(_parent_id, index.spans))
    parents.discard(None)
    inner = [span for span in index.spans if span.span_id in parents]
    inner_ids = {span.span_id: span for span in inner}
    if len(inner_ids) == len(inner) and _walk_for_cycle(inner, inner_ids) is None:
        return None
    by_id, shared = index.id_maps
    if shared:
        return _find_cycle_by_identity(index)
    found = _walk_for_cycle(index.spans, by_id)
    return None if found is None else _cycle_from(found, index)


def _walk_for_cycle(spans: Sequence[Span], by_id: dict[str, Span]) -> Span | None:
    """The span where a walk up the parent links met itself, or ``None``."""
    stamp: dict[str, int] = {}
    for walk, span in enumerate(spans):
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
                    return parent
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
            up = index.parent_named(span, parent)
            if up is not None:
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
