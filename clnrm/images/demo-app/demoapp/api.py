"""The api: items from PostgreSQL behind a Redis cache-aside, and jobs onto a Redis queue.

    GET  /v1/items         every item          cached as items:all
    GET  /v1/items/{id}    one item, 404       cached as items:{id}
    POST /v1/jobs          {"payload": str, "id"?: str} -> 202 {"id", "status": "queued"}
    GET  /v1/jobs/{id}     {"id", "status": "queued|done|failed", "result"}, 404

Reads: a cached entry younger than ``CACHE_TTL_S`` is served as is (``source:
"cache"``); otherwise the database is asked and the cache refreshed (``"db"``). Entries
never expire in Redis, so when the database fails and ``FALLBACK_STALE_CACHE=on`` the
last value is served (``"stale-cache"``, event ``fallback.stale_cache`` on the server
span); without a cached value, or with the fallback off, the answer is 503. A cache
outage is a miss, never an error: the cache is an optimisation.

Jobs: the row is inserted (``queued``) before the message is sent, so a job the
worker has not reached yet is visible; the message carries the producer span's W3C
context, which the worker's consumer span continues.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Tracer

from demoapp.config import Settings
from demoapp.resilience import DependencyError, RetryPolicy, breakers
from demoapp.stores import Database, Redis
from demoapp.telemetry import circuit_event, messaging_attributes, setup_tracing
from demoapp.web import BadRequest, Handler, Request, Response, Route, serve

JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_PAYLOAD = 10_000
ITEMS_SQL = "SELECT id, name, stock FROM items ORDER BY id"
ITEM_SQL = "SELECT id, name, stock FROM items WHERE id = %s"
JOB_SQL = "SELECT id, status, result FROM jobs WHERE id = %s"
INSERT_JOB_SQL = "INSERT INTO jobs (id, payload) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING"
FAIL_JOB_SQL = "UPDATE jobs SET status = 'failed' WHERE id = %s"


class ItemsApi:
    """The api's routes; one instance serves all request threads."""

    def __init__(self, settings: Settings, tracer: Tracer) -> None:
        self.settings = settings
        self.tracer = tracer
        self.rng = random.Random(settings.seed)
        self.policy = RetryPolicy(settings.retries, settings.backoff_s,
                                  settings.max_backoff_s, self.rng)
        breaker = breakers(settings, circuit_event)
        self.db = Database(settings, tracer=tracer, policy=self.policy, breaker=breaker("db"))
        self.redis = Redis(settings, tracer=tracer, breaker=breaker("cache"))

    def routes(self) -> list[Route]:
        routes = [
            Route("GET", "/v1/items", _outages_as_503(self.list_items)),
            Route("GET", "/v1/items/{id}", _outages_as_503(self.get_item)),
            Route("POST", "/v1/jobs", _outages_as_503(self.create_job)),
            Route("GET", "/v1/jobs/{id}", _outages_as_503(self.get_job)),
        ]
        if self.settings.fixed_delay_s > 0:
            routes.append(Route("GET", "/v1/delay", self.fixed_delay))
        return routes

    def fixed_delay(self, request: Request) -> Response:
        """``FIXED_DELAY_MS``: answer after exactly that long, asking no dependency."""
        delay_s = self.settings.fixed_delay_s
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)
        return Response.json(200, {"delay_ms": round(delay_s * 1000, 3)})

    def ready(self) -> dict[str, str]:
        return {"db": self.db.ping(), "cache": self.redis.ping()}

    # -- items -----------------------------------------------------------------

    def list_items(self, request: Request) -> Response:
        items, source = self._cached_read("items:all", lambda: self.db.fetch(
            ITEMS_SQL, (), operation="SELECT", table="items"))
        return Response.json(200, {"items": items, "count": len(items), "source": source})

    def get_item(self, request: Request) -> Response:
        item_id = request.params["id"]
        if not item_id.isdigit():
            raise BadRequest(f"item id must be a number, got {item_id!r}")

        def load() -> Any:
            rows = self.db.fetch(ITEM_SQL, (int(item_id),), operation="SELECT", table="items")
            return rows[0] if rows else None

        item, source = self._cached_read(f"items:{item_id}", load)
        if item is None:
            return Response.json(404, {"error": f"no item {item_id}"})
        return Response.json(200, {"item": item, "source": source})

    def _cached_read(self, key: str, load: Callable[[], Any]) -> tuple[Any, str]:
        span = trace.get_current_span()
        entry = self._cache_get(key)
        now = time.time()
        if entry is not None and now - entry["at"] < self.settings.cache_ttl_s:
            span.set_attribute("demo.cache.source", "cache")
            return entry["value"], "cache"
        try:
            value = load()
        except DependencyError as exc:
            if entry is None or not self.settings.fallback_stale_cache:
                raise
            span.add_event("fallback.stale_cache", {
                "demo.cache.key": key, "demo.cache.age_s": round(now - entry["at"], 3),
                "error.type": exc.kind})
            span.set_attribute("demo.cache.source", "stale-cache")
            return entry["value"], "stale-cache"
        if value is not None:
            self._cache_set(key, {"at": now, "value": value})
        span.set_attribute("demo.cache.source", "db")
        return value, "db"

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = self.redis.get_json(key, self.policy.without_retries())
        except DependencyError:
            return None
        if isinstance(entry, dict) and isinstance(entry.get("at"), (int, float)):
            return entry
        return None

    def _cache_set(self, key: str, entry: dict[str, Any]) -> None:
        try:
            self.redis.set_json(key, entry, self.policy.without_retries())
        except DependencyError:
            pass

    # -- jobs ------------------------------------------------------------------

    def create_job(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("payload"), str):
            raise BadRequest('expected {"payload": "<text>", "id": "<optional id>"}')
        payload = body["payload"]
        if len(payload) > MAX_PAYLOAD:
            raise BadRequest(f"payload over {MAX_PAYLOAD} characters")
        job_id = body.get("id") or f"{self.rng.getrandbits(64):016x}"
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise BadRequest("id must be 1-64 of A-Z a-z 0-9 _ . -")
        inserted = self.db.execute(INSERT_JOB_SQL, (job_id, payload), operation="INSERT",
                                   table="jobs")
        if inserted == 0:
            return Response.json(409, {"error": f"job {job_id} exists", "id": job_id})
        try:
            self._send(job_id, payload)
        except DependencyError:
            try:
                self.db.execute(FAIL_JOB_SQL, (job_id,), operation="UPDATE", table="jobs")
            except DependencyError:
                pass
            raise
        return Response.json(202, {"id": job_id, "status": "queued"})

    def _send(self, job_id: str, payload: str) -> None:
        queue = self.settings.queue
        attributes = messaging_attributes("send", queue, job_id, self.redis.host,
                                          self.redis.port)
        with self.tracer.start_as_current_span(f"send {queue}", kind=SpanKind.PRODUCER,
                                               attributes=attributes):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            message = {"id": job_id, "payload": payload, "trace": carrier}
            self.redis.call("LPUSH", queue, json.dumps(message), policy=self.policy)

    def get_job(self, request: Request) -> Response:
        rows = self.db.fetch(JOB_SQL, (request.params["id"],), operation="SELECT",
                             table="jobs")
        if not rows:
            return Response.json(404, {"error": f"no job {request.params['id']}"})
        return Response.json(200, rows[0])


def _outages_as_503(handler: Handler) -> Handler:
    def answer(request: Request) -> Response:
        try:
            return handler(request)
        except DependencyError as exc:
            return Response.json(503, {"error": str(exc), "dependency": exc.dependency,
                                       "kind": exc.kind})

    return answer


def run(settings: Settings) -> int:
    tracer = setup_tracing("api")
    api = ItemsApi(settings, tracer)
    server = serve(role="api", port=settings.port, routes=api.routes(), ready=api.ready,
                   tracer=tracer)
    print(f"demo-api: listening on :{settings.port}", flush=True)
    server.serve_forever()
    return 0
