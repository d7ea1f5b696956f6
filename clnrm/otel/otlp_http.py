"""OTLP/HTTP transport of the receiver: ``POST /v1/traces``, protobuf or JSON.

Answers as the OTLP/HTTP spec says, so SDK exporters retry or give up
correctly: 200 with an ``ExportTraceServiceResponse`` in the request's
encoding; 400 (malformed) and 413 (over the size limit) with a
``google.rpc.Status`` body; 411 for a POST with neither ``Content-Length`` nor
chunked framing; 415 for other content types or encodings; 404 for other
paths; 405 for other methods; 408 when a request is not complete by its
deadline.  A bad request never reaches a traceback: every rejection is one
structured log line (``clnrm.otel``) and the connection stays usable whenever
the body could be read to its end.

Why not ``http.server``: it runs one thread per connection with a per-read
timeout, so every client that trickles bytes holds a thread for as long as it
likes (600 slowloris connections held 600 threads), and its default listen
backlog of 5 reset 176 of 1,000 concurrent exports.  Here one event-loop
thread reads every connection until a request is complete, with a deadline
for the head and one for the body (a trickle does not extend either), and
only complete requests reach the fixed pool of :attr:`HttpLimits.workers`
threads that inflate, decode and store them.  A connection waiting for its
bytes costs a socket and a buffer, never a thread, so a well-behaved exporter
is served at once however many hostile clients are connected.  Above
:attr:`HttpLimits.max_connections` the server stops accepting and new
connections wait in the kernel's listen backlog, which is sized for a burst of
that many.  Bodies waiting to be read or decoded share one budget of
:attr:`HttpLimits.max_buffered_bytes`: a request that would exceed it gets 503 with
``Retry-After`` (OTLP exporters retry 503), so hostile clients cannot make the
receiver hold 1,024 bodies of 8 MiB at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import re
import socket
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final, Literal, Protocol, TypeAlias
from urllib.parse import urlsplit

import structlog

from clnrm.otel.decode import OtlpDecodeError, spans_from_json, spans_from_protobuf
from clnrm.otel.span import Span

log = structlog.get_logger("clnrm.otel")

TRACES_PATH: Final = "/v1/traces"
SERVER_NAME: Final = "clnrm-otlp"
_ENCODINGS: Final = {"application/x-protobuf": "protobuf", "application/protobuf": "protobuf",
                     "application/json": "json"}
# hex digits only: int(x, 16) also takes a sign, "0x", "_" and spaces ("-1" read to the end)
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_HEADERS: Final = 100
_DRAIN_FACTOR: Final = 8  # a refused body up to this multiple of the limit is read, not cut
# google.rpc.Code numbers carried in the error bodies
_INVALID_ARGUMENT: Final = 3
_NOT_FOUND: Final = 5
_RESOURCE_EXHAUSTED: Final = 8
_UNIMPLEMENTED: Final = 12
_INTERNAL: Final = 13
_UNAVAILABLE: Final = 14
_DEADLINE_EXCEEDED: Final = 4
_LINGER_SECONDS: Final = 2.0
_LINGER_BYTES: Final = 1 << 20
_After: TypeAlias = Literal["keep", "linger", "close"]


@dataclass(frozen=True)
class HttpLimits:
    """What one OTLP/HTTP listener grants its clients (defaults are what runs use).

    ``header_timeout`` bounds the request line and headers, counted from the
    connection's accept (or, on a keep-alive connection, from the first byte
    of the next request); ``body_timeout`` bounds the body from the end of the
    head (8 MB in 30 s is 270 KB/s, far below any local network);
    ``idle_timeout`` closes a keep-alive connection with no new request.
    Each is a deadline for the whole phase: a client trickling one byte at a
    time does not extend it.  ``max_buffered_bytes`` bounds the bodies held at
    once (being read, or queued for the decode workers) across all connections;
    past it a request gets 503 with ``Retry-After: 1``, which exporters retry.
    """

    workers: int = 4
    max_connections: int = 1024
    backlog: int = 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_buffered_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if min(self.workers, self.max_connections, self.backlog, self.max_header_bytes,
               self.max_buffered_bytes) <= 0:
            raise ValueError("HTTP limits must be positive")
        if min(self.header_timeout, self.body_timeout, self.idle_timeout) <= 0:
            raise ValueError("HTTP timeouts must be positive")


class SpanIntake(Protocol):
    """What the transport hands its results to (the :class:`OtlpReceiver`)."""

    max_body_bytes: int

    def accept(self, spans: list[Span], *, transport: str) -> None: ...

    def reject(self, *, transport: str, status: str, reason: str, peer: str,
               size: int | None) -> None: ...


class _Rejected(Exception):
    """Ends one request with an error answer; ``close`` drops an unreadable connection."""

    def __init__(self, status: int, code: int, reason: str, *, close: bool = False,
                 retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.close = close
        self.retry_after = retry_after


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.header("connection").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def encoding(self) -> str | None:
        return _ENCODINGS.get(self.header("content-type").split(";", 1)[0].strip().lower())


class OtlpHttpServer:
    """One listening socket, its event-loop thread and its worker pool.

    Binding happens in the constructor (so the caller sees ``OSError`` at once);
    :meth:`start` serves, :meth:`close` stops accepting, drops every open
    connection and ends both threads in well under a second.
    """

    def __init__(self, address: tuple[str, int], intake: SpanIntake,
                 limits: HttpLimits | None = None) -> None:
        self.intake = intake
        self.limits = limits or HttpLimits()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind past TIME_WAIT
            sock.bind(address)
            sock.listen(self.limits.backlog)  # the kernel caps it at net.core.somaxconn
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._pool = ThreadPoolExecutor(self.limits.workers,
                                        thread_name_prefix=f"clnrm-otlp-http-{self.port}-worker")
        self._main: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"clnrm-otlp-http-{self.port}",
                                        daemon=True)
        self._emfile_logged = False
        self._buffered = 0  # body bytes held now; touched only on the event loop thread

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving: cancel every connection, join the loop thread, drop queued work."""
        if self._thread.is_alive():
            def cancel() -> None:
                if self._main is not None:
                    self._main.cancel()
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(cancel)
            self._thread.join(timeout=1.0)
        elif not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sock.close()

    # -- event loop ------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._main = self._loop.create_task(self._serve())
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._main)
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.limits.max_connections)
        connections: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            connections.discard(task)
            slots.release()

        try:
            while True:
                await slots.acquire()  # at the cap, new clients wait in the listen backlog
                try:
                    conn, addr = await loop.sock_accept(self._sock)
                except OSError as exc:
                    slots.release()
                    await self._accept_failed(exc)
                    continue
                task = loop.create_task(self._connection(conn, addr))
                connections.add(task)
                task.add_done_callback(done)
        finally:
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            if not self._emfile_logged:  # out of descriptors: retry, the backlog holds clients
                self._emfile_logged = True
                log.warning("otlp.http_accept_failed", error=str(exc),
                            open_connections_cap=self.limits.max_connections)
            await asyncio.sleep(0.1)

    async def _connection(self, conn: socket.socket, addr: Any) -> None:
        peer = _peer(addr)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            reader, writer = await asyncio.open_connection(
                sock=conn, limit=self.limits.max_header_bytes)
        except OSError:
            conn.close()
            return
        try:
            first = True
            while (after := await self._exchange(reader, writer, peer, first=first)) == "keep":
                first = False
            if after == "linger":
                await _linger(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except Exception as exc:  # a bug must drop one connection, never the server
            log.warning("otlp.internal_error", transport="http", peer=peer,
                        error=f"{type(exc).__name__}: {exc}")
        finally:
            writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        peer: str, *, first: bool) -> _After:
        """Serve one request; say whether the connection may carry another."""
        limits = self.limits
        loop = asyncio.get_running_loop()
        waited = loop.time() + (limits.header_timeout if first else limits.idle_timeout)
        try:
            async with asyncio.timeout_at(waited):
                start = await reader.read(1)
        except TimeoutError:
            return "close"  # an idle connection expiring is normal
        if not start:
            return "close"
        request: _Request | None = None
        size: int | None = None
        phase = "head"
        held = [0]  # bytes of the shared body budget this request holds (see _reserve)
        try:
            async with asyncio.timeout(limits.header_timeout):
                request = await self._read_head(start, reader)
            framing = _framing(request)
            route = self._route(request, framing)
            if request.header("expect").lower() == "100-continue" and request.version != \
                    "HTTP/1.0":
                if route is not None:  # the client waits for our word: refuse without a body
                    route.close = True
                    raise route
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            phase = "body"
            async with asyncio.timeout(limits.body_timeout):
                if route is None and framing is not None:
                    route = self._reserve(framing, held)
                if route is not None:
                    await self._discard(reader, framing, route)
                    raise route
                body = await self._read_body(reader, framing, held)
            size = len(body)
            assert request.encoding is not None  # _route refused the others
            await loop.run_in_executor(self._pool, self._ingest, body, request)
        except _Rejected as rej:
            self.intake.reject(transport="http", status=str(rej.status), reason=rej.reason,
                               peer=peer, size=size)
            close = rej.close or request is None or not request.keep_alive
            await self._send_status(writer, request, rej.status, rej.code, rej.reason,
                                    close=close, retry_after=rej.retry_after)
            return "linger" if close else "keep"
        except TimeoutError:
            limit = limits.header_timeout if phase == "head" else limits.body_timeout
            reason = f"request {phase} not complete within {limit:g} s"
            self.intake.reject(transport="http", status="408", reason=reason, peer=peer,
                               size=None)
            await self._send_status(writer, request, 408, _DEADLINE_EXCEEDED, reason, close=True)
            return "linger"
        finally:
            self._buffered -= held[0]
        if request.encoding == "json":
            await self._send(writer, request, 200, b"{}", "application/json")
        else:  # empty ExportTraceServiceResponse
            await self._send(writer, request, 200, b"", "application/x-protobuf")
        return "keep" if request.keep_alive else "linger"

    # -- request head ----------------------------------------------------------------

    async def _read_head(self, start: bytes, reader: asyncio.StreamReader) -> _Request:
        budget = self.limits.max_header_bytes
        lines: list[bytes] = []
        line = start + await _readline(reader)
        while True:
            budget -= len(line)
            if budget < 0 or len(lines) > _MAX_HEADERS:
                raise _Rejected(431, _INVALID_ARGUMENT, "request head too large", close=True)
            if not line.endswith(b"\n"):
                raise asyncio.IncompleteReadError(line, None)  # closed mid-head
            if line in (b"\r\n", b"\n"):
                if lines:
                    break
                line = await _readline(reader)  # RFC 9112: ignore a CRLF before the request line
                continue
            lines.append(line)
            line = await _readline(reader)
        parts = lines[0].decode("latin-1").split()
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Rejected(400, _INVALID_ARGUMENT,
                            f"bad request line {lines[0][:100].decode('latin-1')!r}", close=True)
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, colon, value = raw.decode("latin-1").partition(":")
            key = name.lower()
            if not colon or not name or name != name.strip():
                raise _Rejected(400, _INVALID_ARGUMENT, f"bad header line {raw[:100]!r}",
                                close=True)
            value = value.strip()
            if key in headers and key not in ("content-length", "host"):
                headers[key] += ", " + value
            elif key in headers and headers[key] != value:
                raise _Rejected(400, _INVALID_ARGUMENT, f"conflicting {name} headers", close=True)
            else:
                headers[key] = value
        return _Request(parts[0], parts[1], parts[2], headers)

    def _route(self, request: _Request, framing: int | None) -> _Rejected | None:
        """The rejection this request gets before its body is read, if any."""
        path = urlsplit(request.target).path
        if request.method != "POST":
            if path == TRACES_PATH:
                return _Rejected(405, _UNIMPLEMENTED,
                                 f"{request.method} not allowed on {TRACES_PATH}; OTLP uses POST")
            return _Rejected(404, _NOT_FOUND, f"no OTLP endpoint at {request.target!r}")
        if path != TRACES_PATH:
            return _Rejected(404, _NOT_FOUND, f"no OTLP endpoint at {request.target!r} "
                             f"(traces go to {TRACES_PATH})")
        if request.encoding is None:
            return _Rejected(415, _INVALID_ARGUMENT,
                             f"unsupported Content-Type {request.headers.get('content-type')!r}; "
                             "use application/x-protobuf or application/json")
        limit = self.intake.max_body_bytes
        if framing is not None and framing > limit:
            return _Rejected(413, _RESOURCE_EXHAUSTED,
                             f"body of {framing} bytes exceeds the limit of {limit} bytes")
        return None

    # -- body ------------------------------------------------------------------------

    def _reserve(self, size: int, held: list[int]) -> _Rejected | None:
        """Take ``size`` bytes of the shared body budget into ``held``, or say why not
        (503, which exporters retry); the caller gives ``held[0]`` back when done."""
        cap = self.limits.max_buffered_bytes
        if size > 0 and self._buffered + size > cap:
            return _Rejected(503, _UNAVAILABLE,
                             f"receiver busy: {self._buffered} of {cap} body bytes buffered; "
                             "retry", retry_after=1)
        self._buffered += size
        held[0] += size
        return None

    async def _read_body(self, reader: asyncio.StreamReader, framing: int | None,
                         held: list[int]) -> bytes:
        if framing is not None:
            return await reader.readexactly(framing) if framing else b""
        limit = self.intake.max_body_bytes
        parts: list[bytes] = []
        total = 0
        while True:
            size = await _chunk_header(reader)
            if size == 0:
                while (await _readline(reader)) not in (b"\r\n", b"\n"):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                raise _Rejected(413, _RESOURCE_EXHAUSTED,
                                f"chunked body exceeds the limit of {limit} bytes", close=True)
            busy = self._reserve(size, held)
            if busy is not None:
                busy.close = True  # the rest of the body is not read
                raise busy
            parts.append(await reader.readexactly(size))
            if await _readline(reader) not in (b"\r\n", b"\n"):
                raise _Rejected(400, _INVALID_ARGUMENT, "chunk data longer than its size",
                                close=True)

    async def _discard(self, reader: asyncio.StreamReader, framing: int | None,
                       rejected: _Rejected) -> None:
        """Read and drop a refused body so the connection stays usable, if that is cheap."""
        if framing is None or framing > _DRAIN_FACTOR * self.intake.max_body_bytes:
            rejected.close = True
            return
        remaining = framing
        while remaining > 0:
            got = await reader.read(min(remaining, 1 << 16))
            if not got:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(got)

    def _ingest(self, body: bytes, request: _Request) -> None:
        """Inflate, decode and store one body (on a worker thread)."""
        limit = self.intake.max_body_bytes
        body = _decompress(body, request.header("content-encoding"), limit)
        try:
            spans = spans_from_json(body) if request.encoding == "json" else \
                spans_from_protobuf(body)
        except OtlpDecodeError as exc:
            raise _Rejected(400, _INVALID_ARGUMENT, str(exc)) from None
        except Exception as exc:  # a bug must answer, not drop the exporter's connection
            log.warning("otlp.internal_error", transport="http",
                        error=f"{type(exc).__name__}: {exc}")
            raise _Rejected(500, _INTERNAL, "internal error in clnrm's receiver",
                            close=True) from None
        self.intake.accept(spans, transport="http")

    # -- answers ---------------------------------------------------------------------

    async def _send_status(self, writer: asyncio.StreamWriter, request: _Request | None,
                           status: int, code: int, message: str, *, close: bool,
                           retry_after: int | None = None) -> None:
        extra = {"Allow": "POST"} if status == 405 else {}
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        if (request.encoding if request else None) == "protobuf":
            from google.rpc.status_pb2 import Status

            body = Status(code=code, message=message).SerializeToString()
            ctype = "application/x-protobuf"
        else:
            body = json.dumps({"code": code, "message": message}).encode()
            ctype = "application/json"
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await self._send(writer, request, status, body, ctype, close=close, extra=extra)

    async def _send(self, writer: asyncio.StreamWriter, request: _Request | None, status: int,
                    body: bytes, ctype: str, *, close: bool = False,
                    extra: dict[str, str] | None = None) -> None:
        reason = HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {SERVER_NAME}",
                 f"Date: {formatdate(time.time(), usegmt=True)}", f"Content-Type: {ctype}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{key}: {value}" for key, value in (extra or {}).items()]
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head if request is not None and request.method == "HEAD" else head + body)
        async with asyncio.timeout(self.limits.body_timeout):  # a client that never reads
            await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and drop what the client still sends, briefly (as nginx's lingering close).

    Closing a socket with unread input makes the kernel send a reset, which can
    destroy the answer we just wrote before the client reads it (a client still
    uploading a refused body would see a broken pipe instead of its 413).
    """
    with contextlib.suppress(OSError, TimeoutError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(_LINGER_SECONDS):
            dropped = 0
            while dropped < _LINGER_BYTES:
                got = await reader.read(1 << 16)
                if not got:
                    return
                dropped += len(got)


def _framing(request: _Request) -> int | None:
    """The body's length, or None for chunked; refuses what cannot be framed safely."""
    coding = request.header("transfer-encoding").strip().lower()
    if coding:
        if coding != "chunked":
            raise _Rejected(400, _INVALID_ARGUMENT,
                            f"unsupported Transfer-Encoding {coding!r}", close=True)
        if "content-length" in request.headers:  # RFC 9112 6.3: a smuggling attempt, not a body
            raise _Rejected(400, _INVALID_ARGUMENT,
                            "both Transfer-Encoding and Content-Length", close=True)
        return None
    raw = request.headers.get("content-length")
    if raw is None:
        if request.method == "POST":
            raise _Rejected(411, _INVALID_ARGUMENT,
                            "POST without Content-Length or chunked Transfer-Encoding",
                            close=True)
        return 0
    if not raw.isdigit() or not raw.isascii():
        raise _Rejected(400, _INVALID_ARGUMENT, f"bad Content-Length {raw!r}", close=True)
    return int(raw)


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # longer than the reader's limit (the header budget)
        raise _Rejected(431, _INVALID_ARGUMENT, "request head too large", close=True) from None


async def _chunk_header(reader: asyncio.StreamReader) -> int:
    line = await _readline(reader)
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)
    digits = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
    if not _CHUNK_SIZE.fullmatch(digits):
        raise _Rejected(400, _INVALID_ARGUMENT,
                        f"bad chunk size {digits[:20].decode('latin-1')!r}", close=True)
    return int(digits, 16)


def _decompress(body: bytes, header: str, limit: int) -> bytes:
    coding = (header or "identity").strip().lower()
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


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)
