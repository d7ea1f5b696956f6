"""``[[expect.span]]``: some span of the name satisfies every constraint."""

from __future__ import annotations

import pytest

from tests.unit.test_validators_support import assert_fail, assert_pass, mk, only, run


def test_span_present_passes_and_names_the_match() -> None:
    result = only([mk("api.request", "a1")], span=[{"name": "api.request"}])
    assert_pass(result)
    assert result.validator == "span"
    assert result.expectation == "span 'api.request'"
    assert result.seen == "1 span named 'api.request'; span a1 matches"
    assert result.declared_at == "expect.span[0]"


def test_missing_span_fails_listing_what_was_seen() -> None:
    spans = [mk("http.get", "1"), mk("http.get", "2"), mk("db.query", "3")]
    result = only(spans, span=[{"name": "api.request"}])
    assert_fail(result)
    assert result.expected == "a span named 'api.request'"
    assert result.seen == "no span named 'api.request'; 3 spans named: http.get (2), db.query (1)"
    assert result.declared_at == "expect.span[0]"


def test_missing_span_with_no_spans_at_all_says_so() -> None:
    assert_fail(only([], span=[{"name": "x"}]), "no span named 'x'; no spans")


def test_seen_lists_at_most_five_names() -> None:
    spans = [mk(f"n{i}", str(i)) for i in range(8)]
    result = only(spans, span=[{"name": "x"}])
    assert result.seen.endswith("n0 (1), n1 (1), n2 (1), n3 (1), n4 (1) and 3 more names")


def test_kind_matches() -> None:
    assert_pass(only([mk("a", "1", kind="server")], span=[{"name": "a", "kind": "SERVER"}]))


def test_kind_mismatch_fails_with_what_the_span_had() -> None:
    result = only([mk("a", "1", kind="client")], span=[{"name": "a", "kind": "server"}])
    assert_fail(result, "kind client (want server)")
    assert result.expected == "a span named 'a' with kind server"


def test_some_span_may_satisfy_not_only_the_first() -> None:
    """Upstream checked only the first span of the name; any one will do here."""
    spans = [mk("a", "1", kind="client"), mk("a", "2", kind="server")]
    result = only(spans, span=[{"name": "a", "kind": "server"}])
    assert_pass(result)
    assert "span 2 matches" in result.seen


def test_all_constraints_must_hold_on_the_same_span() -> None:
    spans = [mk("a", "1", kind="server"), mk("a", "2", status="OK")]
    result = only(spans, span=[{"name": "a", "kind": "server", "status": "OK"}])
    assert_fail(result, "2 spans named 'a', none matches")


def test_failure_names_the_closest_candidate_and_tallies_constraints() -> None:
    spans = [
        mk("a", "1", kind="client", attrs={"x": "no"}),
        mk("a", "2", kind="server", attrs={"x": "no"}),
    ]
    result = only(spans, span=[{"name": "a", "kind": "server", "attrs": {"all": {"x": "yes"}}}])
    assert_fail(result, "closest (span 2): x='no' (want 'yes')")
    assert "span 1 (trace t1): kind client (want server); x='no' (want 'yes')" in result.message
    assert "constraints failed: kind on 1, attr x on 2 (of 2)" in result.message


def test_parent_by_name_passes() -> None:
    spans = [mk("root", "1"), mk("child", "2", "1")]
    assert_pass(only(spans, span=[{"name": "child", "parent": "root"}]))


@pytest.mark.parametrize(
    ("spans", "seen"),
    [
        ([mk("other", "1"), mk("child", "2", "1")], "parent 'other' (want 'root')"),
        ([mk("child", "2")], "root span, no parent (want 'root')"),
        ([mk("child", "2", "ff")], "parent id ff not among the spans (want 'root')"),
        ([mk("root", "1", trace="t0"), mk("child", "2", "1", trace="t1")],
         "parent id 1 not among the spans"),
    ],
    ids=["wrong-parent", "root-span", "unknown-parent-id", "parent-in-other-trace"],
)
def test_parent_mismatch_fails(spans: list, seen: str) -> None:
    assert_fail(only(spans, span=[{"name": "child", "parent": "root"}]), seen)


def test_parent_may_be_a_glob() -> None:
    spans = [mk("orders.handle", "1"), mk("db.query", "2", "1")]
    assert_pass(only(spans, span=[{"name": "db.query", "parent": "*.handle"}]))


def test_attrs_all_compare_as_text_across_types() -> None:
    span = mk("a", "1", attrs={"ok": True, "code": 200, "ratio": 2.0, "tags": ["x", "y"], "s": "v"})
    attrs = {"ok": True, "code": 200, "ratio": 2, "tags": "x,y", "s": "v"}
    assert_pass(only([span], span=[{"name": "a", "attrs": {"all": attrs}}]))


@pytest.mark.parametrize(
    ("attrs", "seen"),
    [
        ({"ok": False}, "ok='false' (want 'true')"),
        ({}, "no attribute ok (want 'true')"),
        ({"ok": None}, "no attribute ok (want 'true')"),
        ({"ok": "TRUE"}, "ok='TRUE' (want 'true')"),
    ],
)
def test_attrs_all_mismatch_fails(attrs: dict, seen: str) -> None:
    result = only([mk("a", "1", attrs=attrs)], span=[{"name": "a", "attrs": {"all": {"ok": True}}}])
    assert_fail(result, seen)
    assert result.expected == "a span named 'a' with attrs ok='true'"


def test_attrs_any_needs_one_pair() -> None:
    span = mk("a", "1", attrs={"region": "eu"})
    tables = {"span": [{"name": "a", "attrs": {"any": {"region": "eu", "zone": "b"}}}]}
    assert_pass(only([span], **tables))
    other = mk("a", "1", attrs={"region": "us"})
    assert_fail(only([other], **tables), "none of attrs.any matched (region, zone)")


def test_events_all_and_any() -> None:
    span = mk("a", "1", events=["start", "retry"])
    assert_pass(only([span], span=[{"name": "a", "events": {"all": ["start", "retry"]}}]))
    assert_pass(only([span], span=[{"name": "a", "events": {"any": ["boom", "retry"]}}]))


def test_events_all_missing_one_fails() -> None:
    span = mk("a", "1", events=["start"])
    result = only([span], span=[{"name": "a", "events": {"all": ["start", "retry"]}}])
    assert_fail(result, "missing events retry (span has: start)")


def test_events_any_on_span_without_events_fails() -> None:
    result = only([mk("a", "1")], span=[{"name": "a", "events": {"any": ["retry"]}}])
    assert_fail(result, "none of events retry (span has: none)")


def test_duration_within_inclusive_bounds() -> None:
    span = mk("a", "1", start=10, end=60)
    assert_pass(only([span], span=[{"name": "a", "duration_ms": {"min": 50, "max": 50}}]))


@pytest.mark.parametrize(
    ("start", "end", "seen"),
    [
        (0, 150, "duration 150 ms (want 10 ms to 100 ms)"),
        (0, 5, "duration 5 ms (want 10 ms to 100 ms)"),
        (None, 5, "no duration: start or end timestamp missing"),
        (0, None, "no duration: start or end timestamp missing"),
        (10, 5, "no duration: end timestamp precedes start"),
    ],
)
def test_duration_out_of_bounds_or_unknown_fails(
    start: float | None, end: float | None, seen: str
) -> None:
    span = mk("a", "1", start=start, end=end)
    result = only([span], span=[{"name": "a", "duration_ms": {"min": 10, "max": 100}}])
    assert_fail(result, seen)
    assert result.expected == "a span named 'a' with duration 10 ms to 100 ms"


def _gateway(*children: tuple[float | None, float | None], trace: str = "t1") -> list:
    """A 0-100 ms span ``g`` with children ``c0``, ``c1``... at the given (start, end)."""
    return [mk("g", "g", trace=trace, start=0, end=100)] + [
        mk(f"c{i}", f"c{i}", "g", trace=trace, start=s, end=e)
        for i, (s, e) in enumerate(children)]


@pytest.mark.parametrize(
    ("children", "own"),
    [
        ((), 100),
        (((10, 40),), 70),
        (((10, 40), (60, 70)), 60),  # sequential
        (((10, 40), (20, 50)), 60),  # concurrent: overlap counted once
        (((10, 40), (15, 25)), 70),  # one inside another
        (((90, 150),), 90),  # async child outliving the span: clipped at its end
        (((-20, 10),), 90),  # skewed child starting before the span: clipped at its start
        (((120, 150),), 100),  # after the span: covers nothing
        (((10, None),), 100),  # untimed child covers nothing
    ],
)
def test_self_time_is_duration_minus_union_of_children(children: tuple, own: float) -> None:
    from clnrm.validators.span import self_time_ns

    spans = _gateway(*children)
    assert self_time_ns(spans[0], spans[1:]) == own * 1_000_000
    exact = [{"name": "g", "self_ms": {"min": own, "max": own}}]
    assert_pass(only(spans, span=exact))


def test_self_time_too_long_fails_with_located_message() -> None:
    spans = _gateway((10, 40), (20, 50))
    result = only(spans, span=[{"name": "g", "self_ms": {"max": 50}}])
    assert_fail(result, "self time 60 ms (want <= 50 ms)")
    assert result.expected == "a span named 'g' with self time <= 50 ms"
    assert_fail(only(spans, span=[{"name": "g", "self_ms": {"min": 61}}]),
                "self time 60 ms (want >= 61 ms)")


def test_self_time_children_only_count_in_their_own_trace() -> None:
    # same span ids in another trace: its children are not the first trace's
    spans = _gateway((0, 100), trace="t2") + _gateway(trace="t1")
    assert_pass(only(spans, span=[{"name": "g", "self_ms": {"min": 100}}]))
    assert_fail(only(spans[2:], span=[{"name": "g", "self_ms": {"max": 10}}]),
                "self time 100 ms (want <= 10 ms)")


def test_self_time_of_an_untimed_span_fails() -> None:
    result = only([mk("g", "g", start=None, end=5)], span=[{"name": "g", "self_ms": {"max": 10}}])
    assert_fail(result, "no self time: start or end timestamp missing or reversed")


def test_self_time_and_duration_hold_on_the_same_span() -> None:
    # one span is fast overall, the other has little self time: neither satisfies both
    spans = [mk("g", "a", start=0, end=10), mk("g", "b", start=0, end=100),
             mk("c", "c", "b", start=5, end=99)]
    want = [{"name": "g", "duration_ms": {"max": 50}, "self_ms": {"max": 6}}]
    assert_fail(only(spans, span=want), "self time 10 ms (want <= 6 ms)")
    assert_pass(only(spans, span=[{"name": "g", "self_ms": {"max": 6}}]))


def test_self_time_bounds_out_of_order_are_a_located_load_error() -> None:
    from clnrm.errors import ClnrmError
    from clnrm.scenario.loader import loads_scenario

    text = '[meta]\nname = "x"\n\n[[expect.span]]\nname = "g"\nself_ms = { min = 5, max = 1 }\n'
    with pytest.raises(ClnrmError, match=r"t\.clnrm\.toml:6: \[expect\.span\[0\]\.self_ms\] "
                       r"min \(5\.0\) must not exceed max"):
        loads_scenario(text, source="t.clnrm.toml")


def test_status_checked_on_the_span() -> None:
    assert_pass(only([mk("a", "1", status="ERROR")], span=[{"name": "a", "status": "error"}]))
    assert_fail(only([mk("a", "1", status="OK")], span=[{"name": "a", "status": "ERROR"}]),
                "status OK (want ERROR)")


def test_name_glob_matches_any_of_several_names() -> None:
    spans = [mk("cache.get", "1", kind="client"), mk("cache.set", "2", kind="server")]
    result = only(spans, span=[{"name": "cache.*", "kind": "server"}])
    assert_pass(result)
    assert "2 spans named 'cache.*'" in result.seen
    assert_fail(only(spans, span=[{"name": "db.*"}]), "no span named 'db.*'")


def test_literal_name_with_glob_characters_matches_itself() -> None:
    assert_pass(only([mk("GET /users/[id]", "1")], span=[{"name": "GET /users/[id]"}]))


def test_one_result_per_entry_in_declaration_order() -> None:
    entries = [{"name": "a"}, {"name": "b"}, {"name": "a", "kind": "server"}]
    results = run([mk("a", "1")], span=entries)
    assert [(r.expectation, r.status.value, r.declared_at) for r in results] == [
        ("span 'a'", "pass", "expect.span[0]"),
        ("span 'b'", "fail", "expect.span[1]"),
        ("span 'a'", "fail", "expect.span[2]"),
    ]
