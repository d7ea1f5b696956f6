"""Latency summaries and throughput measured from spans (clnrm.perf.metrics)."""

from __future__ import annotations

import random
import statistics
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clnrm.otel.span import AttrValue, Span
from clnrm.perf.metrics import (
    NO_SERVICE,
    PerfMeasurements,
    entry_servers,
    measure,
    percentile,
    summarize_ms,
    thin,
)
from clnrm.reports.example import T0, span


def timed(name: str, service: str | None, ms: float, *, start_ms: float = 0.0, sid: str = "1",
          parent: str | None = None, trace: str = "1", kind: str = "internal",
          status: str = "UNSET") -> Span:
    return span(name, service, sid, parent, start_ms=start_ms, end_ms=start_ms + ms,
                trace=trace, kind=kind, status=status)


def test_latency_is_summarised_per_span_name_in_milliseconds() -> None:
    spans = [timed("GET /a", "web", ms, start_ms=i * 10, sid=f"{i}", trace=f"{i}")
             for i, ms in enumerate([1, 2, 3, 4, 100])]
    spans.append(timed("db", "pg", 7, sid="x", status="ERROR"))
    m = measure(spans)
    a = m.latency["GET /a"]
    assert (a.count, a.min_ms, a.p50_ms, a.max_ms, a.mean_ms) == (5, 1, 3, 100, 22)
    assert a.p95_ms == pytest.approx(80.8)  # linear between the 4th and 5th sample
    assert a.samples_ms == [1, 2, 3, 4, 100]
    assert m.latency["db"].error_count == 1 and a.error_count == 0
    assert set(m.services) == {"web", "pg"}
    assert m.services["web"].latency["GET /a"].count == 5


def test_same_name_in_two_services_is_one_name_but_two_service_entries() -> None:
    spans = [timed("GET", "cache", 1, sid="1"), timed("GET", "db", 3, sid="2"),
             timed("GET", None, 5, sid="3")]
    m = measure(spans)
    assert m.latency["GET"].count == 3
    assert m.services["cache"].latency["GET"].max_ms == 1
    assert m.services["db"].latency["GET"].max_ms == 3
    assert m.services[NO_SERVICE].latency["GET"].max_ms == 5


def test_spans_without_usable_timestamps_are_counted_not_measured() -> None:
    spans = [timed("ok", "s", 2), span("no end", "s", "2", start_ms=1),
             span("no times", "s", "3"), span("backwards", "s", "4", start_ms=5, end_ms=1)]
    m = measure(spans)
    assert m.span_count == 1 and m.untimed == 3
    assert list(m.latency) == ["ok"]


def test_requests_are_entry_server_spans_not_every_hop() -> None:
    # step -> gateway (server) -> gateway client -> api (server): one request per chain
    spans = []
    for i in range(10):
        t = f"{i + 1}"
        spans += [timed("step", "clnrm", 50, start_ms=i * 100, sid="a", trace=t),
                  timed("GET /items", "gateway", 40, start_ms=i * 100 + 5, sid="b", parent="a",
                        trace=t, kind="server"),
                  timed("GET api", "gateway", 30, start_ms=i * 100 + 6, sid="c", parent="b",
                        trace=t, kind="client"),
                  timed("GET /v1/items", "api", 20, start_ms=i * 100 + 7, sid="d", parent="c",
                        trace=t, kind="server")]
    m = measure(spans)
    assert m.requests == 10
    assert m.window_s == pytest.approx(0.95)  # first start 0 ms, last end 950 ms
    assert m.requests_per_s == pytest.approx(10 / 0.95)
    assert m.spans_per_s == pytest.approx(40 / 0.95)
    assert m.request_latency is not None and m.request_latency.p50_ms == 40
    assert m.services["api"].server_spans == 10
    assert m.latency["GET /items"].rate_per_s == pytest.approx(10 / 0.95)


def test_entry_servers_survive_orphans_and_parent_loops() -> None:
    spans = [timed("orphan server", "a", 1, sid="1", parent="missing", kind="server"),
             timed("loop a", "a", 1, sid="2", parent="3"),
             timed("loop b", "a", 1, sid="3", parent="2"),
             timed("server in loop", "a", 1, sid="4", parent="2", kind="server"),
             timed("server under server", "a", 1, sid="5", parent="1", kind="server")]
    names = [s.name for s in entry_servers(spans)]
    assert names == ["orphan server", "server in loop"]


def test_a_window_keeps_only_spans_starting_inside_and_rates_use_its_length() -> None:
    spans = [timed("x", "s", 1, start_ms=i * 100, sid=f"{i}", trace=f"{i}", kind="server")
             for i in range(10)]
    lo, hi = T0 + 200_000_000, T0 + 700_000_000  # 200 ms .. 700 ms: spans at 200..600
    m = measure(spans, window=(lo, hi))
    assert m.span_count == 5 and m.window_s == pytest.approx(0.5)
    assert m.requests_per_s == pytest.approx(10.0)
    assert (m.window_start_unix_nano, m.window_end_unix_nano) == (lo, hi)


def test_kept_samples_are_capped_deterministic_and_independent_of_span_order() -> None:
    rng = random.Random(5)
    spans = [timed("op", "s", rng.lognormvariate(1, 1), start_ms=i, sid=f"{i:x}",
                   trace=f"{i:x}") for i in range(5000)]
    a = measure(spans, sample_cap=500)
    rng.shuffle(spans)
    b = measure(spans, sample_cap=500)
    assert a.model_dump_json() == b.model_dump_json()
    samples = a.latency["op"].samples_ms
    assert len(samples) == 500 and samples == sorted(samples)
    assert samples[0] == round(a.latency["op"].min_ms, 3)
    assert samples[-1] == round(a.latency["op"].max_ms, 3)
    # the thinned sample keeps the distribution's shape
    assert percentile(samples, 95) == pytest.approx(a.latency["op"].p95_ms, rel=0.02)


def test_measurements_round_trip_through_json() -> None:
    spans = [timed("op", "s", i + 0.5, start_ms=i, sid=f"{i}", trace=f"{i}", kind="server")
             for i in range(30)]
    m = measure(spans)
    assert PerfMeasurements.model_validate_json(m.model_dump_json()) == m


def test_no_spans_measure_to_an_empty_result() -> None:
    m = measure([])
    assert m.span_count == 0 and m.latency == {} and m.spans_per_s == 0.0
    assert m.request_latency is None


def test_percentile_matches_the_inclusive_linear_definition() -> None:
    rng = random.Random(1)
    values = sorted(rng.uniform(0, 100) for _ in range(101))
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # numpy's default
    for q in (1, 50, 90, 95, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
    with pytest.raises(ValueError, match="zero samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_summarize_ms_summarises_milliseconds_directly() -> None:
    s = summarize_ms([3.0, 1.0, 2.0], errors=1, rate_per_s=2.5)
    assert (s.count, s.p50_ms, s.error_count, s.rate_per_s, s.samples_ms) == (3, 2, 1, 2.5,
                                                                               [1, 2, 3])
    with pytest.raises(ValueError):
        summarize_ms([])


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1,
                max_size=300), st.integers(min_value=2, max_value=50))
def test_thinning_keeps_endpoints_and_order(values: list[float], cap: int) -> None:
    values.sort()
    kept = thin(values, cap)
    assert len(kept) == min(len(values), cap)
    assert kept == sorted(kept)
    assert kept[0] == round(values[0], 3) and kept[-1] == round(values[-1], 3)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1,
                max_size=200), st.floats(min_value=0, max_value=100),
       st.floats(min_value=0, max_value=100))
def test_percentile_is_monotonic_and_within_the_samples(values: list[float], q1: float,
                                                        q2: float) -> None:
    values.sort()
    lo, hi = sorted((q1, q2))
    assert values[0] <= percentile(values, lo) <= percentile(values, hi) <= values[-1]


def test_a_hundred_thousand_spans_measure_quickly() -> None:
    rng = random.Random(3)
    resources: list[dict[str, AttrValue]] = [{"service.name": f"svc{i}"} for i in range(5)]
    spans = []
    for i in range(100_000):
        start = T0 + i * 1_000_000
        spans.append(Span(f"op{i % 40}", f"{i // 100:032x}", f"{i:016x}",
                          None if i % 100 == 0 else f"{i - i % 100:016x}", start,
                          start + rng.randrange(50_000, 9_000_000),
                          kind="server" if i % 100 == 0 else "client",
                          resource=resources[i % 5]))
    # CPU time, not wall time: a busy machine takes wall time, not CPU time, from us.
    started = time.process_time()
    m = measure(spans)
    elapsed = time.process_time() - started
    assert m.span_count == 100_000 and m.requests == 1000
    assert elapsed < 2.0, f"measure() took {elapsed:.2f} s CPU for 100k spans (about 0.15 s here)"
