"""Forward a run's spans to an OTLP collector: clnrm's own *and* the system under test's.

``clnrm run --otel-endpoint URL`` (or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``
/ ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) sends, once the run has ended, every span
the per-test receivers collected from the services plus clnrm's ``clnrm.run`` >
``clnrm.test`` > ... spans, so one trace in Jaeger or Tempo shows both sides
(the services joined the test's trace through ``TRACEPARENT``).

Why not the SDK's exporter: it retries with backoff and logs each failure, so a
dead collector cost seconds and several raw error lines per run.  Here each
batch is one request (OTLP/HTTP protobuf or OTLP/gRPC, by
``OTEL_EXPORTER_OTLP_PROTOCOL`` or ``--otel-protocol``) with one deadline
(``OTEL_EXPORTER_OTLP_TIMEOUT`` in milliseconds, default
:data:`DEFAULT_TIMEOUT_S`); the first failure stops the export and becomes one
:class:`ForwardReport` the CLI prints as a single warning line.  The run's
verdict never depends on the collector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from clnrm.otel.span import Span

Protocol = Literal["http/protobuf", "grpc"]

DEFAULT_TIMEOUT_S: Final = 5.0
"""Deadline of one export request: a blackholed collector costs at most this (per run)."""

BATCH: Final = 2000
"""Spans per request, under the default 4 MiB gRPC message limit of collectors."""

_GRPC_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True, slots=True)
class ExportTarget:
    """Where and how to send: a traces URL (HTTP) or ``host:port`` (gRPC)."""

    endpoint: str
    protocol: Protocol
    timeout_s: float
    secure: bool = False

    def describe(self) -> str:
        return f"{self.endpoint} ({self.protocol})"


@dataclass(frozen=True, slots=True)
class ForwardReport:
    """What an export did: spans sent, and why it stopped when it failed."""

    target: ExportTarget
    sent: int
    total: int
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def warning(self) -> str:
        """The one line a failed export is worth."""
        return (f"could not export {self.total - self.sent} of {self.total} spans to "
                f"{self.target.describe()}: {self.error} (gave up after {self.seconds:.1f} s; "
                "the run's result does not depend on it)")


def resolve_target(endpoint: str | None, protocol: str | None = None,
                   env: Mapping[str, str] | None = None) -> ExportTarget | None:
    """The export target from ``--otel-endpoint``/``--otel-protocol`` or, when not given,
    the standard ``OTEL_EXPORTER_OTLP_*`` variables; ``None`` when nothing asks for one.

    A ``ValueError`` names a protocol clnrm cannot speak (``http/json``) or a bad timeout.
    """
    env = os.environ if env is None else env
    signal_specific = False
    if not endpoint:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or ""
        signal_specific = bool(endpoint)  # the spec: used as is, no /v1/traces appended
        endpoint = endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    if not endpoint.strip():
        return None
    chosen = (protocol or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
              or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if chosen in ("http", "http/protobuf"):
        chosen = "http/protobuf"
    elif chosen != "grpc":
        raise ValueError(f"OTLP protocol {chosen!r} is not supported for --otel-endpoint; "
                         "use http/protobuf or grpc")
    timeout = _timeout_s(env)
    url = endpoint.strip()
    if chosen == "grpc":
        secure = url.startswith("https://")
        target = url.split("://", 1)[-1].rstrip("/")
        return ExportTarget(target, "grpc", timeout, secure)
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if not signal_specific and not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return ExportTarget(url, "http/protobuf", timeout)


def _timeout_s(env: Mapping[str, str]) -> float:
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        millis = float(raw)
    except ValueError:
        raise ValueError(f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r}: expected milliseconds") from None
    if not 0 < millis <= 600_000:
        raise ValueError(f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r}: expected 1..600000 milliseconds")
    return millis / 1000


def forward_spans(spans: Iterable[Span], target: ExportTarget) -> ForwardReport:
    """Send ``spans`` (deduplicated by span id) in batches; stop at the first failure."""
    unique: dict[tuple[str, str], Span] = {}
    for span in spans:
        unique.setdefault((span.trace_id, span.span_id), span)
    todo = list(unique.values())
    started = time.monotonic()
    sent = 0
    send = _send_grpc if target.protocol == "grpc" else _send_http
    for i in range(0, len(todo), BATCH):
        batch = todo[i:i + BATCH]
        error = send(batch, target)
        if error is not None:
            return ForwardReport(target, sent, len(todo), error, time.monotonic() - started)
        sent += len(batch)
    return ForwardReport(target, sent, len(todo), None, time.monotonic() - started)


def _payload(spans: Sequence[Span]) -> bytes:
    from clnrm.otel.encode import request_from_spans

    return request_from_spans(spans).SerializeToString()


def _send_http(spans: Sequence[Span], target: ExportTarget) -> str | None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(target.endpoint, data=_payload(spans), method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=target.timeout_s) as response:  # noqa: S310
            response.read(1 << 16)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        return getattr(reason, "strerror", None) or str(reason)
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def _send_grpc(spans: Sequence[Span], target: ExportTarget) -> str | None:
    import grpc

    if target.secure:
        channel = grpc.secure_channel(target.endpoint, grpc.ssl_channel_credentials())
    else:
        channel = grpc.insecure_channel(target.endpoint)
    try:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            _GRPC_METHOD, request_serializer=None, response_deserializer=None)
        call(_payload(spans), timeout=target.timeout_s)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        name = code.name if code is not None else "error"
        return f"gRPC {name}: {(details or '').splitlines()[0] if details else ''}".rstrip(": ")
    except ValueError as exc:  # a target grpc cannot parse
        return str(exc)
    finally:
        channel.close()
    return None
