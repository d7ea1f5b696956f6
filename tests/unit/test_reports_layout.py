"""Waterfall rows and the service graph, laid out from spans as collectors really send them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel.span import Span
from clnrm.reports import service_graph, waterfall
from clnrm.reports._graph import UNKNOWN_SERVICE, ServiceEdge, layout, merge_graphs
from clnrm.reports.example import checkout_spans, declined_spans, span


def rows(spans: list[Span], **kw: int) -> list[tuple[str, int, str]]:
    wf = waterfall(spans, **kw)
    return [(r.span.name, r.depth, r.note) for lane in wf.lanes for r in lane.rows]


def test_children_follow_their_parent_in_start_order_indented_by_depth() -> None:
    spans = [span("child-late", "a", "3", "1", start_ms=50, end_ms=60),
             span("root", "a", "1", start_ms=0, end_ms=100),
             span("grandchild", "b", "4", "2", start_ms=12, end_ms=14),
             span("child-early", "a", "2", "1", start_ms=10, end_ms=20)]
    assert rows(spans) == [("root", 0, ""), ("child-early", 1, ""), ("grandchild", 2, ""),
                           ("child-late", 1, "")]


def test_bars_are_placed_relative_to_the_trace_start() -> None:
    spans = [span("root", "a", "1", start_ms=1000, end_ms=1200),
             span("child", "a", "2", "1", start_ms=1050, end_ms=1100)]
    [lane] = waterfall(spans).lanes
    root, child = lane.rows
    assert (root.left_pct, root.width_pct) == (0.0, 100.0)
    assert (child.left_pct, child.width_pct) == (25.0, 25.0)
    assert child.duration == "50 ms" and lane.duration == "200 ms"
    assert lane.ticks[0] == (0, "0 ms") and lane.ticks[-1] == (100, "200 ms")


def test_each_trace_has_its_own_axis_and_traces_are_ordered_by_start() -> None:
    wf = waterfall(checkout_spans())
    assert [lane.trace_id[-1] for lane in wf.lanes] == ["2", "1"]  # startup ran first
    assert [len(lane.rows) for lane in wf.lanes] == [1, 11]
    assert wf.lanes[0].rows[0].width_pct == 100.0


def test_spans_without_timestamps_orphans_and_errors_are_marked() -> None:
    found = {r.span.name: r for lane in waterfall(declined_spans()).lanes for r in lane.rows}
    assert found["audit log"].left_pct is None and found["audit log"].note == "no timestamps"
    assert found["flush"].width_pct is None and found["flush"].note == "no end time"
    assert found["late retry"].depth == 0
    assert found["late retry"].note == "orphan: parent 000000000000gone missing"
    assert found["POST /charge"].error and not found["fraud check"].error
    assert "status: ERROR (card declined)" in found["POST /charge"].title
    assert "http.status_code = 402" in found["POST /charge"].title
    assert "events (1): exception" in found["POST /charge"].title


def test_end_before_start_gets_a_tick_not_a_bar() -> None:
    [row] = [r for lane in waterfall([span("odd", "a", "1", start_ms=10, end_ms=5)]).lanes
             for r in lane.rows]
    assert row.left_pct == 0.0 and row.width_pct is None and row.note == "ends before it starts"


def test_parent_loops_and_self_parents_still_show_every_span_once() -> None:
    spans = [span("a", "s", "1", "2", start_ms=0, end_ms=1),
             span("b", "s", "2", "1", start_ms=1, end_ms=2),
             span("me", "s", "3", "3", start_ms=2, end_ms=3)]
    got = rows(spans)
    assert sorted(name for name, _, _ in got) == ["a", "b", "me"]
    assert ("me", 0, "its parent id is its own span id") in got
    assert ("a", 0, "parent links form a loop; shown as a root") in got and ("b", 1, "") in got


def test_parents_are_looked_up_in_the_spans_own_trace() -> None:
    spans = [span("root", "a", "1", trace="1", start_ms=0, end_ms=10),
             span("stranger", "b", "9", "1", trace="2", start_ms=1, end_ms=2)]
    assert ("stranger", 0, "orphan: parent 0000000000000001 missing") in rows(spans)
    assert service_graph(spans).edges == []


def test_a_chain_thousands_deep_does_not_recurse() -> None:
    chain = [span(f"s{i}", "a", str(i + 1), str(i) if i else None, start_ms=i, end_ms=10_000)
             for i in range(5000)]
    wf = waterfall(chain, limit=10_000)
    assert wf.shown == 5000 and wf.lanes[0].rows[-1].depth == 4999


def test_the_waterfall_stops_at_the_limit_and_counts_the_rest() -> None:
    many = [span(f"s{i}", "a", str(i + 1), trace=str(i % 3 + 1), start_ms=i, end_ms=i + 1)
            for i in range(600)]
    wf = waterfall(many, limit=500)
    assert (wf.shown, wf.total, wf.truncated) == (500, 600, True)
    assert sum(lane.span_count for lane in wf.lanes) == 600


def test_no_spans_no_lanes() -> None:
    wf = waterfall([])
    assert wf.lanes == [] and not wf.truncated


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.none() | st.integers(0, 14),
                          st.none() | st.integers(-5, 50), st.none() | st.integers(-5, 60),
                          st.sampled_from(["1", "2"])), max_size=40))
def test_any_parent_links_and_times_lay_out_every_span_exactly_once(
        raw: list[tuple[int, int | None, int | None, int | None, str]]) -> None:
    spans = [span(f"n{i}", "svc", str(sid), None if parent is None else str(parent),
                  start_ms=start, end_ms=end, trace=trace)
             for i, (sid, parent, start, end, trace) in enumerate(raw)]
    wf = waterfall(spans)
    shown = [r.span.name for lane in wf.lanes for r in lane.rows]
    assert sorted(shown) == sorted(s.name for s in spans)
    for lane in wf.lanes:
        for r in lane.rows:
            assert r.left_pct is None or 0 <= r.left_pct <= 100
            assert r.width_pct is None or 0 <= r.width_pct <= 100


# -- service graph ---------------------------------------------------------------------


def test_edges_count_child_spans_whose_parent_is_in_another_service() -> None:
    graph = service_graph(checkout_spans())
    assert graph.services == ["frontend", "mailer", "orders-api", "postgres", "redis"]
    assert graph.edges == [ServiceEdge("frontend", "orders-api", 1),
                           ServiceEdge("orders-api", "mailer", 1),
                           ServiceEdge("orders-api", "postgres", 1),
                           ServiceEdge("orders-api", "redis", 1)]


def test_repeated_calls_add_up_and_missing_service_names_are_grouped() -> None:
    spans = [span("root", "web", "1", start_ms=0, end_ms=9)]
    spans += [span("q", "db", str(10 + i), "1") for i in range(3)]
    spans += [span("anon", None, "20", "1")]
    graph = service_graph(spans)
    assert ServiceEdge("web", "db", 3) in graph.edges
    assert ServiceEdge("web", UNKNOWN_SERVICE, 1) in graph.edges


def test_merged_graphs_add_call_counts() -> None:
    merged = merge_graphs([service_graph(checkout_spans()), service_graph(checkout_spans())])
    assert ServiceEdge("frontend", "orders-api", 2) in merged.edges


def test_layout_puts_callers_left_of_callees_inside_the_canvas() -> None:
    plan = layout(service_graph(checkout_spans()))
    x = {n.name: n.x for n in plan.nodes}
    assert x["frontend"] < x["orders-api"] < min(x["postgres"], x["redis"], x["mailer"])
    for n in plan.nodes:
        assert n.x >= 0 and n.x + n.width <= plan.width
        assert n.y >= 0 and n.y + n.height <= plan.height
    assert len(plan.edges) == 4 and all(e.d.startswith("M") for e in plan.edges)


def test_calls_that_close_a_loop_arc_under_the_boxes_inside_the_canvas() -> None:
    spans = [span("a", "alpha", "1", start_ms=0, end_ms=9), span("b", "beta", "2", "1"),
             span("c", "alpha", "3", "2"), span("d", "gamma", "4", "3")]
    plan = layout(service_graph(spans))
    x = {n.name: n.x + n.width / 2 for n in plan.nodes}
    assert x["alpha"] < x["beta"] == x["gamma"]
    lowest = max(n.y + n.height for n in plan.nodes)
    [back] = [e for e in plan.edges if e.edge.source == "beta"]
    assert lowest < back.label_y < plan.height - 10


def test_a_ring_of_services_is_laid_out_in_a_row_not_a_stack() -> None:
    ring = ["a", "b", "c", "d"]
    spans = [span("s0", "a", "1", start_ms=0, end_ms=1)]
    spans += [span(f"s{i}", ring[i % 4], str(i + 1), str(i)) for i in range(1, 8)]
    plan = layout(service_graph(spans))
    assert len({n.x + n.width / 2 for n in plan.nodes}) == 4
    assert len({n.y for n in plan.nodes}) == 1
    assert all(0 < e.label_y < plan.height for e in plan.edges)


def test_layout_of_an_empty_graph_is_an_empty_canvas() -> None:
    plan = layout(service_graph([]))
    assert plan.nodes == [] and plan.edges == [] and plan.width > 0
