"""Mining (issue 15): what the synthetic shop always does, with support and confidence,
and what is noise."""

from __future__ import annotations

from functools import cache

import pytest

from clnrm.intelligence.corpus import build_corpus
from clnrm.intelligence.mine import mine
from clnrm.intelligence.patterns import (
    LatencyPattern,
    MinedPatterns,
    MiningOptions,
    RequestTypePatterns,
    existential_confidence,
    universal_confidence,
)
from clnrm.intelligence.synthetic import shop_corpus
from clnrm.otel.span import Span


@cache
def shop(seed: int = 1, options: MiningOptions | None = None) -> MinedPatterns:
    return mine(build_corpus(shop_corpus(seed), f"shop-{seed}"), options)


def rtype(mined: MinedPatterns, key: str) -> RequestTypePatterns:
    return next(rt for rt in mined.request_types if rt.key == key)


def test_traces_are_grouped_into_request_types_by_root_service_and_name() -> None:
    mined = shop()
    assert [(rt.key, rt.traces) for rt in mined.request_types] == [
        ("frontend GET /catalog", 50), ("frontend GET /health", 30),
        ("frontend GET /users/{id}", 60), ("frontend POST /orders", 60)]
    assert mined.traces == 200


def test_a_call_made_by_every_request_has_full_support() -> None:
    users = rtype(shop(), "frontend GET /users/{id}")
    server = next(p for p in users.spans if p.name == "GET /users/:id")
    assert (server.parent, server.kind, server.service) == ("GET users", "server", "users")
    assert (server.evidence.support, server.evidence.total) == (60, 60)
    assert server.evidence.confidence == 1.0


def test_an_optional_call_keeps_its_real_support() -> None:
    users = rtype(shop(), "frontend GET /users/{id}")
    select = next(p for p in users.spans if p.name == "SELECT users")
    assert 0 < select.evidence.support < 60  # only cache misses read the database


def test_ids_user_names_and_order_ids_are_noise_not_invariants() -> None:
    mined = shop()
    verdicts = {(a.span, a.key): a.verdict for rt in mined.request_types for a in rt.attributes}
    assert verdicts[("GET /users/{id}", "enduser.id")] == "noise"
    assert verdicts[("GET /users/:id", "user.name")] == "noise"  # caught by cardinality
    assert verdicts[("POST /orders", "order.id")] == "noise"
    assert verdicts[("GET /users/:id", "http.route")] == "constant"
    for rt in mined.request_types:
        for span in rt.spans:
            assert not {"enduser.id", "user.name", "order.id"} & set(span.attrs)


def test_an_enumeration_asserts_only_its_usual_value() -> None:
    users = rtype(shop(), "frontend GET /users/{id}")
    cache_hit = next(a for a in users.attributes if a.key == "cache.hit")
    assert cache_hit.verdict == "enumeration"
    assert cache_hit.values == ["false", "true"] and cache_hit.dominant == "true"


def test_a_name_that_sometimes_fails_gets_an_error_rate_not_a_status() -> None:
    orders = rtype(shop(), "frontend POST /orders")
    assert "POST /charge" not in {s.name for s in orders.status}
    charge = next(e for e in orders.error_rates if e.name == "POST /charge")
    assert 0 < charge.rate < 0.2 and not charge.assert_error_path
    assert {s.name: s.status for s in orders.status}["GET /stock"] == "UNSET"


def test_sequential_sibling_calls_are_ordered() -> None:
    orders = rtype(shop(), "frontend POST /orders")
    assert ("GET inventory", "POST charge") in {(o.first, o.then) for o in orders.order}


def test_counts_sum_every_request_type_making_the_name() -> None:
    catalog = rtype(shop(), "frontend GET /catalog")
    counts = {c.name: c for c in catalog.counts}
    assert counts["GET /catalog"].gte == counts["GET /catalog"].lte == 50
    stock = counts["GET /stock"]  # every order reads the stock, a catalog miss too
    assert stock.also_in == ["frontend POST /orders"]
    assert stock.gte < 60 + 20 < stock.lte and (stock.per_trace_min, stock.per_trace_max) == (0, 1)


def test_latency_envelope_is_a_tolerance_not_a_copy_of_one_value() -> None:
    users = rtype(shop(), "frontend GET /users/{id}")
    envelope = next(lat for lat in users.latency if lat.name == "redis GET")
    assert envelope.max_ms >= round(envelope.quantile_ms * 1.15, 3) - 0.001
    assert envelope.quantile_ms < envelope.p50_ms < envelope.p95_ms


def test_forbidden_edges_join_services_that_never_called_each_other() -> None:
    users = rtype(shop(), "frontend GET /users/{id}")
    pairs = {(f.from_service, f.to_service) for f in users.forbidden}
    assert ("users", "payments") in pairs
    assert ("frontend", "users") not in pairs  # it calls users in every request


def test_min_pattern_frequency_drops_rare_shapes() -> None:
    strict = shop(1, MiningOptions(min_pattern_frequency=0.9))
    users = rtype(strict, "frontend GET /users/{id}")
    assert "SELECT users" not in {p.name for p in users.spans}


def test_same_corpus_and_seed_give_the_same_patterns() -> None:
    a = mine(build_corpus(shop_corpus(1), "x"), MiningOptions(seed=3))
    b = mine(build_corpus(shop_corpus(1), "x"), MiningOptions(seed=3))
    assert a.model_dump_json() == b.model_dump_json()


@pytest.mark.parametrize(("support", "total", "low", "high"), [
    (1, 1, 0.7, 0.8), (2, 2, 0.95, 1.0), (4, 80, 0.98, 1.0), (0, 5, 0.0, 0.0)])
def test_existential_confidence(support: int, total: int, low: float, high: float) -> None:
    assert low <= existential_confidence(support, total) <= high


def test_universal_confidence_needs_agreeing_observations() -> None:
    assert universal_confidence(1) < 0.7 < universal_confidence(18) < 1


def test_orphan_spans_and_missing_services_still_mine() -> None:
    spans = [Span(name="root", trace_id="a" * 32, span_id="1" * 16, start_time_unix_nano=0,
                  end_time_unix_nano=10),
             Span(name="orphan", trace_id="a" * 32, span_id="2" * 16,
                  parent_span_id="9" * 16, start_time_unix_nano=1, end_time_unix_nano=2)]
    mined = mine(build_corpus(spans))
    assert [rt.key for rt in mined.request_types] == ["root"]  # the earliest root wins
    orphan = next(p for p in mined.request_types[0].spans if p.name == "orphan")
    assert orphan.parent is None
    assert mined.request_types[0].forbidden == []


def test_roots_named_only_by_their_method_are_split_by_route() -> None:
    spans = [Span(name="GET", trace_id=f"{i:032x}", span_id=f"{i + 1:016x}",
                  attributes={"http.route": route}, resource={"service.name": "api"})
             for i, route in enumerate(["/a", "/b", "/a"])]
    corpus = build_corpus(spans)
    assert [(t.key, len(t.traces)) for t in corpus.types] == [("api GET /a", 2),
                                                             ("api GET /b", 1)]


def test_clnrm_attributes_naming_the_test_are_not_asserted() -> None:
    spans = [Span(name="clnrm.test", trace_id=f"{i:032x}", span_id=f"{i + 1:016x}",
                  attributes={"clnrm.test": "demo", "clnrm.file": "demo.clnrm.toml",
                              "clnrm.outcome": "passed"}, resource={"service.name": "clnrm"})
             for i in range(30)]
    (root,) = mine(build_corpus(spans)).request_types[0].spans
    assert root.attrs == {"clnrm.outcome": "passed"}


def contended(traces: int, floors: list[float], seed: int = 7) -> list[Span]:
    """One request type whose ``db query`` has a fixed floor per trace plus contention
    delay: most spans (55 %) are 3-10 times slower than the floor, the rest sit on it."""
    import random

    rng = random.Random(seed)
    out: list[Span] = []
    for t in range(traces):
        trace = f"{t:032x}"
        root = Span(name="GET /x", trace_id=trace, span_id=f"{t:08x}00000000",
                    start_time_unix_nano=0, end_time_unix_nano=10**9, kind="SERVER",
                    resource={"service.name": "api"})
        out.append(root)
        for c in range(2):
            floor = floors[t % len(floors)]
            ms = floor * (1 + 0.05 * rng.random()) * (rng.uniform(3, 10)
                                                       if rng.random() < 0.55 else 1)
            start = 10**6 * (1 + 400 * c)
            out.append(Span(name="db query", trace_id=trace, span_id=f"{t:08x}{c + 1:08x}",
                            parent_span_id=root.span_id, start_time_unix_nano=start,
                            end_time_unix_nano=start + int(ms * 1e6), kind="CLIENT",
                            resource={"service.name": "db"}))
    return out


def envelope(spans: list[Span]) -> LatencyPattern:
    mined = mine(build_corpus(spans, "contended"))
    return next(lat for rt in mined.request_types for lat in rt.latency
                if lat.name == "db query")


def test_a_stable_floor_under_a_heavy_contention_tail_gives_a_tight_envelope() -> None:
    lat = envelope(contended(10, [10.0]))  # 20 spans: the iid model needs its ~50th pct.
    assert lat.basis == "floor"
    assert 10.0 <= lat.quantile_ms <= lat.max_ms < 18.0  # +80 % on every span is caught
    assert lat.max_ms >= round(lat.quantile_ms * 1.15, 3) - 0.001


def test_halves_whose_floors_disagree_widen_the_floor_bound() -> None:
    from clnrm.intelligence.mine import _floor

    agree = _floor([[10.0, 30.0, 90.0, 11.0], [10.5, 50.0, 12.0, 70.0]])
    assert agree is not None and agree[0] == 10.5 and agree[2] == round(10.5 * 1.15, 3)
    moved = _floor([[10.0, 30.0, 90.0, 11.0], [20.0, 50.0, 22.0, 70.0]])  # load doubled it
    assert moved is not None and moved[1] == 2.0 and moved[2] == 60.0
    assert _floor([[10.0, 11.0, 12.0], [10.0, 11.0, 12.0, 13.0]]) is None  # too few


def gateway(traces: int, own_ms: float = 1.0, seed: int = 5) -> list[Span]:
    """A gateway SERVER span that spends ``own_ms`` (+ up to 5 %) of its own around two
    concurrent backend calls of 3-30 ms each: its whole duration spreads tenfold, its
    self time hardly at all."""
    import random

    rng = random.Random(seed)
    out: list[Span] = []
    for t in range(traces):
        trace = f"{t:032x}"
        calls = [int(rng.uniform(3, 30) * 1e6) for _ in range(2)]
        own = int(own_ms * (1 + 0.05 * rng.random()) * 1e6)
        head = own // 2
        root = Span(name="GET /g", trace_id=trace, span_id=f"{t:08x}00000000",
                    start_time_unix_nano=0, end_time_unix_nano=own + max(calls), kind="SERVER",
                    resource={"service.name": "gateway"})
        out.append(root)
        for c, took in enumerate(calls):  # both start together: they overlap
            out.append(Span(name=f"call {c}", trace_id=trace, span_id=f"{t:08x}{c + 1:08x}",
                            parent_span_id=root.span_id, start_time_unix_nano=head,
                            end_time_unix_nano=head + took, kind="CLIENT",
                            resource={"service.name": f"backend{c}"}))
    return out


def test_self_time_envelope_bounds_a_parents_own_time_not_its_childrens_spread() -> None:
    (rt,) = mine(build_corpus(gateway(20), "gateway")).request_types
    assert [own.name for own in rt.self_time] == ["GET /g"]  # leaves: self time = duration
    own = rt.self_time[0]
    assert 1.0 <= own.quantile_ms <= own.max_ms < 1.8  # 80 % of the gateway's time is caught
    assert own.max_ms >= round(own.quantile_ms * 1.15, 3) - 0.001  # a tolerance, not a copy
    assert own.evidence.unit == "spans" and own.evidence.total == 20
    whole = next(lat for lat in rt.latency if lat.name == "GET /g")
    assert whole.max_ms > 3 * own.max_ms  # the callees' spread widens the whole duration
