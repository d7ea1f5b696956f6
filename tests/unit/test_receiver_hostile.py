"""The OTLP/HTTP receiver against hostile and careless clients, over real loopback sockets.

One test per hardening class of issue 18: chunk sizes that are not hex digits,
chunked bodies over the limit, POSTs without framing, a burst of 1,000
concurrent exports, slowloris connections that must neither hold threads nor
keep out a valid exporter, and deadlines that a trickle does not extend.
No wall-clock asserts: every bound is a count (threads, bytes, spans), and
waits are generous upper limits that only a broken receiver reaches.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from clnrm.otel.encode import request_from_spans
from clnrm.otel.otlp_http import HttpLimits
from clnrm.otel.receiver import OtlpReceiver
from clnrm.otel.span import Span

TRACE = "0af7651916cd43dd8448eb211c80319c"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LIMIT = 64 * 1024
HEAD = (b"POST /v1/traces HTTP/1.1\r\nHost: receiver\r\n"
        b"Content-Type: application/x-protobuf\r\n")


def payload(n: int = 1, name: str = "op") -> bytes:
    spans = [Span(name=f"{name}{i}", trace_id=TRACE, span_id=f"{i + 1:016x}",
                  resource={"service.name": "api"}) for i in range(n)]
    return request_from_spans(spans).SerializeToString()


def address(rcv: OtlpReceiver) -> tuple[str, int]:
    host, port = rcv.http_endpoint.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and raw bytes of one answer (read to its Content-Length or to EOF)."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            break
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        got = sock.recv(65536)
        if not got:
            break
        body += got
    return int(head.split()[1]), data


def exchange(rcv: OtlpReceiver, data: bytes, *, shut_write: bool = False) -> tuple[int, bytes]:
    with socket.create_connection(address(rcv), timeout=10) as sock:
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return read_answer(sock)


def valid_export(rcv: OtlpReceiver, name: str = "ok") -> int:
    body = payload(3, name)
    status, _ = exchange(rcv, HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return status


def http_threads() -> int:
    return sum(t.name.startswith("clnrm-otlp-http") for t in threading.enumerate())


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(max_body_bytes=LIMIT) as rcv:
        yield rcv


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    """The burst needs ~2,000 descriptors in this one process (both ends of 1,000 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


# -- chunk sizes ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [b"-1", b"+10", b"0x10", b"1_0", b"", b"zz", b"1" * 17])
def test_a_chunk_size_that_is_not_hex_digits_is_400_and_nothing_more_is_read(
        receiver: OtlpReceiver, size: bytes) -> None:
    with socket.create_connection(address(receiver), timeout=10) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n" +
                     b"\x00" * 4096)
        # the old receiver took "-1" as read-to-the-end and answered only at EOF
        status, _ = read_answer(sock)
        assert status == 400
        sent = 0
        with pytest.raises(OSError):  # the receiver closed: the upload cannot go on
            while sent < 256 << 20:
                sock.sendall(b"\x00" * (1 << 20))
                sent += 1 << 20
        # kernel buffers and the receiver's 1 MiB lingering close, never the whole upload
        assert sent <= 32 << 20
    assert receiver.span_count == 0
    assert valid_export(receiver) == 200


# -- chunked bodies over the limit -----------------------------------------------------


def test_a_chunk_announced_over_the_limit_is_413_before_its_data(
        receiver: OtlpReceiver) -> None:
    status, _ = exchange(receiver, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" +
                         f"{LIMIT + 1:x}\r\n".encode())
    assert status == 413 and receiver.span_count == 0


def test_chunks_adding_up_over_the_limit_are_413(receiver: OtlpReceiver) -> None:
    chunk = b"2000\r\n" + b"\x00" * 0x2000 + b"\r\n"
    status, answer = exchange(receiver, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" +
                              chunk * (LIMIT // 0x2000 + 1) + b"0\r\n\r\n")
    assert status == 413 and b"chunked body exceeds the limit of 65536 bytes" in answer
    assert receiver.span_count == 0 and receiver.rejected_count == 1


# -- POST without framing --------------------------------------------------------------


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
def test_a_post_without_content_length_or_chunks_is_411_and_nothing_is_stored(
        receiver: OtlpReceiver, version: bytes) -> None:
    head = HEAD.replace(b"HTTP/1.1", version)
    status, answer = exchange(receiver, head + b"\r\n" + payload(5), shut_write=True)
    assert status == 411 and b"Content-Length" in answer
    assert receiver.span_count == 0 and receiver.rejected_count == 1
    assert valid_export(receiver) == 200


def test_an_http_1_0_post_with_content_length_is_stored(receiver: OtlpReceiver) -> None:
    body = payload(5)
    status, _ = exchange(receiver, HEAD.replace(b"HTTP/1.1", b"HTTP/1.0") +
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert status == 200 and receiver.span_count == 5


# -- framing an exporter relies on, and framing a smuggler tries ---------------------------


def test_expect_100_continue_gets_its_interim_answer_then_200(receiver: OtlpReceiver) -> None:
    body = payload(2)
    with socket.create_connection(address(receiver), timeout=10) as sock:
        sock.sendall(HEAD + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
                     .encode())
        assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"  # curl waits for this
        sock.sendall(body)
        assert read_answer(sock)[0] == 200
    assert receiver.span_count == 2


def test_pipelined_requests_on_one_connection_are_answered_in_order(
        receiver: OtlpReceiver) -> None:
    one, two = payload(1, "a"), payload(2, "b")
    data = b"".join(HEAD + f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in (one, two))
    with socket.create_connection(address(receiver), timeout=10) as sock:
        sock.sendall(data)
        # both answers may arrive in one segment: read until two are complete, then parse
        got = b""
        while got.count(b"HTTP/1.1 ") < 2 or not _complete(got, 2):
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
    statuses = [line.split()[1] for line in got.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert statuses == [b"200", b"200"], got
    assert [s.name for s in receiver.spans()] == ["a0", "b0", "b1"]


def _complete(data: bytes, answers: int) -> bool:
    """True when ``data`` holds ``answers`` whole HTTP answers (head and Content-Length)."""
    rest = data
    for _ in range(answers):
        head, sep, body = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        if len(body) < length:
            return False
        rest = body[length:]
    return True


@pytest.mark.parametrize(("head", "status"), [
    (HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    (HEAD + b"Content-Length: -5\r\n\r\n", 400),
    (HEAD + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    (HEAD + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    (HEAD + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
    (b"POST /v1/traces HTTP/2.0\r\n\r\n", 400),
])
def test_ambiguous_or_oversized_heads_are_refused_and_the_connection_closed(
        receiver: OtlpReceiver, head: bytes, status: int) -> None:
    with socket.create_connection(address(receiver), timeout=10) as sock:
        sock.sendall(head)
        assert read_answer(sock)[0] == status
        assert sock.recv(1) == b""  # closed: what follows cannot be framed safely
    assert receiver.span_count == 0


# -- load: a burst of concurrent exports ---------------------------------------------------


def burst(rcv: OtlpReceiver, count: int) -> list[int | str]:
    """``count`` exports whose connections are all open at once; status or error per export.

    Non-blocking sockets on one selector: every connect is issued before any
    answer is read, which is harsher than a thread pool (whose size caps the
    concurrency) and needs no threads.
    """
    sel = selectors.DefaultSelector()
    results: dict[int, int | str] = {}
    for i in range(count):
        body = payload(1, f"b{i}-")
        framing = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        request = HEAD + framing.encode() + body
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(address(rcv))
        assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code)
        sel.register(sock, selectors.EVENT_WRITE, [i, request, b""])
    deadline = time.monotonic() + 120
    while len(results) < count and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1):
            sock, state = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            try:
                if events & selectors.EVENT_WRITE:
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        raise OSError(error, errno.errorcode.get(error, "?"))
                    sock.sendall(state[1])  # a few hundred bytes fit any send buffer
                    sel.modify(sock, selectors.EVENT_READ, state)
                    continue
                got = sock.recv(65536)
                state[2] += got
                if got:
                    continue
                results[state[0]] = int(state[2].split()[1])
            except (OSError, IndexError, ValueError) as exc:
                results[state[0]] = type(exc).__name__
            sel.unregister(sock)
            sock.close()
    for key in list(sel.get_map().values()):
        results.setdefault(key.data[0], "no answer")
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    return [results[i] for i in range(count)]


def test_a_thousand_concurrent_exports_are_all_answered_200_and_stored(
        receiver: OtlpReceiver) -> None:
    statuses = burst(receiver, 1000)
    failed = {s for s in statuses if s != 200}
    assert not failed, f"{sum(s != 200 for s in statuses)} of 1000 failed: {failed}"
    assert receiver.span_count == 1000
    assert len({s.name for s in receiver.spans()}) == 1000


# -- slowloris ---------------------------------------------------------------------------


def test_a_valid_export_is_served_while_hundreds_of_slowloris_clients_hold_no_threads() -> None:
    # deadlines far beyond the test: every hostile connection is still open at its end
    limits = HttpLimits(workers=4, header_timeout=300, body_timeout=300)
    before = threading.active_count()
    hostile: list[socket.socket] = []
    with OtlpReceiver(max_body_bytes=LIMIT, http_limits=limits) as rcv:
        try:
            for i in range(300):
                sock = socket.create_connection(address(rcv), timeout=10)
                hostile.append(sock)
                if i % 3 == 0:
                    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # head never ends
                elif i % 3 == 1:
                    sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n\x0a")  # body never ends
                # else: connected and silent
            assert valid_export(rcv) == 200  # the 301st connection is not kept waiting
            assert rcv.wait_for(3, 10)
            # one event-loop thread and the fixed pool, however many connections are open
            assert http_threads() <= limits.workers + 1
            # whatever else the receiver runs (gRPC's pool of 4 and its poller) is fixed too
            assert threading.active_count() <= before + limits.workers + 1 + 4 + 4
            for sock in hostile[:30]:  # none of them was answered or dropped yet
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        finally:
            for sock in hostile:
                sock.close()


def trickle_until_closed(socks: list[socket.socket], byte: bytes,
                         within: float) -> dict[int, bytes]:
    """Send one byte to each open socket every 50 ms; what each got when it was closed."""
    got: dict[int, bytes] = {i: b"" for i in range(len(socks))}
    open_ = set(range(len(socks)))
    deadline = time.monotonic() + within
    while open_ and time.monotonic() < deadline:
        for i in list(open_):
            sock = socks[i]
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        open_.discard(i)
                        break
                    got[i] += data
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
                continue
            if i in open_:
                try:
                    sock.send(byte)
                except OSError:
                    open_.discard(i)
        time.sleep(0.05)
    assert not open_, f"{len(open_)} trickling connections still open after {within} s"
    return got


def test_trickling_clients_are_cut_at_the_head_and_body_deadlines() -> None:
    limits = HttpLimits(header_timeout=0.5, body_timeout=0.5, idle_timeout=0.5)
    with OtlpReceiver(max_body_bytes=LIMIT, http_limits=limits) as rcv:
        heads, bodies, silent = [], [], []
        for _ in range(5):
            sock = socket.create_connection(address(rcv), timeout=10)
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nX-Trickle: ")
            heads.append(sock)
            sock = socket.create_connection(address(rcv), timeout=10)
            sock.sendall(HEAD + b"Content-Length: 100000\r\n\r\n")
            bodies.append(sock)
            silent.append(socket.create_connection(address(rcv), timeout=10))
        for sock in heads + bodies + silent:
            sock.setblocking(False)
        # each trickled byte came well within any per-read timeout; only a deadline ends them
        answers = trickle_until_closed(heads + bodies, b"a", within=30)
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values()), answers
        assert b"request head not complete within 0.5 s" in answers[0]
        assert b"request body not complete within 0.5 s" in answers[len(heads)]
        assert trickle_until_closed(silent, b"", within=30) == {i: b"" for i in range(5)}
        # an exporter's idle keep-alive connection is closed the same way, silently
        with socket.create_connection(address(rcv), timeout=10) as sock:
            body = payload(2)
            sock.sendall(HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            assert read_answer(sock)[0] == 200
            sock.settimeout(30)
            assert sock.recv(1) == b""
        assert rcv.span_count == 2
        for sock in heads + bodies + silent:
            sock.close()


# -- gRPC ------------------------------------------------------------------------------


def test_concurrent_grpc_exports_are_all_accepted_on_a_bounded_pool(
        receiver: OtlpReceiver) -> None:
    with grpc.insecure_channel(receiver.grpc_endpoint.removeprefix("http://")) as channel:
        export = channel.unary_unary(EXPORT)
        assert export(payload(1, "warm"), timeout=30) == b""
        before = threading.active_count()
        calls = [export.future(payload(1, f"g{i}-"), timeout=60) for i in range(200)]
        peak = before
        while not all(call.done() for call in calls):
            peak = max(peak, threading.active_count())
            time.sleep(0.005)
        assert all(call.result() == b"" for call in calls)
    assert receiver.span_count == 201
    assert peak <= before + 4  # at most the rest of the pool of 4 starts


def test_grpc_export_is_served_while_hundreds_of_stalled_connections_are_open(
        receiver: OtlpReceiver) -> None:
    host, port = receiver.grpc_endpoint.removeprefix("http://").rsplit(":", 1)
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        export = channel.unary_unary(EXPORT)
        assert export(payload(1, "warm"), timeout=30) == b""
        before = threading.active_count()
        stalled = [socket.create_connection((host, int(port)), timeout=10) for _ in range(300)]
        try:
            for sock in stalled:
                sock.sendall(b"PRI * HTTP/2.0\r\n")  # half an HTTP/2 preface, then nothing
            assert export(payload(2, "ok"), timeout=30) == b""
            assert threading.active_count() <= before + 4  # gRPC core polls; no thread each
        finally:
            for sock in stalled:
                sock.close()
    assert receiver.span_count == 3


def test_a_grpc_connection_that_never_finishes_its_preface_is_cut(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import clnrm.otel.receiver as receiver_module

    monkeypatch.setattr(receiver_module, "_GRPC_HANDSHAKE_MS", 500)  # default 10 s
    with OtlpReceiver() as rcv:
        host, port = rcv.grpc_endpoint.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n")
            while sock.recv(65536):  # the server's SETTINGS, then EOF (not our timeout)
                pass


# -- one memory budget for every body held at once ------------------------------------------


def test_bodies_over_the_shared_buffer_budget_get_a_retryable_503_until_room_is_free() -> None:
    """Clients that announce big bodies and trickle them cannot make the receiver hold
    1,024 x 8 MiB: past the shared budget a request is 503 with Retry-After, which OTLP
    exporters retry, and the same export is stored once the budget has room again."""
    export = payload(40, "big")
    limits = HttpLimits(max_buffered_bytes=len(export) + 100)
    with OtlpReceiver(max_body_bytes=LIMIT, http_limits=limits) as rcv:
        holder = socket.create_connection(address(rcv), timeout=10)
        try:
            holder.sendall(HEAD + f"Content-Length: {len(export)}\r\n\r\n".encode()
                           + export[:10])  # announced, mostly not sent: the budget is held
            server = rcv._http
            assert server is not None
            deadline = time.monotonic() + 60  # a hang guard, not a timing bound
            while server._buffered == 0:  # wait until the loop has taken the budget
                assert time.monotonic() < deadline, "the head was never read"
                time.sleep(0.01)
            request = HEAD + f"Content-Length: {len(export)}\r\n\r\n".encode() + export
            status, answer = exchange(rcv, request)
            assert status == 503 and b"Retry-After: 1" in answer, answer[:300]
            assert rcv.span_count == 0
            holder.sendall(export[10:])  # the holder finishes: its bytes are given back
            assert read_answer(holder)[0] == 200
            status, _ = exchange(rcv, request)
            assert status == 200 and rcv.span_count == 80
        finally:
            holder.close()


def test_a_chunked_body_over_the_shared_budget_is_503_and_gives_its_bytes_back() -> None:
    export = payload(40, "chunky")
    limits = HttpLimits(max_buffered_bytes=len(export) // 2)
    with OtlpReceiver(max_body_bytes=LIMIT, http_limits=limits) as rcv:
        half = len(export) // 2 + 1
        chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                          for part in (export[:half], export[half:])) + b"0\r\n\r\n"
        status, _ = exchange(rcv, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
        assert status == 503
        small = payload(2, "small")
        assert len(small) < len(export) // 2
        status, _ = exchange(rcv, HEAD + f"Content-Length: {len(small)}\r\n\r\n".encode()
                             + small)
        assert status == 200 and rcv.span_count == 2
