"""The open-loop load driver against a local HTTP server (clnrm.perf.load)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from clnrm.perf.load import LoadDriver, LoadRunResult, schedule


class Server:
    """A threaded HTTP/1.1 server on 127.0.0.1 whose behaviour a test can change."""

    def __init__(self) -> None:
        self.stall_until = 0.0  # monotonic time until which every answer waits
        self.delay_s = 0.0
        self.mode = "length"  # length | chunked | close
        self.headers: list[dict[str, str]] = []
        self.peers: set[int] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per answer

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.handle(self)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.headers.append({k.lower(): v for k, v in h.headers.items()})
            self.peers.add(h.client_address[1])
        wait = max(self.stall_until - time.monotonic(), 0.0) + self.delay_s
        if wait:
            time.sleep(wait)
        body = b'{"ok": true}'
        h.send_response(200 if h.path != "/missing" else 404)
        if self.mode == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            h.wfile.write(b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        elif self.mode == "close":
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            h.close_connection = True
        else:
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def at(delay_s: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(delay_s, action)
    timer.daemon = True
    timer.start()


def test_constant_schedule_is_evenly_spaced() -> None:
    offsets = schedule(50, 2)
    assert len(offsets) == 100
    assert offsets[:3] == [0, 0.02, 0.04] and offsets[-1] == pytest.approx(1.98)


def test_poisson_schedule_is_reproducible_from_its_seed() -> None:
    a = schedule(200, 10, seed=7, arrival="poisson")
    assert a == schedule(200, 10, seed=7, arrival="poisson")
    assert a != schedule(200, 10, seed=8, arrival="poisson")
    assert a == sorted(a) and a[0] > 0 and a[-1] < 10
    assert len(a) == pytest.approx(2000, rel=0.1)
    gaps = sorted(b - x for x, b in itertools.pairwise(a))
    assert gaps[len(gaps) // 2] == pytest.approx(0.005 * 0.693, rel=0.15)  # exponential median


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        schedule(0, 1)
    with pytest.raises(ValueError, match="arrival"):
        schedule(1, 1, arrival="bursty")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http://"):
        LoadDriver("https://example.invalid/", rate_rps=1, duration_s=1)


def test_a_server_stall_shows_in_corrected_latency_not_in_service_time(server: Server) -> None:
    """The coordinated-omission demonstration: one connection, a 1 s stall at 50 rps."""
    at(1.0, lambda: setattr(server, "stall_until", time.monotonic() + 1.0))
    result = LoadDriver(server.url(), rate_rps=50, duration_s=4, concurrency=1).run()
    assert result.sent == 200 and result.errors == 0 and result.status_counts == {"200": 200}
    assert result.latency is not None and result.service_time is not None
    # ~50 requests were due during the stall: their users waited up to a second
    assert result.latency.p99_ms >= 500, result.latency
    assert result.latency.max_ms >= 900
    # measured from the actual send, only the one request caught inside the stall is slow
    assert result.service_time.p99_ms < 200, result.service_time
    assert result.service_time.max_ms >= 900
    late = [r for r in result.requests if r.latency_ms and r.latency_ms > 100]
    assert 30 <= len(late) <= 70


def test_an_open_loop_keeps_its_rate_with_spare_connections(server: Server) -> None:
    server.delay_s = 0.05  # each answer takes 50 ms; 100 rps needs ~5 connections
    result = LoadDriver(server.url(), rate_rps=100, duration_s=2, concurrency=32).run()
    assert result.sent == 200 and result.completed == 200
    assert result.achieved_rps == pytest.approx(100, rel=0.1)
    # Spare connections: no request waits for a free one, so the corrected latency is
    # the service time (50 ms plus whatever a busy machine adds to both), not queueing.
    assert result.latency is not None and result.service_time is not None
    assert result.latency.p50_ms >= 49
    assert result.latency.p50_ms <= result.service_time.p50_ms + 25
    assert len(server.peers) <= 32  # connections are kept alive and reused


def test_keep_alive_uses_one_connection_when_concurrency_is_one(server: Server) -> None:
    LoadDriver(server.url(), rate_rps=100, duration_s=0.5, concurrency=1).run()
    assert len(server.peers) == 1


def test_chunked_and_connection_close_answers_are_read_completely(server: Server) -> None:
    for mode in ("chunked", "close"):
        server.mode = mode
        result = LoadDriver(server.url(), rate_rps=50, duration_s=0.4, concurrency=1).run()
        assert result.status_counts == {"200": 20} and result.errors == 0, mode


def test_status_codes_are_counted_not_errors(server: Server) -> None:
    result = LoadDriver(server.url("/missing"), rate_rps=50, duration_s=0.2).run()
    assert result.status_counts == {"404": 10} and result.errors == 0


def test_headers_and_traceparent_are_sent_with_every_request(server: Server) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    LoadDriver(("127.0.0.1", server.port, "/x?y=1"), rate_rps=20, duration_s=0.2,
               headers={"X-Test": "yes"}, traceparent=tp, method="POST", body=b"{}").run()
    assert len(server.headers) == 4
    assert all(h["traceparent"] == tp and h["x-test"] == "yes" for h in server.headers)
    assert all(h["content-length"] == "2" for h in server.headers)


def test_refused_connections_are_errors_not_exceptions() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = LoadDriver(("127.0.0.1", port, "/"), rate_rps=20, duration_s=0.25).run()
    assert result.sent == 5 and result.errors == 5 and result.completed == 0
    assert result.latency is None
    assert all(r.error and r.error.startswith("ConnectionRefusedError") for r in result.requests)


def test_a_request_over_the_timeout_is_an_error(server: Server) -> None:
    server.delay_s = 1.0
    result = LoadDriver(server.url(), rate_rps=10, duration_s=0.1, timeout_s=0.2).run()
    assert [r.error for r in result.requests] == ["timeout"]


def test_the_result_is_plain_data(server: Server) -> None:
    result = LoadDriver(server.url(), rate_rps=40, duration_s=0.25, seed=3,
                        arrival="poisson").run()
    again = LoadRunResult.model_validate_json(result.model_dump_json())
    assert again == result
    start, end = result.window
    assert end - start == pytest.approx(0.25e9, rel=0.01)
    assert [r.index for r in result.requests] == list(range(len(result.requests)))
