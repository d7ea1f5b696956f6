"""Critical paths through hand-built traces, and the advice read off them."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel.span import Span
from clnrm.perf.critical_path import (
    AdviceThresholds,
    CriticalPath,
    CriticalPathReport,
    critical_paths,
    recommendations,
)
from clnrm.reports.example import T0, span


def s(name: str, sid: str, parent: str | None, start: float, end: float, *,
      service: str = "svc", kind: str = "internal", trace: str = "1", status: str = "UNSET",
      attrs: dict[str, object] | None = None) -> Span:
    return span(name, service, sid, parent, start_ms=start, end_ms=end, kind=kind, trace=trace,
                status=status, attrs=attrs)  # type: ignore[arg-type]


def path_of(report: CriticalPathReport, i: int = 0) -> list[tuple[str, float, float]]:
    """``(name, start ms, end ms)`` of each segment, relative to T0."""
    return [(seg.name, (seg.start_unix_nano - T0) / 1e6, (seg.end_unix_nano - T0) / 1e6)
            for seg in report.paths[i].segments]


def shares(report: CriticalPathReport) -> dict[str, float]:
    return {sh.name: round(sh.share, 4) for sh in report.shares}


def test_sequential_children_are_all_on_the_path_with_the_parent_in_the_gaps() -> None:
    spans = [s("root", "r", None, 0, 100), s("a", "a", "r", 10, 40), s("b", "b", "r", 50, 90)]
    report = critical_paths(spans)
    assert report.per == "trace" and report.path_count == 1
    assert path_of(report) == [("root", 0, 10), ("a", 10, 40), ("root", 40, 50),
                               ("b", 50, 90), ("root", 90, 100)]
    assert shares(report) == {"b": 0.4, "a": 0.3, "root": 0.3}


def test_of_parallel_children_only_the_one_finishing_last_is_on_the_path() -> None:
    spans = [s("root", "r", None, 0, 100), s("fast", "a", "r", 10, 60),
             s("slow", "b", "r", 10, 90), s("early", "c", "r", 2, 8)]
    report = critical_paths(spans)
    assert path_of(report) == [("root", 0, 2), ("early", 2, 8), ("root", 8, 10),
                               ("slow", 10, 90), ("root", 90, 100)]
    assert "fast" not in shares(report)


def test_the_path_descends_through_nested_calls() -> None:
    spans = [s("root", "r", None, 0, 100), s("handler", "h", "r", 5, 95),
             s("db", "d", "h", 20, 70), s("cache", "c", "h", 10, 15),
             s("query", "q", "d", 25, 65)]
    report = critical_paths(spans)
    assert path_of(report) == [("root", 0, 5), ("handler", 5, 10), ("cache", 10, 15),
                               ("handler", 15, 20), ("db", 20, 25), ("query", 25, 65),
                               ("db", 65, 70), ("handler", 70, 95), ("root", 95, 100)]
    assert report.paths[0].self_time_ms()["000000000000000q"] == 40


def test_async_children_are_cut_at_the_parents_end_or_left_off_the_path() -> None:
    spans = [s("root", "r", None, 0, 100), s("outlives", "a", "r", 60, 150),
             s("inside outlives", "a1", "a", 70, 140),
             s("after", "b", "r", 120, 300), s("under after", "b1", "b", 130, 290)]
    report = critical_paths(spans)
    assert path_of(report) == [("root", 0, 60), ("outlives", 60, 70),
                               ("inside outlives", 70, 100)]
    assert report.total_ms == 100
    assert "after" not in shares(report) and "under after" not in shares(report)
    notes = " ".join(report.notes)
    assert "2 span(s) ended after their parent" in notes
    assert "1 span(s) started after their parent ended" in notes


def test_a_child_starting_before_its_parent_is_clamped_to_the_parent_start() -> None:
    # another service's clock runs 5 ms behind: its server span "starts" before the client
    spans = [s("client", "c", None, 10, 50, kind="client", service="web"),
             s("server", "sv", "c", 5, 45, kind="server", service="api")]
    report = critical_paths(spans, per="trace")
    assert path_of(report) == [("server", 10, 45), ("client", 45, 50)]
    assert sum(seg.duration_ms for seg in report.paths[0].segments) == 40
    assert any("started before their parent" in n for n in report.notes)


def test_orphans_and_other_roots_are_not_on_the_path_of_the_longest_root() -> None:
    spans = [s("short root", "x", None, 0, 10), s("long root", "r", None, 0, 100),
             s("child", "c", "r", 20, 30), s("orphan", "o", "gone", 40, 99)]
    report = critical_paths(spans)
    assert [seg.name for seg in report.paths[0].segments] == ["long root", "child", "long root"]
    assert report.paths[0].root_name == "long root"
    notes = " ".join(report.notes)
    assert "1 orphan span(s)" in notes and "2 other root span(s)" in notes


def test_each_trace_gets_its_own_path_even_when_span_ids_repeat_across_traces() -> None:
    spans = [s("root", "1", None, 0, 10, trace="a"), s("child", "2", "1", 2, 8, trace="a"),
             s("root", "1", None, 100, 150, trace="b"), s("other", "2", "1", 100, 110,
                                                             trace="b")]
    report = critical_paths(spans)
    assert report.path_count == 2 and report.total_ms == 60
    assert [p.trace_id[-1] for p in report.paths] == ["a", "b"]
    critical = report.keys()  # the report's (trace, span) keys, not a dict's
    assert ("0" * 31 + "b", "0" * 15 + "2") in critical
    assert [seg.name for seg in report.paths[1].segments] == ["other", "root"]


def test_requests_joined_to_one_test_trace_get_one_path_each() -> None:
    spans = [s("clnrm.test", "t", None, 0, 1000, service="clnrm")]
    for i in range(3):
        base = 100 + i * 200
        spans += [s("GET /items", f"g{i}", "t", base, base + 50, kind="server",
                    service="gateway"),
                  s("SELECT", f"d{i}", f"g{i}", base + 10, base + 40, kind="client",
                    service="api", attrs={"db.system": "postgresql"})]
    report = critical_paths(spans)
    assert report.per == "request" and report.path_count == 3
    assert shares(report) == {"SELECT": 0.6, "GET /items": 0.4}
    assert "clnrm.test" not in shares(report)
    assert critical_paths(spans, per="trace").path_count == 1


def test_a_chain_thousands_deep_needs_no_recursion() -> None:
    depth = 5000
    spans = [s(f"n{i}", f"{i:x}", f"{i - 1:x}" if i else None, i * 0.01, 100 - i * 0.01)
             for i in range(depth)]
    report = critical_paths(spans)
    assert report.total_ms == pytest.approx(100)
    assert len({seg.span_id for seg in report.paths[0].segments}) == depth


def test_report_round_trips_through_json() -> None:
    spans = [s("root", "r", None, 0, 100, kind="server"), s("a", "a", "r", 10, 40)]
    report = critical_paths(spans)
    again = CriticalPathReport.model_validate_json(report.model_dump_json())
    assert again == report and isinstance(again.paths[0], CriticalPath)


def test_path_limit_keeps_the_earliest_paths_but_shares_count_all() -> None:
    spans = [s("req", f"{i}", None, i * 10, i * 10 + 5, trace=f"{i}", kind="server")
             for i in range(1, 31)]
    report = critical_paths(spans, path_limit=5)
    assert report.path_count == 30 and len(report.paths) == 5
    assert report.shares[0].per_path_ms == 5 and report.shares[0].spans_on_path == 30


# -- hypothesis: on any tree, the path partitions the root's window exactly -----------------

@st.composite
def trees(draw: st.DrawFn) -> list[Span]:
    n = draw(st.integers(min_value=1, max_value=40))
    spans = []
    for i in range(n):
        parent = None if i == 0 else f"{draw(st.integers(min_value=0, max_value=i - 1)):x}"
        start = draw(st.integers(min_value=-50, max_value=400))
        length = draw(st.integers(min_value=0, max_value=300))
        spans.append(s(f"op{i % 5}", f"{i:x}", parent, start, start + length,
                       kind=draw(st.sampled_from(["internal", "client", "server"]))))
    return spans


@settings(max_examples=200, deadline=None)
@given(trees())
def test_the_path_covers_the_root_window_exactly_once(spans: list[Span]) -> None:
    report = critical_paths(spans, per="trace")
    root = spans[0]
    assert root.start_time_unix_nano is not None and root.end_time_unix_nano is not None
    segs = report.paths[0].segments
    cursor = root.start_time_unix_nano
    for seg in segs:
        assert seg.start_unix_nano == cursor and seg.end_unix_nano >= seg.start_unix_nano
        cursor = seg.end_unix_nano
    assert cursor == root.end_time_unix_nano or (not segs and root.duration_ms == 0)
    assert sum(sh.share for sh in report.shares) == pytest.approx(1.0) or not segs
    recommendations(spans)  # never raises on odd trees


# -- recommendations ---------------------------------------------------------------------------

def n_plus_one_trace(trace: str, base: float) -> list[Span]:
    spans = [s("GET /items", "g", None, base, base + 100, kind="server", service="gateway",
               trace=trace),
             s("GET /v1/items", "a", "g", base + 2, base + 98, kind="server", service="api",
               trace=trace)]
    for k in range(40):
        spans.append(s("SELECT item", f"q{k:02d}", "a", base + 5 + k * 2, base + 6.8 + k * 2,
                       kind="client", service="api", trace=trace,
                       attrs={"db.system": "postgresql",
                              "db.statement": "SELECT * FROM items WHERE id = $1"}))
    return spans


def test_n_plus_one_is_named_with_its_calls_per_request() -> None:
    spans = [x for i in range(5) for x in n_plus_one_trace(f"{i + 1}", i * 1000)]
    advice = recommendations(spans)
    assert advice[0].startswith("N+1: `SELECT item` (api) `SELECT * FROM items WHERE id = $1` "
                                "runs 40 times under each `GET /v1/items` (api)")
    assert "40 calls per request" in advice[0] and "72% of the critical path" in advice[0]
    assert not any(a.startswith("`SELECT item`") for a in advice)  # not said twice


def test_fewer_repeats_than_the_threshold_are_not_n_plus_one() -> None:
    spans = n_plus_one_trace("1", 0)
    assert not any("N+1" in a for a in recommendations(spans, thresholds=AdviceThresholds(
        repeat_min=41)))


def test_a_dominating_leaf_is_named_with_its_share() -> None:
    spans = [s("GET /a", "r", None, 0, 100, kind="server", service="web"),
             s("SELECT items", "d", "r", 10, 81, kind="client", service="db",
               attrs={"db.system": "postgresql"})]
    advice = recommendations(spans)
    assert advice == ["`SELECT items` (db) is 71% of the critical path (71 ms of 100 ms per "
                      "request)."]


def test_own_time_of_a_parent_is_reported_as_such() -> None:
    spans = [s("GET /a", "r", None, 0, 100, kind="server", service="web"),
             s("tiny", "t", "r", 1, 2)]
    advice = recommendations(spans)
    assert advice[0].startswith("`GET /a` (web) spends 99% of the critical path in its own "
                                "code, outside its child spans")


def test_serial_calls_on_the_path_are_suggested_for_concurrency() -> None:
    spans = [s("GET /page", "r", None, 0, 100, kind="server", service="web"),
             s("GET user", "u", "r", 5, 30, kind="client", service="web"),
             s("GET cart", "c", "r", 32, 60, kind="client", service="web"),
             s("GET prices", "p", "r", 62, 95, kind="client", service="web")]
    advice = recommendations(spans)
    sequential = [a for a in advice if "one after another" in a]
    assert sequential == ["`GET /page` (web) makes 3 calls one after another, all on the "
                          "critical path (`GET user`, `GET cart`, `GET prices`; 86 ms each "
                          "time, in 1 of 1 requests, 86% of the critical path): if they do not "
                          "depend on each other, make them concurrently."]


def test_concurrent_calls_are_not_called_sequential() -> None:
    spans = [s("GET /page", "r", None, 0, 100, kind="server", service="web"),
             s("GET user", "u", "r", 5, 90, kind="client", service="web"),
             s("GET cart", "c", "r", 6, 95, kind="client", service="web")]
    assert not any("one after another" in a for a in recommendations(spans))


def test_retries_after_errors_are_found() -> None:
    spans = [s("POST /pay", "r", None, 0, 200, kind="server", service="shop"),
             s("POST /charge", "c1", "r", 5, 55, kind="client", service="shop", status="ERROR"),
             s("POST /charge", "c2", "r", 60, 110, kind="client", service="shop",
               status="ERROR"),
             s("POST /charge", "c3", "r", 115, 190, kind="client", service="shop")]
    advice = recommendations(spans)
    retry = [a for a in advice if a.startswith("Retries")]
    assert retry == ["Retries: `POST /charge` (shop) failed and was tried again 2 times under "
                     "`POST /pay` (shop) (in 1 of them; the attempts are 88% of the critical "
                     "path): fix the failure, or give up on it sooner."]


def test_overlapping_same_name_calls_are_not_retries() -> None:
    spans = [s("POST /pay", "r", None, 0, 200, kind="server"),
             s("GET x", "c1", "r", 5, 55, kind="client", status="ERROR"),
             s("GET x", "c2", "r", 30, 110, kind="client")]
    assert not any(a.startswith("Retries") for a in recommendations(spans))


def test_slow_work_off_the_path_is_called_not_worth_optimising() -> None:
    spans = [s("POST /order", "r", None, 0, 100, kind="server", service="shop"),
             s("INSERT", "i", "r", 10, 90, kind="client", service="db",
               attrs={"db.system": "postgresql"}),
             s("send mail", "m", "r", 150, 400, kind="producer", service="mailer"),
             s("warm cache", "w", "r", 5, 70, kind="client", service="shop")]
    advice = recommendations(spans)
    off = [a for a in advice if "not make" in a]
    assert [a.split(" takes")[0] for a in off] == ["`send mail` (mailer)", "`warm cache` (shop)"]
    assert off[0] == ("`send mail` (mailer) takes 250 ms on average but is never on the "
                      "critical path (it runs alongside or after what the caller waits for): "
                      "making it faster will not make requests faster.")
    assert off == advice[-2:]  # the least valuable advice comes last


def test_no_timed_spans_no_paths_no_advice() -> None:
    spans = [span("x", "s", "1"), span("y", "s", "2", "1")]
    report = critical_paths(spans)
    assert report.path_count == 0 and report.recommendations == []
    assert critical_paths([]).paths == []


def test_a_hundred_thousand_spans_take_seconds_not_minutes() -> None:
    spans = []
    for t in range(100):
        base = t * 2000.0
        trace = f"{t + 1:x}"
        spans.append(s("req", "r", None, base, base + 1000, kind="server", trace=trace))
        for k in range(999):
            start = base + (k * 7) % 990
            spans.append(s(f"leaf{k % 30}", f"{k:x}z", "r", start, start + 3, kind="client",
                           trace=trace))
    # CPU time of this process, not wall time: other processes on a busy machine take
    # wall time from it but not CPU time, while a quadratic algorithm still takes minutes.
    started = time.process_time()
    report = critical_paths(spans)
    elapsed = time.process_time() - started
    assert report.path_count == 100
    assert elapsed < 4.0, f"critical_paths took {elapsed:.2f} s CPU on 100k spans (~0.4 s here)"
