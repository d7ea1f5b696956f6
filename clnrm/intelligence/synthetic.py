"""A synthetic shop whose traces mining is measured on (bench/generation.py, unit tests).

Seven services, four request types, with the things real systems have: optional
calls (a cache miss reads the database, an order notifies half the time), calls
shared between request types (the stock lookup), a small error rate (payments
fail 3 % of the time, and the order answers 502), per-request noise (user ids,
order ids, times) and lognormal latencies.  A *fresh corpus* is the same system
with another seed: new ids, users, times and coin flips, the same behaviour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from clnrm.otel.span import AttrValue, Span

WORKLOAD: Final = (("GET /users/{id}", 60), ("POST /orders", 60), ("GET /catalog", 50),
                   ("GET /health", 30))
"""Requests per corpus, by route (a fixed mix, like a test's load step)."""
LATENCY_SIGMA: Final = 0.2


@dataclass(slots=True)
class _Builder:
    rng: random.Random
    trace_id: str
    spans: list[Span] = field(default_factory=list)

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def call(self, name: str, service: str, kind: str, start: int, median_ms: float,
             parent: Span | None = None, attrs: dict[str, AttrValue] | None = None,
             status: str = "UNSET") -> Span:
        """A span starting at ``start`` lasting a lognormal time around ``median_ms``."""
        duration = median_ms * self.rng.lognormvariate(0, LATENCY_SIGMA)
        span = Span(name=name, trace_id=self.trace_id, span_id=self.span_id(),
                    parent_span_id=parent.span_id if parent else None,
                    start_time_unix_nano=start, end_time_unix_nano=start + int(duration * 1e6),
                    kind=kind, status=status, attributes=dict(attrs or {}),
                    resource={"service.name": service})
        self.spans.append(span)
        return span

    @staticmethod
    def cover(parent: Span, last_end: int, gap_ns: int = 200_000) -> None:
        """Stretch ``parent`` so it ends after its last child (and its own work)."""
        assert parent.end_time_unix_nano is not None
        parent.end_time_unix_nano = max(parent.end_time_unix_nano, last_end + gap_ns)


def _end(span: Span) -> int:
    assert span.end_time_unix_nano is not None
    return span.end_time_unix_nano


def _http(method: str, route: str, code: int) -> dict[str, AttrValue]:
    return {"http.method": method, "http.route": route, "http.status_code": code}


def _stock(b: _Builder, parent: Span, start: int) -> int:
    client = b.call("GET inventory", parent.resource["service.name"], "client",  # type: ignore[arg-type]
                    start, 1.0, parent, _http("GET", "/stock", 200))
    server = b.call("GET /stock", "inventory", "server", start + 100_000, 2.0, client,
                    _http("GET", "/stock", 200))
    query = b.call("SELECT stock", "inventory", "client", start + 300_000, 3.0, server,
                   {"db.system": "postgresql", "db.operation": "SELECT"})
    b.cover(server, _end(query))
    b.cover(client, _end(server))
    return _end(client)


def _users(b: _Builder, t0: int) -> None:
    user = f"user-{b.rng.randrange(10**6)}"
    root = b.call("GET /users/{id}", "frontend", "server", t0, 1.0, None,
                  {**_http("GET", "/users/{id}", 200), "enduser.id": user})
    client = b.call("GET users", "frontend", "client", t0 + 100_000, 1.0, root,
                    _http("GET", "/users/:id", 200))
    server = b.call("GET /users/:id", "users", "server", t0 + 200_000, 1.0, client,
                    {**_http("GET", "/users/:id", 200), "user.name": user})
    hit = b.rng.random() < 0.7
    cache = b.call("redis GET", "users", "client", t0 + 300_000, 0.5, server,
                   {"db.system": "redis", "cache.hit": hit})
    last = _end(cache)
    if not hit:
        query = b.call("SELECT users", "users", "client", last + 50_000, 4.0, server,
                       {"db.system": "postgresql", "db.operation": "SELECT"})
        last = _end(query)
    b.cover(server, last)
    b.cover(client, _end(server))
    b.cover(root, _end(client))


def _orders(b: _Builder, t0: int) -> None:
    failed = b.rng.random() < 0.03
    code = 502 if failed else 201
    user = f"user-{b.rng.randrange(10**6)}"
    root = b.call("POST /orders", "frontend", "server", t0, 1.0, None,
                  {**_http("POST", "/orders", code), "enduser.id": user},
                  status="ERROR" if failed else "UNSET")
    client = b.call("POST orders", "frontend", "client", t0 + 100_000, 1.0, root,
                    _http("POST", "/orders", code))
    server = b.call("POST /orders", "orders", "server", t0 + 200_000, 1.0, client,
                    {**_http("POST", "/orders", code), "order.id": f"{b.rng.getrandbits(64):016x}"})
    last = _stock(b, server, t0 + 300_000)
    pay = b.call("POST charge", "orders", "client", last + 100_000, 1.0, server,
                 _http("POST", "/charge", 502 if failed else 200),
                 status="ERROR" if failed else "UNSET")
    charge = b.call("POST /charge", "payments", "server", last + 200_000, 6.0, pay,
                    _http("POST", "/charge", 502 if failed else 200),
                    status="ERROR" if failed else "UNSET")
    b.cover(pay, _end(charge))
    last = _end(pay)
    if not failed and b.rng.random() < 0.5:
        publish = b.call("orders publish", "orders", "producer", last + 50_000, 0.3, server,
                         {"messaging.system": "kafka", "messaging.destination": "orders"})
        b.call("orders process", "notifications", "consumer", _end(publish) + 100_000, 2.0,
               publish, {"messaging.system": "kafka", "messaging.operation": "process"})
        last = _end(publish)
    b.cover(server, last)
    b.cover(client, _end(server))
    b.cover(root, _end(client))


def _catalog(b: _Builder, t0: int) -> None:
    root = b.call("GET /catalog", "frontend", "server", t0, 1.0, None,
                  _http("GET", "/catalog", 200))
    hit = b.rng.random() < 0.6
    cache = b.call("redis GET", "frontend", "client", t0 + 100_000, 0.5, root,
                   {"db.system": "redis", "cache.hit": hit})
    last = _end(cache)
    if not hit:
        last = _stock(b, root, last + 50_000)
    b.cover(root, last)


def _health(b: _Builder, t0: int) -> None:
    b.call("GET /health", "frontend", "server", t0, 0.2, None, _http("GET", "/health", 200))


_HANDLERS: Final = {"GET /users/{id}": _users, "POST /orders": _orders,
                    "GET /catalog": _catalog, "GET /health": _health}


def shop_corpus(seed: int, workload: tuple[tuple[str, int], ...] = WORKLOAD) -> list[Span]:
    """Every span of one corpus: requests in a seeded order, 20 ms apart."""
    rng = random.Random(seed)
    requests = [route for route, n in workload for _ in range(n)]
    rng.shuffle(requests)
    t0 = 1_700_000_000_000_000_000 + seed * 3_600_000_000_000
    spans: list[Span] = []
    for i, route in enumerate(requests):
        b = _Builder(rng=rng, trace_id=f"{rng.getrandbits(128):032x}")
        _HANDLERS[route](b, t0 + i * 20_000_000)
        spans.extend(b.spans)
    return spans
