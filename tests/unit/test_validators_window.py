"""``[[expect.window]]``: every contained span lies inside an outer span's window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clnrm.validators.window import Windows
from tests.unit.test_validators_support import MS, assert_fail, assert_pass, mk, only, run

OUTER = mk("request", "1", start=0, end=100)


def test_children_inside_pass() -> None:
    spans = [OUTER, mk("db", "2", "1", start=10, end=20), mk("cache", "3", "1", start=0, end=100)]
    result = only(spans, window=[{"outer": "request", "contains": ["db", "cache"]}])
    assert_pass(result)
    assert result.expectation == "window 'request' contains db, cache"
    assert result.expected == ("every span named 'db', 'cache' inside the time window of a span "
                               "named 'request'")
    assert result.seen == "all 2 spans inside windows of 1 span named 'request'"
    assert result.declared_at == "expect.window[0]"


def test_child_ending_late_fails_saying_by_how_much() -> None:
    spans = [OUTER, mk("db", "2", "1", start=10, end=20), mk("db", "3", "1", start=90, end=112.5)]
    result = only(spans, window=[{"outer": "request", "contains": ["db"]}])
    assert_fail(result, "1 of 2 named 'db' outside, e.g. span 3 (db) ends 12.5 ms after "
                        "its trace's request (span 1)")


def test_child_starting_early_fails() -> None:
    spans = [mk("request", "1", start=10, end=100), mk("db", "2", "1", start=7, end=20)]
    assert_fail(only(spans, window=[{"outer": "request", "contains": ["db"]}]),
                "starts 3 ms before its trace's request")


def test_every_child_counts_not_only_the_first() -> None:
    """Upstream compared the first span of each name; a later stray one fails here."""
    spans = [OUTER, mk("db", "2", "1", start=1, end=2), mk("db", "3", "1", start=150, end=160)]
    assert_fail(only(spans, window=[{"outer": "request", "contains": ["db"]}]), "1 of 2")


def test_missing_outer_fails() -> None:
    result = only([mk("db", "2")], window=[{"outer": "request", "contains": ["db"]}])
    assert_fail(result)
    assert result.seen == "no span named 'request'; 1 span named: db (1)"


def test_outer_without_timestamps_fails() -> None:
    spans = [mk("request", "1", start=None), mk("db", "2", "1")]
    assert_fail(only(spans, window=[{"outer": "request", "contains": ["db"]}]),
                "1 span named 'request', none with both start and end timestamps")


def test_missing_child_fails() -> None:
    result = only([OUTER], window=[{"outer": "request", "contains": ["db", "cache"]}])
    assert_fail(result)
    assert result.seen == "no span named 'db'; no span named 'cache'"


def test_child_without_timestamps_fails() -> None:
    spans = [OUTER, mk("db", "2", "1", start=5, end=None)]
    assert_fail(only(spans, window=[{"outer": "request", "contains": ["db"]}]),
                "1 of 1 named 'db' without both timestamps")


def test_child_judged_against_the_outer_span_of_its_own_trace() -> None:
    """db in t2 lies inside t1's request but outside t2's own: that is a failure."""
    spans = [OUTER, mk("request", "9", trace="t2", start=200, end=300),
             mk("db", "2", "9", trace="t2", start=50, end=60)]
    assert_fail(only(spans, window=[{"outer": "request", "contains": ["db"]}]),
                "starts 150 ms before its trace's request (span 9)")


def test_child_in_a_trace_without_outer_is_judged_against_any_outer() -> None:
    spans = [OUTER, mk("request", "9", start=200, end=300, trace="t9"),
             mk("worker", "5", trace="t3", start=210, end=220)]
    assert_pass(only(spans, window=[{"outer": "request", "contains": ["worker"]}]))
    late = [*spans, mk("worker", "6", trace="t4", start=250, end=350)]
    assert_fail(only(late, window=[{"outer": "request", "contains": ["worker"]}]),
                "ends 50 ms after the nearest request (span 9)")


def test_globs_for_outer_and_contained() -> None:
    spans = [mk("svc.handle", "1", start=0, end=10), mk("db.query", "2", "1", start=1, end=2),
             mk("db.connect", "3", "1", start=2, end=3)]
    assert_pass(only(spans, window=[{"outer": "*.handle", "contains": ["db.*"]}]))


def test_one_result_per_window_entry() -> None:
    spans = [OUTER, mk("db", "2", "1", start=1, end=2)]
    results = run(spans, window=[{"outer": "request", "contains": ["db"]},
                                 {"outer": "request", "contains": ["nope"]}])
    assert [(r.status.value, r.declared_at) for r in results] == [
        ("pass", "expect.window[0]"), ("fail", "expect.window[1]"),
    ]


intervals = st.tuples(st.integers(0, 50), st.integers(0, 50)).map(sorted)


@given(st.lists(intervals, min_size=1, max_size=12), intervals)
def test_cross_trace_lookup_agrees_with_brute_force(outers: list, child: list) -> None:
    """The bisection over sorted windows answers exactly 'is there a containing window'."""
    spans = [mk("o", str(i), trace=f"o{i}", start=a, end=b) for i, (a, b) in enumerate(outers)]
    windows = Windows(spans)
    probe = mk("c", "x", trace="elsewhere", start=child[0], end=child[1])
    start, end = child[0] * MS, child[1] * MS
    brute = any(a * MS <= start and end <= b * MS for a, b in outers)
    assert windows.contains(probe, start, end) is brute
