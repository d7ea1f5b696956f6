"""``[expect.order]``: must_precede / must_follow, judged per trace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel.span import Span
from tests.unit.test_validators_support import assert_fail, assert_pass, mk, only, passed, run

SEQUENCE = [mk("connect", "1", start=0, end=10), mk("query", "2", start=10, end=20)]


def test_must_precede_passes_when_first_ends_before_second_starts() -> None:
    result = only(SEQUENCE, order={"must_precede": [["connect", "query"]]})
    assert_pass(result)
    assert result.expectation == "order must_precede connect -> query"
    assert result.expected == "a span named 'connect' ending before a span named 'query' starts"
    assert result.seen == ("in 1 trace holding both, 'connect' comes first, e.g. trace t1: "
                           "span 1 (connect) ends 0 ms before span 2 (query) starts")
    assert result.declared_at == "expect.order.must_precede[0]"


def test_must_precede_reversed_fails_saying_by_how_much() -> None:
    result = only(SEQUENCE, order={"must_precede": [["query", "connect"]]})
    assert_fail(result, "in 1 of 1 trace holding both, every 'query' ends after every "
                        "'connect' starts, e.g. trace t1: the earliest end (span 2) is 20 ms "
                        "after the latest start (span 1)")


def test_must_follow_is_must_precede_swapped() -> None:
    result = only(SEQUENCE, order={"must_follow": [["query", "connect"]]})
    assert_pass(result)
    assert result.expectation == "order must_follow query -> connect"
    assert result.expected == "a span named 'query' starting after a span named 'connect' ends"
    assert result.declared_at == "expect.order.must_follow[0]"
    assert_fail(only(SEQUENCE, order={"must_follow": [["connect", "query"]]}), "every 'query'")


def test_overlap_fails() -> None:
    spans = [mk("a", "1", start=0, end=15), mk("b", "2", start=10, end=20)]
    assert_fail(only(spans, order={"must_precede": [["a", "b"]]}), "is 5 ms after")


def test_missing_name_fails() -> None:
    result = only(SEQUENCE, order={"must_precede": [["connect", "close"]]})
    assert_fail(result)
    assert result.seen == "no span named 'close'; 2 spans named: connect (1), query (1)"


def test_missing_timestamps_fail() -> None:
    no_end = [mk("a", "1", end=None), mk("b", "2", start=5, end=6)]
    assert_fail(only(no_end, order={"must_precede": [["a", "b"]]}),
                "1 span named 'a', none with an end timestamp")
    no_start = [mk("a", "1"), mk("b", "2", start=None, end=6)]
    assert_fail(only(no_start, order={"must_precede": [["a", "b"]]}),
                "1 span named 'b', none with a start timestamp")


def test_each_trace_holding_both_must_show_the_order() -> None:
    """Upstream compared across traces, so t2's b "followed" t1's a; not here."""
    spans = [mk("a", "1", trace="t1", start=0, end=1), mk("b", "2", trace="t1", start=2, end=3),
             mk("b", "3", trace="t2", start=10, end=11), mk("a", "4", trace="t2", start=12, end=13)]
    assert_fail(only(spans, order={"must_precede": [["a", "b"]]}),
                "in 1 of 2 traces holding both", "e.g. trace t2")


def test_some_pair_within_a_trace_is_enough() -> None:
    spans = [mk("a", "1", start=5, end=6), mk("b", "2", start=0, end=1),
             mk("a", "3", start=0, end=1), mk("b", "4", start=7, end=8)]
    assert_pass(only(spans, order={"must_precede": [["a", "b"]]}))


def test_without_a_shared_trace_spans_are_compared_across_traces() -> None:
    spans = [mk("a", "1", trace="t1", start=0, end=1), mk("b", "2", trace="t2", start=2, end=3)]
    result = only(spans, order={"must_precede": [["a", "b"]]})
    assert_pass(result)
    assert result.seen.startswith("no trace holds both; across traces span 1 (a) ends 1 ms")
    assert_fail(only(spans, order={"must_precede": [["b", "a"]]}),
                "no trace holds both; across traces every 'b' ends after every 'a' starts")


def test_rules_in_declaration_order() -> None:
    results = run(SEQUENCE, order={"must_follow": [["query", "connect"]],
                                   "must_precede": [["connect", "query"], ["query", "connect"]]})
    assert [(r.declared_at, r.status.value) for r in results] == [
        ("expect.order.must_precede[0]", "pass"),
        ("expect.order.must_precede[1]", "fail"),
        ("expect.order.must_follow[0]", "pass"),
    ]


maybe_ms = st.none() | st.integers(0, 20)


@st.composite
def span_sets(draw: st.DrawFn) -> list[Span]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        start = draw(maybe_ms)
        end = draw(maybe_ms)
        trace = draw(st.sampled_from(["t1", "t2"]))
        out.append(mk(draw(st.sampled_from("abc")), str(i), trace=trace, start=start, end=end))
    return out


@settings(max_examples=200, deadline=None)
@given(span_sets(), st.sampled_from("abc"), st.sampled_from("abc"))
def test_must_follow_a_b_equals_must_precede_b_a(spans: list[Span], a: str, b: str) -> None:
    follow = only(spans, order={"must_follow": [[a, b]]})
    precede = only(spans, order={"must_precede": [[b, a]]})
    assert passed(follow) is passed(precede)
    assert follow.seen == precede.seen
