"""The demo's two data stores, as clients that trace every call and fail in one way.

``Database`` is PostgreSQL through psycopg 3 with a small pool; ``Redis`` is redis-py
for both the cache and the job queue. Every call is a CLIENT span with the
semantic-convention attributes, and every infrastructure failure (refused, reset,
timed out, server shutting down) leaves as ``DependencyError`` so the retry loop and the
breaker see one type. Readiness pings are untraced (see ``web``).
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from opentelemetry.trace import SpanKind, Tracer
from psycopg.rows import dict_row
from redis.backoff import NoBackoff
from redis.retry import Retry

from demoapp.config import Settings
from demoapp.resilience import CircuitBreaker, DependencyError, RetryPolicy, call_with_retry
from demoapp.telemetry import key_namespace, mark_error, postgres_attributes, redis_attributes

POOL_SIZE = 8


class Database:
    """PostgreSQL; ``fetch``/``execute`` retry per ``RetryPolicy`` through one breaker."""

    def __init__(self, settings: Settings, *, tracer: Tracer, policy: RetryPolicy,
                 breaker: CircuitBreaker) -> None:
        self.url = settings.database_url
        parts = urlsplit(self.url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 5432
        self.database = parts.path.lstrip("/") or "postgres"
        self.timeout_s = settings.timeout_s
        self.tracer = tracer
        self.policy = policy
        self.breaker = breaker
        self.read_delay_s = settings.db_read_delay_s
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(POOL_SIZE)

    def fetch(self, sql: str, params: Sequence[Any], *, operation: str,
              table: str) -> list[dict[str, Any]]:
        rows = call_with_retry(lambda n: self._attempt(sql, params, operation, table, True),
                               policy=self.policy, breaker=self.breaker)
        assert isinstance(rows, list)
        return rows

    def execute(self, sql: str, params: Sequence[Any], *, operation: str, table: str) -> int:
        count = call_with_retry(lambda n: self._attempt(sql, params, operation, table, False),
                                policy=self.policy, breaker=self.breaker)
        assert isinstance(count, int)
        return count

    def ping(self) -> str:
        try:
            connection = self._take()
            with Deadline(connection, self.timeout_s):
                connection.execute("SELECT 1")
            self._give(connection)
            return "ok"
        except (psycopg.Error, DependencyError) as exc:
            return str(exc).strip().splitlines()[0]

    def _attempt(self, sql: str, params: Sequence[Any], operation: str, table: str,
                 fetch: bool) -> list[dict[str, Any]] | int:
        attributes = postgres_attributes(operation, table, sql, self.host, self.port,
                                         self.database)
        with self.tracer.start_as_current_span(f"{operation} {table}", kind=SpanKind.CLIENT,
                                               attributes=attributes) as span:
            try:
                connection = self._take()
            except DependencyError as exc:
                mark_error(span, type(exc.__cause__ or exc).__name__, exc.detail)
                raise
            deadline = Deadline(connection, self.timeout_s)
            try:
                with deadline, connection.cursor(row_factory=dict_row) as cursor:
                    cursor.execute(sql, params)
                    result: list[dict[str, Any]] | int = (
                        cursor.fetchall() if fetch else cursor.rowcount)
            except psycopg.OperationalError as exc:
                connection.close()
                kind = "timeout" if deadline.fired or isinstance(
                    exc, psycopg.errors.QueryCanceled) else "unavailable"
                mark_error(span, type(exc).__name__, str(exc).strip())
                raise DependencyError("db", kind, str(exc).strip()) from exc
            except BaseException:
                connection.close()
                raise
            self._give(connection)
            if fetch:
                assert isinstance(result, list)
                span.set_attribute("db.response.returned_rows", len(result))
                if self.read_delay_s > 0:  # DB_READ_DELAY_MS: a known, exact slowdown
                    _sleep_exactly(self.read_delay_s)
            return result

    def _take(self) -> psycopg.Connection[Any]:
        try:
            connection = self._idle.get_nowait()
            if not connection.closed:
                return connection
        except queue.Empty:
            pass
        return self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        """A new connection within ``timeout_s``.

        libpq (and psycopg) round ``connect_timeout`` up to 2 s, and a frozen server
        accepts the TCP connection (the kernel does) but never answers the startup,
        so the limit is kept here: the connect runs on a helper thread, and a connect
        that finishes after we gave up is closed, not leaked.
        """
        done: dict[str, Any] = {}
        lock = threading.Lock()

        def connect() -> None:
            try:
                connection = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(2, round(self.timeout_s)),
                    options=f"-c statement_timeout={int(self.timeout_s * 1000)}")
            except BaseException as exc:  # handed to the caller below
                with lock:
                    done["error"] = exc
                return
            with lock:
                if done.get("abandoned"):
                    connection.close()
                else:
                    done["connection"] = connection

        worker = threading.Thread(target=connect, name="db-connect", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        with lock:
            if "connection" in done:
                return done["connection"]  # type: ignore[no-any-return]
            error = done.get("error")
            done["abandoned"] = True
        if isinstance(error, psycopg.OperationalError):
            raise DependencyError("db", "unavailable", str(error).strip()) from error
        if error is not None:
            raise error
        raise DependencyError("db", "timeout",
                              f"no connection within {int(self.timeout_s * 1000)} ms")

    def _give(self, connection: psycopg.Connection[Any]) -> None:
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()


def _sleep_exactly(seconds: float) -> None:
    """Sleep ``seconds`` on the monotonic clock: ``time.sleep`` may wake early on a signal
    and by a scheduler tick late, so the rest is slept again until the deadline passes."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(left)


class Deadline:
    """A client-side limit on one call over ``connection``.

    ``statement_timeout`` is enforced by the server, so a server that is frozen
    (paused, swapped out, stuck behind a partition that still ACKs) never sends the
    cancel and the client would wait forever.  When the deadline passes, the socket is
    shut down under the blocked read, which returns at once and psycopg raises.
    """

    def __init__(self, connection: psycopg.Connection[Any], seconds: float) -> None:
        self.fired = False
        self._fd = connection.fileno()
        self._timer = threading.Timer(seconds + 0.05, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            sock = socket.socket(fileno=os.dup(self._fd))
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        except OSError:  # already closed
            pass

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class Redis:
    """Redis for the cache (GET/SET) and the job queue (LPUSH/BRPOP).

    redis-py's own retries are switched off: attempts are counted, spaced and
    broken by ``resilience`` like every other dependency's.
    """

    def __init__(self, settings: Settings, *, tracer: Tracer, breaker: CircuitBreaker,
                 blocking_s: float = 0.0) -> None:
        parts = urlsplit(settings.redis_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.index = int(parts.path.lstrip("/") or 0)
        self.tracer = tracer
        self.breaker = breaker
        self._client = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=settings.timeout_s,
            # a blocking pop waits up to blocking_s for a job before the socket may time out
            socket_timeout=settings.timeout_s + blocking_s)

    def call(self, command: str, key: str, *args: Any, policy: RetryPolicy) -> Any:
        """One traced command (a span per attempt) under ``policy`` and the breaker."""
        return call_with_retry(lambda n: self._attempt(command, key, args),
                               policy=policy, breaker=self.breaker)

    def get_json(self, key: str, policy: RetryPolicy) -> Any | None:
        raw = self.call("GET", key, policy=policy)
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any, policy: RetryPolicy) -> None:
        self.call("SET", key, json.dumps(value), policy=policy)

    def pop(self, queue_name: str, wait_s: float) -> dict[str, Any] | None:
        """Untraced blocking pop: an idle worker must not emit a span per poll."""
        try:
            item = self._client.brpop([queue_name], timeout=max(1, round(wait_s)))
        except redis.RedisError as exc:
            raise DependencyError("cache", "unavailable", str(exc)) from exc
        if item is None:
            return None
        message = json.loads(item[1])
        return message if isinstance(message, dict) else None

    def ping(self) -> str:
        try:
            return "ok" if self._client.ping() else "no PONG"
        except redis.RedisError as exc:
            return str(exc)

    def _attempt(self, command: str, key: str, args: tuple[Any, ...]) -> Any:
        attributes = redis_attributes(command, key, self.host, self.port, self.index)
        with self.tracer.start_as_current_span(f"{command} {key_namespace(key)}",
                                               kind=SpanKind.CLIENT,
                                               attributes=attributes) as span:
            try:
                return self._client.execute_command(command, key, *args)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                kind = "timeout" if isinstance(exc, redis.TimeoutError) else "unavailable"
                mark_error(span, type(exc).__name__, str(exc))
                raise DependencyError("cache", kind, str(exc)) from exc
