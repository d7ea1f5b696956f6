"""OpenTelemetry for the demo services: the SDK configured from the standard environment.

clnrm injects ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_BSP_SCHEDULE_DELAY``; nothing here knows clnrm.
Without an endpoint (run by hand) spans are still made, so trace context still flows
between services, but nothing is exported.

Spans are made by hand with the SDK API rather than by instrumentation packages: that
keeps the image to three wheels and makes every name and attribute visible in one place.
Names follow the semantic conventions' rules, chosen so every kind of span in the
system has a distinct name (the validators match names):

- HTTP server ``{method} {http.route}``: the gateway's public ``GET /items`` and the
  api's versioned ``GET /v1/items`` stay apart;
- HTTP client ``{method}``;
- database ``{db.operation.name} {target}``: ``SELECT items`` for PostgreSQL, and for
  Redis the command and the key's namespace (``GET items`` for ``items:all``);
- messaging ``{operation} {destination}``: ``send jobs``, ``process jobs``.

Attributes use the current names and, as ``OTEL_SEMCONV_STABILITY_OPT_IN=database/dup``
would, the older database and messaging names too (``db.system``, ``db.statement``,
``db.operation``), so expectations written either way match.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from demoapp.resilience import CircuitState

Attributes = dict[str, Any]


def setup_tracing(role: str) -> Tracer:
    """A tracer exporting over OTLP as the environment says; flushed on exit and SIGTERM."""
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": role}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = _exporter_from_env()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SystemExit runs atexit
    return provider.get_tracer("demoapp")


def _exporter_from_env() -> Any | None:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint or os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return None
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def mark_error(span: Span, error_type: str, description: str = "") -> None:
    """Status ERROR plus ``error.type``: what every failed operation carries."""
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description or error_type))


def circuit_event(name: str, state: CircuitState) -> None:
    """Breaker transitions become events on whatever span caused them."""
    trace.get_current_span().add_event(
        "circuit_breaker.state_change", {"demo.circuit.name": name, "demo.circuit.state": state})


def http_server_attributes(method: str, route: str, path: str, query: str,
                           headers: Mapping[str, str], port: int,
                           client: str) -> Attributes:
    host = (headers.get("Host") or "").rsplit(":", 1)[0]
    attributes: Attributes = {
        "http.request.method": method,
        "http.route": route,
        "url.path": path,
        "url.scheme": "http",
        "server.port": port,
        "client.address": client,
        "network.protocol.version": "1.1",
    }
    if host:
        attributes["server.address"] = host
    if query:
        attributes["url.query"] = query
    return attributes


def http_client_attributes(method: str, url: str, resend_count: int) -> Attributes:
    parts = urlsplit(url)
    attributes: Attributes = {
        "http.request.method": method,
        "url.full": url,
        "server.address": parts.hostname or "",
        "server.port": parts.port or 80,
        "network.protocol.version": "1.1",
    }
    if resend_count:
        attributes["http.request.resend_count"] = resend_count
    return attributes


def postgres_attributes(operation: str, table: str, statement: str, host: str, port: int,
                        database: str) -> Attributes:
    return {
        "db.system.name": "postgresql",
        "db.system": "postgresql",
        "db.namespace": database,
        "db.name": database,
        "db.operation.name": operation,
        "db.operation": operation,
        "db.collection.name": table,
        "db.sql.table": table,
        "db.query.text": statement,
        "db.statement": statement,
        "server.address": host,
        "server.port": port,
    }


def redis_attributes(command: str, key: str, host: str, port: int, index: int) -> Attributes:
    statement = f"{command} {key}" + (" ?" if command in {"SET", "LPUSH"} else "")
    return {
        "db.system.name": "redis",
        "db.system": "redis",
        "db.namespace": str(index),
        "db.redis.database_index": index,
        "db.operation.name": command,
        "db.operation": command,
        "db.query.text": statement,
        "db.statement": statement,
        "server.address": host,
        "server.port": port,
    }


def messaging_attributes(operation: str, queue: str, message_id: str, host: str,
                         port: int) -> Attributes:
    """``operation`` is ``send`` (producer) or ``process`` (consumer)."""
    return {
        "messaging.system": "redis",
        "messaging.destination.name": queue,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.operation": "publish" if operation == "send" else operation,
        "messaging.message.id": message_id,
        "server.address": host,
        "server.port": port,
    }


def key_namespace(key: str) -> str:
    """``items:all`` -> ``items``: the Redis analogue of a table, used in span names."""
    return key.split(":", 1)[0]
