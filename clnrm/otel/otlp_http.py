"""OTLP/HTTP transport of the receiver: ``POST /v1/traces``, protobuf or JSON.

Answers as the OTLP/HTTP spec says, so SDK exporters retry or give up
correctly: 200 with an ``ExportTraceServiceResponse`` in the request's
encoding; 400 (malformed) and 413 (over the size limit) with a
``google.rpc.Status`` body; 415 for other content types or encodings; 404 for
other paths; 405 for other methods.  A bad request never reaches a traceback:
every rejection is one structured log line (``clnrm.otel``) and the connection
stays usable whenever the body could be read to its end.

Built on the stdlib ``ThreadingHTTPServer`` (one thread per connection, which
fits exporters' keep-alive connections).  Unlike the stdlib default, closing
the server also shuts the open connections, so no handler thread outlives it.
"""

from __future__ import annotations

import json
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import structlog

from clnrm.otel.decode import OtlpDecodeError, spans_from_json, spans_from_protobuf
from clnrm.otel.span import Span

log = structlog.get_logger("clnrm.otel")

TRACES_PATH: Final = "/v1/traces"
_ENCODINGS: Final = {"application/x-protobuf": "protobuf", "application/protobuf": "protobuf",
                     "application/json": "json"}
_CHUNK: Final = 1 << 16
# google.rpc.Code numbers carried in the error bodies
_INVALID_ARGUMENT: Final = 3
_NOT_FOUND: Final = 5
_RESOURCE_EXHAUSTED: Final = 8
_UNIMPLEMENTED: Final = 12
_INTERNAL: Final = 13


class SpanIntake(Protocol):
    """What the transport hands its results to (the :class:`OtlpReceiver`)."""

    max_body_bytes: int

    def accept(self, spans: list[Span], *, transport: str) -> None: ...

    def reject(self, *, transport: str, status: str, reason: str, peer: str,
               size: int | None) -> None: ...


class _Rejected(Exception):
    """Ends one request with an error answer; ``close`` drops an unreadable connection."""

    def __init__(self, status: int, code: int, reason: str, *, close: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.close = close


class OtlpHttpServer(ThreadingHTTPServer):
    """The listening socket plus the set of open connections, so close is complete."""

    daemon_threads = True
    block_on_close = False  # keep-alive connections would block close; we shut them instead

    def __init__(self, address: tuple[str, int], intake: SpanIntake) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.intake = intake
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _OtlpHttpHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on a keep-alive read so its thread ends."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away; nothing to answer
        log.warning("otlp.http_error", peer=_peer(client_address),
                    error=f"{type(exc).__name__}: {exc}")


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse one connection
    server_version = "clnrm-otlp"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this long
    server: OtlpHttpServer

    def do_POST(self) -> None:
        intake = self.server.intake
        encoding = _ENCODINGS.get(self._content_type())
        size: int | None = None
        try:
            if urlsplit(self.path).path != TRACES_PATH:
                self._discard_body()
                raise _Rejected(404, _NOT_FOUND, f"no OTLP endpoint at {self.path!r} "
                                f"(traces go to {TRACES_PATH})")
            if encoding is None:
                self._discard_body()
                raise _Rejected(415, _INVALID_ARGUMENT,
                                f"unsupported Content-Type {self.headers.get('Content-Type')!r}; "
                                "use application/x-protobuf or application/json")
            body = self._read_body(intake.max_body_bytes)
            size = len(body)
            body = self._decompress(body, intake.max_body_bytes)
            size = len(body)
            try:
                spans = spans_from_json(body) if encoding == "json" else spans_from_protobuf(body)
            except OtlpDecodeError as exc:
                raise _Rejected(400, _INVALID_ARGUMENT, str(exc)) from None
            intake.accept(spans, transport="http")
        except _Rejected as rej:
            intake.reject(transport="http", status=str(rej.status), reason=rej.reason,
                          peer=_peer(self.client_address), size=size)
            self._send_status(rej.status, rej.code, rej.reason, encoding or "json",
                              close=rej.close)
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception as exc:  # a bug must not kill the connection thread silently
            log.warning("otlp.internal_error", transport="http",
                        error=f"{type(exc).__name__}: {exc}")
            self._send_status(500, _INTERNAL, "internal error in clnrm's receiver",
                              encoding or "json", close=True)
            return
        if encoding == "json":
            self._send(200, b"{}", "application/json")
        else:
            self._send(200, b"", "application/x-protobuf")  # empty ExportTraceServiceResponse

    def do_GET(self) -> None:
        self._wrong_method()

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _wrong_method(self) -> None:
        self._discard_body()
        if urlsplit(self.path).path == TRACES_PATH:
            reason = f"{self.command} not allowed on {TRACES_PATH}; OTLP uses POST"
            self.server.intake.reject(transport="http", status="405", reason=reason,
                                      peer=_peer(self.client_address), size=None)
            self._send_status(405, _UNIMPLEMENTED, reason, "json", close=False,
                              extra={"Allow": "POST"})
        else:
            self._send_status(404, _NOT_FOUND, f"no OTLP endpoint at {self.path!r}", "json",
                              close=False)

    # -- body ------------------------------------------------------------------------

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = self._content_length()
        if length > limit:
            drained = self._discard_body()
            raise _Rejected(413, _RESOURCE_EXHAUSTED,
                            f"body of {length} bytes exceeds the limit of {limit} bytes",
                            close=not drained)
        body = self.rfile.read(length)
        if len(body) != length:
            raise _Rejected(400, _INVALID_ARGUMENT, "body shorter than Content-Length", close=True)
        return body

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            raise _Rejected(400, _INVALID_ARGUMENT, f"bad Content-Length {raw!r}", close=True)
        return length

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Rejected(400, _INVALID_ARGUMENT, "bad chunk header", close=True) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                raise _Rejected(413, _RESOURCE_EXHAUSTED,
                                f"chunked body exceeds the limit of {limit} bytes", close=True)
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _discard_body(self) -> bool:
        """Read and drop the body so the connection stays usable; False if not worth it."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return False
        try:
            remaining = self._content_length()
        except _Rejected:
            self.close_connection = True
            return False
        if remaining > 8 * self.server.intake.max_body_bytes:
            self.close_connection = True
            return False
        while remaining > 0:
            got = self.rfile.read(min(_CHUNK, remaining))
            if not got:
                break
            remaining -= len(got)
        return True

    def _decompress(self, body: bytes, limit: int) -> bytes:
        coding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if coding == "identity":
            return body
        if coding not in ("gzip", "deflate"):
            raise _Rejected(415, _INVALID_ARGUMENT, f"unsupported Content-Encoding {coding!r}; "
                            "use gzip or none")
        # bounded inflate: a small gzip bomb must not allocate gigabytes
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if coding == "gzip" else 0))
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise _Rejected(400, _INVALID_ARGUMENT, f"bad {coding} body: {exc}") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise _Rejected(413, _RESOURCE_EXHAUSTED,
                            f"decompressed body exceeds the limit of {limit} bytes")
        if not inflater.eof:
            raise _Rejected(400, _INVALID_ARGUMENT, f"truncated {coding} body")
        return data

    # -- answers -----------------------------------------------------------------------

    def _send_status(self, status: int, code: int, message: str, encoding: str, *,
                     close: bool, extra: dict[str, str] | None = None) -> None:
        if encoding == "protobuf":
            from google.rpc.status_pb2 import Status

            body = Status(code=code, message=message).SerializeToString()
            ctype = "application/x-protobuf"
        else:
            body = json.dumps({"code": code, "message": message}).encode()
            ctype = "application/json"
        self._send(status, body, ctype, close=close, extra=extra)

    def _send(self, status: int, body: bytes, ctype: str, *, close: bool = False,
              extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # access lines would flood stderr; rejections are logged where they happen

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        text = format % args
        if "timed out" in text:
            return  # an idle keep-alive connection expiring is normal
        log.warning("otlp.http_bad_request", peer=_peer(self.client_address), error=text)


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)
