"""``[expect.graph]``: must_include / must_not_cross edges and acyclic parent links."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel.span import Span
from clnrm.validators import SpanIndex
from clnrm.validators.graph import find_cycle
from tests.unit.test_validators_support import assert_fail, assert_pass, mk, only, passed, run

TREE = [
    mk("api.request", "1"),
    mk("db.query", "2", "1"),
    mk("cache.get", "3", "1"),
    mk("db.query", "4", "3"),
]


def test_must_include_edge_present_passes() -> None:
    result = only(TREE, graph={"must_include": [["api.request", "db.query"]]})
    assert_pass(result)
    assert result.expectation == "graph must_include api.request -> db.query"
    assert result.seen == "span 2 (db.query) under 1 (api.request)"
    assert result.declared_at == "expect.graph.must_include[0]"


def test_must_include_edge_absent_fails_listing_actual_parents() -> None:
    result = only(TREE, graph={"must_include": [["db.query", "cache.get"]]})
    assert_fail(result)
    assert result.expected == "a span named 'cache.get' whose parent is named 'db.query'"
    assert result.seen == "1 span named 'cache.get', their parents: api.request (1)"


def test_must_include_reports_roots_and_missing_parents() -> None:
    spans = [*TREE, mk("x", "5"), mk("x", "6", "zz")]
    result = only(spans, graph={"must_include": [["api.request", "x"]]})
    assert_fail(result, "2 spans named 'x', their parents: <missing parent> (1), <root> (1)")


def test_must_include_missing_name_fails() -> None:
    result = only(TREE, graph={"must_include": [["gateway", "api.request"]]})
    assert_fail(result, "no span named 'gateway'; 4 spans named: db.query (2)")


def test_must_include_with_globs() -> None:
    assert_pass(only(TREE, graph={"must_include": [["*.get", "db.*"]]}))


def test_must_include_edge_only_within_a_trace() -> None:
    spans = [mk("a", "1", trace="t1"), mk("b", "2", "1", trace="t2")]
    assert_fail(only(spans, graph={"must_include": [["a", "b"]]}), "<missing parent> (1)")


def test_must_not_cross_absent_edge_passes() -> None:
    result = only(TREE, graph={"must_not_cross": [["db.query", "api.request"]]})
    assert_pass(result)
    assert result.seen == "1 span named 'api.request', none under 'db.query'"
    assert result.declared_at == "expect.graph.must_not_cross[0]"


def test_must_not_cross_missing_names_pass() -> None:
    assert_pass(only(TREE, graph={"must_not_cross": [["nope", "nada"]]}))


def test_must_not_cross_present_edge_fails() -> None:
    result = only(TREE, graph={"must_not_cross": [["cache.get", "db.query"]]})
    assert_fail(result, "1 span named 'db.query' under 'cache.get', e.g. span 4 in trace t1")
    assert result.expected == "no span named 'db.query' directly under a span named 'cache.get'"


def test_acyclic_tree_passes() -> None:
    result = only(TREE, graph={"acyclic": True})
    assert_pass(result)
    assert result.seen == "no cycle among 4 spans"
    assert result.declared_at == "expect.graph.acyclic"


def test_acyclic_cycle_fails_naming_its_spans() -> None:
    spans = [mk("a", "1", "3"), mk("b", "2", "1"), mk("c", "3", "2"), mk("d", "4")]
    result = only(spans, graph={"acyclic": True})
    assert_fail(result, "a cycle of 3 spans:")
    assert "a (1)" in result.seen and "b (2)" in result.seen and "c (3)" in result.seen


def test_acyclic_self_parent_fails() -> None:
    result = only([mk("a", "1", "1")], graph={"acyclic": True})
    assert_fail(result, "a cycle of 1 span: a (1) -> a (1)")


def test_reused_ids_across_traces_make_no_false_cycle() -> None:
    """t1: 1 <- 2 ; t2: 2 <- 1.  Linking by id alone (upstream) sees 1 <-> 2."""
    spans = [mk("a", "1", trace="t1"), mk("b", "2", "1", trace="t1"),
             mk("c", "2", trace="t2"), mk("d", "1", "2", trace="t2")]
    assert_pass(only(spans, graph={"acyclic": True}))
    cyclic = [*spans, mk("e", "9", "8", trace="t3"), mk("f", "8", "9", trace="t3")]
    assert_fail(only(cyclic, graph={"acyclic": True}), "a cycle of 2 spans")


def test_acyclic_false_asks_nothing() -> None:
    assert run(TREE, graph={"acyclic": False}) == []


def test_results_in_declaration_order_per_rule() -> None:
    results = run(TREE, graph={"must_include": [["a", "b"], ["api.request", "cache.get"]],
                               "must_not_cross": [["x", "y"]], "acyclic": True})
    assert [r.declared_at for r in results] == [
        "expect.graph.must_include[0]", "expect.graph.must_include[1]",
        "expect.graph.must_not_cross[0]", "expect.graph.acyclic",
    ]
    assert [r.status.value for r in results] == ["fail", "pass", "pass", "pass"]


@st.composite
def forests(draw: st.DrawFn) -> list[Span]:
    """Spans whose parent (if any) comes earlier in a shuffled order: never a cycle."""
    n = draw(st.integers(1, 40))
    parents = [None] + [draw(st.none() | st.integers(0, i - 1)) for i in range(1, n)]
    spans = [mk(f"n{i % 4}", f"{i:x}", None if p is None else f"{p:x}")
             for i, p in enumerate(parents)]
    return draw(st.permutations(spans))


@settings(max_examples=150, deadline=None)
@given(forests(), st.data())
def test_acyclic_holds_for_forests_and_fails_once_a_back_edge_is_added(
    spans: list[Span], data: st.DataObject
) -> None:
    assert find_cycle(SpanIndex(spans)) is None
    assert passed(only(spans, graph={"acyclic": True}))
    # Point one span at one of its own descendants (or itself): that closes a cycle.
    victim = data.draw(st.sampled_from(spans))
    index = SpanIndex(spans)
    below = [s for s in spans if _has_ancestor(s, victim, index)] + [victim]
    target = data.draw(st.sampled_from(below))
    victim.parent_span_id = target.span_id
    cycle = find_cycle(SpanIndex(spans))
    assert cycle is not None and victim in cycle
    assert not passed(only(spans, graph={"acyclic": True}))


def _has_ancestor(span: Span, ancestor: Span, index: SpanIndex) -> bool:
    current = index.parent_of(span)
    while current is not None:
        if current is ancestor:
            return True
        current = index.parent_of(current)
    return False
