"""The worker: takes jobs off the Redis queue and completes them in PostgreSQL.

Each job is one CONSUMER span ``process jobs`` whose parent is the producer span the
api stored in the message (W3C ``traceparent``), so a job's processing sits in the
trace of the request that queued it. The database update retries with backoff
through a breaker like the api's; a job that still fails goes to ``<queue>:dead``.
Waiting for work is untraced: an idle worker emits nothing. ``/health`` and
``/ready`` are served on ``PORT`` (8001) from a side thread.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer
from psycopg.types.json import Jsonb

from demoapp.config import Settings
from demoapp.resilience import DependencyError, RetryPolicy, breakers
from demoapp.stores import Database, Redis
from demoapp.telemetry import circuit_event, mark_error, messaging_attributes, setup_tracing
from demoapp.web import serve

POLL_S = 1.0
"""Longest BRPOP wait; bounds how late the worker notices a shutdown."""
DONE_SQL = "UPDATE jobs SET status = 'done', result = %s, done_at = now() WHERE id = %s"


class Worker:
    def __init__(self, settings: Settings, tracer: Tracer) -> None:
        self.settings = settings
        self.tracer = tracer
        self.policy = RetryPolicy(settings.retries, settings.backoff_s,
                                  settings.max_backoff_s, random.Random(settings.seed))
        breaker = breakers(settings, circuit_event)
        self.db = Database(settings, tracer=tracer, policy=self.policy, breaker=breaker("db"))
        self.redis = Redis(settings, tracer=tracer, breaker=breaker("cache"), blocking_s=POLL_S)

    def ready(self) -> dict[str, str]:
        return {"db": self.db.ping(), "cache": self.redis.ping()}

    def run_forever(self) -> None:
        outage = 0
        while True:
            try:
                message = self.redis.pop(self.settings.queue, POLL_S)
            except DependencyError as exc:
                outage += 1
                print(f"demo-worker: queue unavailable ({exc}); retrying", file=sys.stderr)
                time.sleep(self.policy.delay(min(outage, 10)))
                continue
            outage = 0
            if message is not None:
                self.process(message)

    def process(self, message: dict[str, Any]) -> None:
        """Complete one job; never raises for a dependency outage (the job is dead-lettered)."""
        queue = self.settings.queue
        job_id = str(message.get("id", ""))
        payload = str(message.get("payload", ""))
        carrier = message.get("trace")
        parent = propagate.extract(carrier if isinstance(carrier, dict) else {})
        attributes = messaging_attributes("process", queue, job_id, self.redis.host,
                                          self.redis.port)
        with self.tracer.start_as_current_span(f"process {queue}", context=parent,
                                               kind=SpanKind.CONSUMER,
                                               attributes=attributes) as span:
            if self.settings.work_s:
                time.sleep(self.settings.work_s)
            result = {"upper": payload.upper(), "words": len(payload.split())}
            try:
                self.db.execute(DONE_SQL, (Jsonb(result), job_id), operation="UPDATE",
                                table="jobs")
            except DependencyError as exc:
                mark_error(span, exc.kind, str(exc))
                self._dead_letter(message)

    def _dead_letter(self, message: dict[str, Any]) -> None:
        try:
            self.redis.call("LPUSH", f"{self.settings.queue}:dead", json.dumps(message),
                            policy=self.policy)
        except DependencyError as exc:
            print(f"demo-worker: job {message.get('id')} lost: {exc}", file=sys.stderr)


def run(settings: Settings) -> int:
    tracer = setup_tracing("worker")
    worker = Worker(settings, tracer)
    server = serve(role="worker", port=settings.port, routes=[], ready=worker.ready,
                   tracer=tracer)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    print(f"demo-worker: consuming {settings.queue!r}, health on :{settings.port}",
          flush=True)
    worker.run_forever()
    return 0
