"""``[expect.counts]``: totals and per-name counts with eq / gte / lte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clnrm.results import ValidationStatus
from clnrm.scenario.expect import CountBound
from clnrm.validators._text import bound_holds, bound_text
from tests.unit.test_validators_support import assert_fail, assert_pass, mk, only, passed, run

SPANS = [
    mk("http.get", "1", status="OK"),
    mk("http.get", "2", status="ERROR", events=["exception"]),
    mk("db.query", "3", attrs={"error": True}, events=["retry", "retry"]),
    mk("db.query", "4", status="ERROR", attrs={"error": "true"}),
    mk("cache.get", "5", attrs={"event.count": 5}, events=["hit"]),
]


def test_spans_total_eq_passes() -> None:
    result = only(SPANS, counts={"spans_total": {"eq": 5}})
    assert_pass(result)
    assert result.expectation == "counts spans_total"
    assert result.expected == "spans: exactly 5"
    assert result.seen == "5 spans named: db.query (2), http.get (2), cache.get (1)"
    assert result.declared_at == "expect.counts.spans_total"


@pytest.mark.parametrize(
    ("bound", "ok", "expected"),
    [
        ({"gte": 5}, True, "spans: at least 5"),
        ({"gte": 6}, False, "spans: at least 6"),
        ({"lte": 5}, True, "spans: at most 5"),
        ({"lte": 4}, False, "spans: at most 4"),
        ({"gte": 2, "lte": 5}, True, "spans: between 2 and 5"),
        ({"gte": 6, "lte": 9}, False, "spans: between 6 and 9"),
        ({"eq": 4}, False, "spans: exactly 4"),
    ],
)
def test_spans_total_bounds(bound: dict, ok: bool, expected: str) -> None:
    result = only(SPANS, counts={"spans_total": bound})
    assert passed(result) is ok
    assert result.expected == expected


def test_eq_wins_over_gte_and_lte() -> None:
    assert_pass(only(SPANS, counts={"spans_total": {"eq": 5, "gte": 1, "lte": 2}}))
    assert_fail(only(SPANS, counts={"spans_total": {"eq": 3, "gte": 1, "lte": 9}}),
                "5 spans named")


def test_errors_total_counts_error_status_and_error_attribute_once_each() -> None:
    result = only(SPANS, counts={"errors_total": {"eq": 3}})
    assert_pass(result)
    assert result.seen == "3 error spans named: db.query (2), http.get (1)"
    assert_fail(only(SPANS, counts={"errors_total": {"lte": 2}}), "3 error spans named")


def test_errors_total_with_no_errors_says_so() -> None:
    result = only([mk("a", "1", attrs={"error": False})], counts={"errors_total": {"gte": 1}})
    assert_fail(result)
    assert result.seen == "no error spans among 1 span"


def test_events_total_counts_listed_events_or_the_larger_event_count() -> None:
    """1 + 2 listed, and cache.get's event.count = 5 beats its single listed event."""
    result = only(SPANS, counts={"events_total": {"eq": 8}})
    assert_pass(result)
    assert result.seen == "8 events on spans named: cache.get (5), db.query (2), http.get (1)"
    assert_fail(only(SPANS, counts={"events_total": {"gte": 9}}), "8 events")


def test_events_total_with_no_events_says_so() -> None:
    assert_fail(only([mk("a", "1")], counts={"events_total": {"gte": 1}}), "no events on 1 span")


def test_by_name_exact() -> None:
    result = only(SPANS, counts={"by_name": {"db.query": {"eq": 2}}})
    assert_pass(result)
    assert result.expectation == "counts by_name 'db.query'"
    assert result.expected == "spans named 'db.query': exactly 2"
    assert result.seen == "2 spans named 'db.query'"
    assert result.declared_at == 'expect.counts.by_name."db.query"'


def test_by_name_wrong_count_fails() -> None:
    result = only(SPANS, counts={"by_name": {"db.query": {"gte": 3}}})
    assert_fail(result, "2 spans named 'db.query'")


def test_by_name_absent_fails_listing_names_unless_zero_is_expected() -> None:
    result = only(SPANS, counts={"by_name": {"queue.send": {"gte": 1}}})
    assert_fail(result, "no span named 'queue.send'; 5 spans named: db.query (2), http.get (2)")
    assert_pass(only(SPANS, counts={"by_name": {"queue.send": {"eq": 0}}}))


def test_by_name_glob_counts_every_matching_name() -> None:
    result = only(SPANS, counts={"by_name": {"*.get": {"eq": 3}}})
    assert_pass(result)
    assert result.seen == "3 spans named: http.get (2), cache.get (1)"


def test_bound_without_limits_is_skipped() -> None:
    result = only(SPANS, counts={"by_name": {"db.query": {}}})
    assert result.status is ValidationStatus.SKIP
    assert result.message == "counts by_name 'db.query': no bound given (eq, gte or lte)"


def test_totals_then_by_name_in_order() -> None:
    results = run(SPANS, counts={"by_name": {"a": {"eq": 0}, "b": {"eq": 0}},
                                 "errors_total": {"gte": 0}, "spans_total": {"gte": 0}})
    assert [r.expectation for r in results] == [
        "counts spans_total", "counts errors_total", "counts by_name 'a'", "counts by_name 'b'",
    ]


counts = st.integers(0, 30)


@given(counts, st.none() | counts, st.none() | counts, st.none() | counts)
def test_bound_holds_matches_its_definition(
    value: int, eq: int | None, gte: int | None, lte: int | None
) -> None:
    if gte is not None and lte is not None and gte > lte:
        gte, lte = lte, gte
    bound = CountBound(eq=eq, gte=gte, lte=lte)
    if eq is not None:
        expected = value == eq
    else:
        expected = (gte is None or value >= gte) and (lte is None or value <= lte)
    assert bound_holds(bound, value) is expected
    # eq is the same as gte = lte = eq, and bound_text names whichever applies
    if eq is not None:
        assert bound_holds(bound, value) is bound_holds(CountBound(gte=eq, lte=eq), value)
        assert bound_text(bound) == f"exactly {eq}"


@given(st.integers(0, 12), counts, counts)
def test_spans_total_agrees_with_bound_holds(n: int, a: int, b: int) -> None:
    spans = [mk("s", str(i)) for i in range(n)]
    low, high = min(a, b), max(a, b)
    result = only(spans, counts={"spans_total": {"gte": low, "lte": high}})
    assert passed(result) is (low <= n <= high)
