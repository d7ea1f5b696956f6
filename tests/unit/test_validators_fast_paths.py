"""The shortcuts bench/validate.py needed give the answers of the plain lookups they replace.

- ``SpanIndex.parent_named`` (ids of one name only) == ``parent_of`` + a name test;
- ``find_cycle`` (walks only from spans that are someone's parent first) finds a
  cycle exactly when a walk from every span does, and reports the same one;
- ``attribute_keys`` lets rare-key rules skip their scan, never miss a span;
- ``Windows.contains`` (one bisection per trace) == "inside any window of its trace".
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel.span import Span, SpanEvent
from clnrm.validators import SpanIndex
from clnrm.validators.graph import _cycle_from, _walk_for_cycle, find_cycle
from clnrm.validators.index import name_matches
from clnrm.validators.window import Windows
from tests.unit.test_validators_support import mk, only, passed

NAMES = ["a", "b", "c.x", "c.y"]


@st.composite
def linked(draw: st.DrawFn) -> list[Span]:
    """Spans in 1-3 traces with arbitrary parent links (cycles and dangling ids too);
    ids are unique within a trace and may repeat across traces."""
    spans = []
    for trace in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 12))
        for i in range(n):
            parent = draw(st.none() | st.integers(0, n + 1))  # n, n+1: not among the spans
            spans.append(mk(draw(st.sampled_from(NAMES)), f"{i:x}",
                            None if parent is None else f"{parent:x}", trace=f"t{trace}"))
    return draw(st.permutations(spans))


@settings(max_examples=200, deadline=None)
@given(linked(), st.sampled_from(["a", "b", "c.*", "*", "nothing"]))
def test_parent_named_equals_parent_of_plus_name_test(spans: list[Span], pattern: str) -> None:
    index = SpanIndex(spans)
    for span in spans:
        parent = index.parent_of(span)
        expected = parent if parent is not None and name_matches(parent.name, pattern) else None
        assert index.parent_named(span, pattern) is expected


@settings(max_examples=200, deadline=None)
@given(linked())
def test_find_cycle_reports_what_the_full_walk_reports(spans: list[Span]) -> None:
    index = SpanIndex(spans)
    by_id, shared = index.id_maps
    cycle = find_cycle(index)
    if not shared:  # the full walk from every span, as find_cycle did before the shortcut
        found = _walk_for_cycle(index.spans, by_id)
        assert cycle == (None if found is None else _cycle_from(found, index))
    # a cycle is a cycle: following parents from its first span comes back to it
    if cycle is not None:
        current = index.parent_of(cycle[0])
        for _ in range(len(cycle) - 1):
            assert current is not None
            current = index.parent_of(current)
        assert current is cycle[0]


def test_a_cycle_among_many_leaves_is_found() -> None:
    spans = [mk("loop", "1", "2"), mk("loop", "2", "1")]
    spans += [mk("leaf", f"{i + 10:x}", "1") for i in range(500)]
    cycle = find_cycle(SpanIndex(spans))
    assert cycle is not None and {s.span_id for s in cycle} == {"1", "2"}
    assert not passed(only(spans, graph={"acyclic": True}))


def test_rare_keys_are_still_counted_and_forbidden() -> None:
    spans = [mk("a", f"{i + 1:x}") for i in range(50)]
    spans[7].attributes["error"] = "true"
    spans[9].attributes["event.count"] = 3
    spans[9].events = [SpanEvent("e")]
    spans[11].attributes["password"] = "x"
    spans[13].attributes["http.url"] = "http://example.com"
    index = SpanIndex(spans)
    assert {"error", "event.count", "password", "http.url"} <= index.attribute_keys
    assert index.error_counts == {"a": 1} and index.event_counts == {"a": 3}
    assert not passed(only(spans, hermeticity={"span_attrs": {"forbid_keys": ["password"]}}))
    assert not passed(only(spans, hermeticity={"no_external_services": True}))
    del spans[11].attributes["password"], spans[13].attributes["http.url"]
    assert passed(only(spans, hermeticity={"span_attrs": {"forbid_keys": ["password"]}}))
    assert passed(only(spans, hermeticity={"no_external_services": True}))


@st.composite
def windows_case(draw: st.DrawFn) -> tuple[list[Span], list[Span]]:
    times = st.integers(0, 100)

    def timed(name: str, i: int) -> Span:
        start = draw(times)
        span = mk(name, f"{i:x}", trace=f"t{draw(st.integers(0, 3))}")
        span.start_time_unix_nano = start
        span.end_time_unix_nano = start + draw(st.integers(0, 40))
        return span

    outers = [timed("outer", i) for i in range(draw(st.integers(1, 8)))]
    inner = [timed("inner", 100 + i) for i in range(draw(st.integers(1, 10)))]
    return outers, inner


@settings(max_examples=300, deadline=None)
@given(windows_case())
def test_window_contains_equals_any_window_of_the_trace(case: tuple[list[Span], list[Span]],
                                                        ) -> None:
    outers, inner = case
    windows = Windows(outers)
    for span in inner:
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        assert start is not None and end is not None
        local = [o for o in outers if o.trace_id == span.trace_id] or outers
        expected = any(o.start_time_unix_nano <= start and end <= o.end_time_unix_nano  # type: ignore[operator]
                       for o in local)
        assert windows.contains(span, start, end) is expected
