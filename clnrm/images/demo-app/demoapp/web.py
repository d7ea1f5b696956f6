"""HTTP for the demo services: a routed, traced stdlib server and a resilient client.

The server makes one SERVER span per routed request, parented on the caller's W3C
``traceparent`` header; ``/health`` (liveness) and ``/ready`` (dependencies answer)
are deliberately untraced, because readiness probes poll them and would bury the
requests a test is about. The client makes one CLIENT span per *attempt* (semantic
conventions: a resend is a new span with ``http.request.resend_count``).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer

from demoapp.resilience import CircuitBreaker, DependencyError, RetryPolicy, call_with_retry
from demoapp.telemetry import http_client_attributes, http_server_attributes, mark_error

MAX_BODY = 1 << 20
ReadyCheck = Callable[[], dict[str, str]]
"""Dependency name -> ``"ok"`` or what went wrong; all ``ok`` means ready."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    params: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ``BadRequest`` when it is not."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise BadRequest(f"body is not JSON: {exc}") from exc


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, **headers: str) -> Response:
        return cls(status, json.dumps(data).encode(), headers=dict(headers))


class BadRequest(Exception):
    """The client sent something unusable: answered 400 with the message."""


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    """``/v1/items/{id}``: the span name's ``http.route``; ``{x}`` matches one path segment."""
    handler: Handler

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


def serve(*, role: str, port: int, routes: list[Route], ready: ReadyCheck,
          tracer: Tracer) -> ThreadingHTTPServer:
    """A server bound to ``0.0.0.0:port``; it answers once ``serve_forever`` runs."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in separate writes; with Nagle on, the body waits for the
        # client's delayed ACK of the headers (~40 ms per keep-alive request)
        disable_nagle_algorithm = True
        server_version = f"demo-{role}"
        sys_version = ""

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True  # the unread body must not become a "request"
                return self._send(Response.json(413, {"error": f"body over {MAX_BODY} bytes"}))
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            if path == "/health" and self.command == "GET":
                return self._send(Response.json(200, {"status": "ok", "service": role}))
            if path == "/ready" and self.command == "GET":
                checks = ready()
                ok = all(v == "ok" for v in checks.values())
                return self._send(Response.json(200 if ok else 503, {
                    "status": "ready" if ok else "not ready", "service": role,
                    "checks": checks}))
            for route in routes:
                params = route.match(self.command, path)
                if params is not None:
                    return self._send(self._traced(route, params, path, query, body))
            self._send(Response.json(404, {"error": f"no route for {self.command} {path}"}))

        def _traced(self, route: Route, params: dict[str, str], path: str, query: str,
                    body: bytes) -> Response:
            headers = {k: v for k, v in self.headers.items()}
            attributes = http_server_attributes(self.command, route.template, path, query,
                                                headers, port, self.client_address[0])
            with tracer.start_as_current_span(
                    f"{self.command} {route.template}", kind=SpanKind.SERVER,
                    # urllib sends "Traceparent": header names are case-insensitive
                    context=propagate.extract({k.lower(): v for k, v in headers.items()}),
                    attributes=attributes,
                    record_exception=True, set_status_on_exception=False) as span:
                try:
                    request = Request(self.command, path, query, params, headers, body)
                    response = route.handler(request)
                except BadRequest as exc:
                    response = Response.json(400, {"error": str(exc)})
                except Exception as exc:  # a bug: answered 500, recorded on the span
                    span.record_exception(exc)
                    print(f"demo-{role}: {self.command} {path} failed: {exc!r}", file=sys.stderr)
                    response = Response.json(500, {"error": type(exc).__name__})
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    mark_error(span, str(response.status))
                return response

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            if not self.path.startswith(("/health", "/ready")):
                sys.stderr.write(f"demo-{role}: {self.address_string()} {format % args}\n")

    server = ThreadingHTTPServer(("0.0.0.0", port), RequestHandler)
    server.daemon_threads = True
    return server


class Upstream:
    """An HTTP dependency called with a per-attempt timeout, retries and a breaker.

    Only GET is retried (it is idempotent); a POST is attempted once. A response of
    any status is an answer, not a failure: only transport errors and timeouts count
    for the breaker, so an api answering 503 for its own database does not cut the
    gateway off from the stale-cache reads the api can still serve.
    """

    def __init__(self, name: str, base_url: str, *, tracer: Tracer, timeout_s: float,
                 policy: RetryPolicy, breaker: CircuitBreaker) -> None:
        self.name = name
        self.base_url = base_url
        self.tracer = tracer
        self.timeout_s = timeout_s
        self.policy = policy
        self.breaker = breaker
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: bytes = b"",
                content_type: str = "application/json") -> Response:
        policy = self.policy if method == "GET" else self.policy.without_retries()
        return call_with_retry(lambda n: self._attempt(method, path, body, content_type, n),
                               policy=policy, breaker=self.breaker)

    def _attempt(self, method: str, path: str, body: bytes, content_type: str,
                 resend_count: int) -> Response:
        url = self.base_url + path
        with self.tracer.start_as_current_span(
                method, kind=SpanKind.CLIENT,
                attributes=http_client_attributes(method, url, resend_count)) as span:
            headers = {"Content-Type": content_type} if body else {}
            propagate.inject(headers)
            request = urllib.request.Request(url, data=body or None, method=method,
                                             headers=headers)
            try:
                with self._opener.open(request, timeout=self.timeout_s) as answer:
                    status, data = answer.status, answer.read()
                    ctype = answer.headers.get("Content-Type", "application/json")
            except urllib.error.HTTPError as answer:
                status, data = answer.code, answer.read()
                ctype = answer.headers.get("Content-Type", "application/json")
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                timed_out = isinstance(reason, (TimeoutError, socket.timeout))
                mark_error(span, type(reason).__name__, str(reason))
                raise DependencyError(self.name, "timeout" if timed_out else "unavailable",
                                      str(reason)) from exc
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                mark_error(span, str(status))
            return Response(status, data, ctype)

    def ready(self) -> str:
        """Untraced: is the upstream's own ``/ready`` 200?"""
        try:
            with self._opener.open(self.base_url + "/ready", timeout=self.timeout_s) as answer:
                return "ok" if answer.status == 200 else f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))
