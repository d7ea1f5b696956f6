"""The embedded OTLP receiver a run starts for its containers' spans.

One receiver per sandbox network: it listens on that network's gateway
address (or loopback for the local backend) and nowhere else, so only the
test's own containers can reach it, over OTLP/HTTP (protobuf or JSON, on
:mod:`clnrm.otel.otlp_http`) and OTLP/gRPC.  Spans are kept in memory for
validation and handed to a :class:`~clnrm.otel.sink.SpanSink` (the run's
``spans.jsonl``) before the exporter is acknowledged.

Threads are bounded whatever clients do: OTLP/HTTP reads every connection on
one event-loop thread (with deadlines, see :class:`~clnrm.otel.otlp_http.HttpLimits`)
and decodes complete requests on a fixed pool; gRPC core does its own I/O and
runs handlers on a pool of four.  Decoding happens in those pools;
:meth:`OtlpReceiver.wait_for` waits on a condition that every accepted batch
signals, so span-based readiness reacts at once.  ``__exit__`` stops both
servers and closes open connections in well under a second.

Bad payloads get the protocol's error answer and one ``clnrm.otel`` warning;
nothing a client sends can raise out of the receiver or print a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import structlog

from clnrm.errors import BackendError
from clnrm.otel.decode import OtlpDecodeError, spans_from_protobuf
from clnrm.otel.sink import SpanSink
from clnrm.otel.span import Span

if TYPE_CHECKING:
    import grpc

    from clnrm.otel.otlp_http import HttpLimits, OtlpHttpServer

log = structlog.get_logger("clnrm.otel")

DEFAULT_MAX_BODY_BYTES: Final = 8 << 20
_GRPC_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
# gRPC core rejects larger messages before our handler sees them, without a log
# line; up to this multiple of the limit we read them and reject (and log) ourselves
_GRPC_HARD_LIMIT_FACTOR: Final = 4
_GRPC_WORKERS: Final = 4
# gRPC queues RPCs beyond its workers; past this many in flight it answers
# RESOURCE_EXHAUSTED instead of buffering without bound (same cap as HTTP connections)
_GRPC_MAX_CONCURRENT_RPCS: Final = 1024
_GRPC_HANDSHAKE_MS: Final = 10_000  # a connection that never completes its preface is cut
_GRPC_IDLE_MS: Final = 30_000  # an idle connection gets GOAWAY (clients reconnect)

SpanPredicate: TypeAlias = Callable[[Sequence[Span]], bool]
"""Called with all spans received so far (do not mutate, keep it cheap: it runs
under the receiver's lock after every batch)."""


class OtlpReceiver:
    """OTLP/HTTP + OTLP/gRPC trace receiver, used as a context manager.

    ``http_port``/``grpc_port`` 0 pick free ports; read the chosen ones from
    :attr:`http_endpoint`/:attr:`grpc_endpoint` after entering.  Entering raises
    :class:`~clnrm.errors.BackendError` if an address cannot be bound (for a
    Docker gateway: the network must exist before the receiver starts).
    ``http_limits`` (workers, connection cap, backlog, deadlines) defaults to
    :class:`~clnrm.otel.otlp_http.HttpLimits`; tests shorten its deadlines.
    """

    def __init__(self, host: str = "127.0.0.1", *, http_port: int = 0, grpc_port: int = 0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 sink: SpanSink | None = None, http_limits: HttpLimits | None = None) -> None:
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.http_limits = http_limits
        self._requested = (http_port, grpc_port)
        self._sink = sink
        self._cond = threading.Condition()
        self._spans: list[Span] = []
        self._rejected = 0
        self._seen_404: set[str] = set()
        self._closed = False
        self._http: OtlpHttpServer | None = None
        self._grpc: grpc.Server | None = None
        self._grpc_pool: ThreadPoolExecutor | None = None
        self._ports: tuple[int, int] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> OtlpReceiver:
        try:
            http_port = self._start_http(self._requested[0])
            grpc_port = self._start_grpc(self._requested[1])
        except BaseException:
            self.close()
            raise
        self._ports = (http_port, grpc_port)
        log.debug("otlp.listening", http=self.http_endpoint, grpc=self.grpc_endpoint)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop both servers, drop open connections and wake every waiter; idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._grpc is not None:
            stopped = self._grpc.stop(grace=None)
            self._grpc = None
        else:
            stopped = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if stopped is not None:
            stopped.wait(timeout=1.0)
        if self._grpc_pool is not None:
            self._grpc_pool.shutdown(wait=False, cancel_futures=True)
            self._grpc_pool = None

    def _start_http(self, port: int) -> int:
        from clnrm.otel.otlp_http import OtlpHttpServer

        try:
            server = OtlpHttpServer((self.host, port), self, self.http_limits)
        except OSError as exc:
            raise _bind_error("OTLP/HTTP", self.host, port, exc) from exc
        self._http = server
        server.start()
        return server.port

    def _start_grpc(self, port: int) -> int:
        import grpc

        self._grpc_pool = ThreadPoolExecutor(max_workers=_GRPC_WORKERS,
                                             thread_name_prefix="clnrm-otlp-grpc")
        handler = grpc.method_handlers_generic_handler(_GRPC_SERVICE, {
            # raw bytes in and out: decoding errors are ours to answer, not grpc's to log
            "Export": grpc.unary_unary_rpc_method_handler(self._grpc_export),
        })
        hard_limit = self.max_body_bytes * _GRPC_HARD_LIMIT_FACTOR
        server = grpc.server(self._grpc_pool, handlers=[handler],
                             maximum_concurrent_rpcs=_GRPC_MAX_CONCURRENT_RPCS, options=[
            ("grpc.max_receive_message_length", min(hard_limit, 2**31 - 1)),
            ("grpc.so_reuseport", 0),  # never share a port with another receiver
            # the HTTP deadlines' counterparts (gRPC core defaults: 120 s, never)
            ("grpc.server_handshake_timeout_ms", _GRPC_HANDSHAKE_MS),
            ("grpc.max_connection_idle_ms", _GRPC_IDLE_MS),
        ])
        address = f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise _bind_error("OTLP/gRPC", self.host, port, exc) from exc
        if not bound:
            raise _bind_error("OTLP/gRPC", self.host, port, None)
        server.start()
        self._grpc = server
        return int(bound)

    # -- what clients and the runner use ---------------------------------------------

    @property
    def http_endpoint(self) -> str:
        """``http://host:port``; exporters append ``/v1/traces`` themselves."""
        return f"http://{self._netloc(self._started()[0])}"

    @property
    def grpc_endpoint(self) -> str:
        """``http://host:port`` (the ``http`` scheme tells SDK exporters to use no TLS)."""
        return f"http://{self._netloc(self._started()[1])}"

    def exporter_env(self, protocol: Literal["http/protobuf", "http/json", "grpc"]
                     = "http/protobuf") -> dict[str, str]:
        """Standard ``OTEL_EXPORTER_OTLP_*`` variables pointing an SDK at this receiver."""
        endpoint = self.grpc_endpoint if protocol == "grpc" else self.http_endpoint
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_TRACES_EXPORTER": "otlp"}

    def spans(self) -> list[Span]:
        """A snapshot of every span accepted so far, in arrival order."""
        with self._cond:
            return list(self._spans)

    @property
    def span_count(self) -> int:
        with self._cond:
            return len(self._spans)

    @property
    def rejected_count(self) -> int:
        """Payloads answered with an error so far (each also logged once)."""
        with self._cond:
            return self._rejected

    def wait_for(self, until: int | SpanPredicate, timeout: float | None) -> bool:
        """Block until ``until`` spans arrived (or the predicate holds); False on timeout.

        Woken by each accepted batch, never by polling; also returns (with the
        predicate's current value) once the receiver is closed.
        """
        predicate: SpanPredicate
        if isinstance(until, int):
            count = until

            def predicate(spans: Sequence[Span]) -> bool:
                return len(spans) >= count
        else:
            predicate = until
        with self._cond:
            return self._cond.wait_for(
                lambda: predicate(self._spans) or self._closed, timeout) and \
                predicate(self._spans)

    # -- intake (called from the transports' threads) ---------------------------------

    def accept(self, spans: list[Span], *, transport: str) -> None:
        """Store one decoded batch: sink first, so an acknowledged batch is on disk."""
        if self._closed or not spans:
            return
        if self._sink is not None:
            try:
                self._sink.write(spans)
            except Exception as exc:  # keep the spans in memory; the run still validates
                log.error("otlp.sink_failed", error=f"{type(exc).__name__}: {exc}",
                          spans=len(spans))
        with self._cond:
            self._spans.extend(spans)
            self._cond.notify_all()

    def reject(self, *, transport: str, status: str, reason: str, peer: str,
               size: int | None) -> None:
        """Count and log one refused payload.

        A 404 is logged once per path: an SDK exporting metrics or logs too
        would otherwise repeat the same line every export interval.
        """
        with self._cond:
            self._rejected += 1
            if status == "404":
                if reason in self._seen_404:
                    return
                self._seen_404.add(reason)
        log.warning("otlp.payload_rejected", transport=transport, status=status, reason=reason,
                    peer=peer, bytes=size)

    def _grpc_export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        import grpc

        try:
            if len(request) > self.max_body_bytes:
                code, reason = grpc.StatusCode.RESOURCE_EXHAUSTED, (
                    f"message of {len(request)} bytes exceeds the limit of "
                    f"{self.max_body_bytes} bytes")
            else:
                self.accept(spans_from_protobuf(request), transport="grpc")
                return b""  # empty ExportTraceServiceResponse
        except OtlpDecodeError as exc:
            code, reason = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except Exception as exc:  # a bug must answer, not hang the exporter
            log.warning("otlp.internal_error", transport="grpc",
                        error=f"{type(exc).__name__}: {exc}")
            code, reason = grpc.StatusCode.INTERNAL, "internal error in clnrm's receiver"
        self.reject(transport="grpc", status=code.name, reason=reason, peer=context.peer(),
                    size=len(request))
        context.set_code(code)
        context.set_details(reason)
        return b""

    # -- helpers -------------------------------------------------------------------

    def _started(self) -> tuple[int, int]:
        if self._ports is None:
            raise RuntimeError("the OTLP receiver is not running (use it as a context manager)")
        return self._ports

    def _netloc(self, port: int) -> str:
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    def __repr__(self) -> str:
        where = f"{self.host} {self._ports}" if self._ports else f"{self.host} (stopped)"
        return f"<OtlpReceiver {where} spans={len(self._spans)}>"


def _bind_error(what: str, host: str, port: int, exc: BaseException | None) -> BackendError:
    detail = getattr(exc, "strerror", None) or (str(exc) if exc else "bind failed")
    return BackendError(
        f"cannot listen for {what} on {host}:{port}: {detail}", backend="otel",
        hint="the address must belong to this host (a Docker network's gateway exists only "
             "once the network is created) and the port must be free")

