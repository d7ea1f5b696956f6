"""``[expect.order]``: must_precede / must_follow, judged per trace."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clnrm.otel.span import Span
from clnrm.scenario.expect import Expect
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


# `every = true`: the universal quantifier (ours; upstream's rule is the default)

REPEATED = [mk("start", "1", start=0, end=10), mk("ready", "2", start=5, end=8),
            mk("start", "3", start=12, end=20)]  # a 'start' runs after 'ready'


def test_every_fails_where_one_repeated_span_changed_places() -> None:
    rule = {"must_precede": [["ready", "start"]]}
    assert_pass(only(REPEATED, order=rule))  # some 'ready' precedes some 'start'
    result = only(REPEATED, order={**rule, "every": True})
    assert_fail(result, "in 1 of 1 trace holding both, some 'ready' ends after some 'start' "
                        "starts, e.g. trace t1: the latest end (span 2) is 8 ms after the "
                        "earliest start (span 1)")
    assert result.expected == ("every span named 'ready' ending before every span named "
                               "'start' starts")
    assert result.declared_at == "expect.order.must_precede[0]"


def test_every_passes_when_all_of_a_end_before_any_of_b() -> None:
    spans = [mk("a", "1", start=0, end=2), mk("a", "2", start=1, end=4),
             mk("b", "3", start=4, end=6), mk("b", "4", start=5, end=9)]
    result = only(spans, order={"must_precede": [["a", "b"]], "every": True})
    assert_pass(result)
    assert result.seen == ("in 1 trace holding both, every 'a' comes first, e.g. trace t1: "
                           "span 2 (a) ends 0 ms before span 3 (b) starts")
    follow = only(spans, order={"must_follow": [["b", "a"]], "every": True})
    assert_pass(follow)
    assert follow.expected == "every span named 'b' starting after every span named 'a' ends"


def test_every_judges_each_trace_and_falls_back_across_traces() -> None:
    spans = [mk("a", "1", trace="t1", start=0, end=1), mk("b", "2", trace="t1", start=2, end=3),
             mk("a", "3", trace="t2", start=0, end=5), mk("b", "4", trace="t2", start=6, end=7),
             mk("a", "5", trace="t2", start=8, end=9)]
    assert_fail(only(spans, order={"must_precede": [["a", "b"]], "every": True}),
                "in 1 of 2 traces holding both", "e.g. trace t2")
    apart = [mk("a", "1", trace="t1", start=0, end=1), mk("b", "2", trace="t2", start=2, end=3),
             mk("a", "3", trace="t3", start=4, end=5)]
    assert_pass(only(apart, order={"must_precede": [["a", "b"]]}))
    assert_fail(only(apart, order={"must_precede": [["a", "b"]], "every": True}),
                "no trace holds both; across traces some 'a' ends after some 'b' starts")


def test_every_fails_on_a_span_it_cannot_place() -> None:
    spans = [mk("a", "1", start=0, end=1), mk("a", "2", end=None), mk("b", "3", start=2, end=3)]
    assert_pass(only(spans, order={"must_precede": [["a", "b"]]}))
    assert_fail(only(spans, order={"must_precede": [["a", "b"]], "every": True}),
                "1 of 2 spans named 'a' without an end timestamp, e.g. span 2")
    assert_fail(only([*spans[:1], mk("b", "3", start=None, end=3)],
                     order={"must_precede": [["a", "b"]], "every": True}),
                "1 of 1 span named 'b' without a start timestamp")


def test_every_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError):
        Expect.model_validate({"order": {"must_precede": [["a", "b"]], "every": "sometimes"}})


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
@given(span_sets(), st.sampled_from("abc"), st.sampled_from("abc"), st.booleans())
def test_must_follow_a_b_equals_must_precede_b_a(spans: list[Span], a: str, b: str,
                                                 every: bool) -> None:
    follow = only(spans, order={"must_follow": [[a, b]], "every": every})
    precede = only(spans, order={"must_precede": [[b, a]], "every": every})
    assert passed(follow) is passed(precede)
    assert follow.seen == precede.seen
    if every and passed(precede):  # the universal rule implies the existential one
        assert passed(only(spans, order={"must_precede": [[b, a]]}))
