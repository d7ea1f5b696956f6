"""Readiness probes against a fake service: what each waits for, and how each failure reads."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clnrm.backends.base import LogStream, ServiceHandle, ServiceState
from clnrm.backends.local import LocalBackend
from clnrm.errors import ReadinessError
from clnrm.orchestration import (
    CommandCheck,
    HttpCheck,
    LogCheck,
    ProbeEnv,
    RunningCheck,
    SpanCheck,
    TcpCheck,
    await_ready,
    checks_for,
)
from clnrm.orchestration.readiness import StartAborted
from clnrm.otel.span import Span
from clnrm.plugins.base import ServiceSpec
from clnrm.results import ExecResult
from clnrm.scenario.model import ReadinessProbe


class FakeService(ServiceHandle):
    """A service whose output, exit and exec answers the test scripts."""

    def __init__(self, *, lines: Sequence[str] = (), exits_after: float | None = None,
                 exec_ok_after: float | None = None, stream: bool = False) -> None:
        self.name = "svc"
        self.lines = list(lines)
        self.born = time.monotonic()
        self.exits_after = exits_after
        self.exec_ok_after = exec_ok_after
        self.stream = stream
        self.execs = 0

    def _age(self) -> float:
        return time.monotonic() - self.born

    def state(self) -> ServiceState:
        if self.exits_after is not None and self._age() >= self.exits_after:
            return ServiceState(running=False, exit_code=3, status="exited")
        return ServiceState(running=True, status="running")

    def address(self) -> str | None:
        return "127.0.0.1"

    def exec(self, argv: list[str], *, timeout: float | None) -> ExecResult:
        self.execs += 1
        ok = self.exec_ok_after is not None and self._age() >= self.exec_ok_after
        return ExecResult(exit_code=0 if ok else 1, stderr="" if ok else "not yet")

    def logs(self, *, tail: int = 20) -> str:
        return "\n".join(self.lines[-tail:])

    def follow_logs(self) -> LogStream | None:
        if not self.stream:
            return None
        service = self

        class Stream(LogStream):
            closed = False

            def __iter__(self) -> Iterator[str]:
                sent = 0
                while not self.closed:
                    while sent < len(service.lines):
                        yield service.lines[sent]
                        sent += 1
                    time.sleep(0.005)

            def close(self) -> None:
                self.closed = True

        return Stream()


def later(seconds: float, action: object) -> None:
    threading.Timer(seconds, action).start()  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- each probe ------------------------------------------------------------------------


def test_tcp_probe_passes_the_moment_the_port_opens() -> None:
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen() -> None:
        server.bind(("127.0.0.1", port))
        server.listen()

    later(0.3, listen)
    began = time.monotonic()
    try:
        await_ready(FakeService(), [TcpCheck(port=port)], timeout=5)
        assert 0.3 <= time.monotonic() - began < 1.0  # no fixed interval: backs off to 0.1 s
    finally:
        server.close()


def test_http_probe_wants_2xx_or_the_given_status() -> None:
    codes = {"/health": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(codes.get(self.path, 200))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        await_ready(FakeService(), [HttpCheck(path="/", port=port)], timeout=2)
        await_ready(FakeService(), [HttpCheck(path="/health", port=port, status=503)], timeout=2)
        with pytest.raises(ReadinessError) as err:
            await_ready(FakeService(), [HttpCheck(path="/health", port=port, timeout=0.3)],
                        timeout=5)
        assert "http probe failed: http GET :" in str(err.value)
        assert "/health answers 2xx/3xx did not hold within 0.3 s (the probe timeout)" in str(
            err.value)
        assert "last seen: HTTP 503; container status: running" in str(err.value)
    finally:
        server.shutdown()
        server.server_close()


def test_command_probe_retries_until_it_exits_zero() -> None:
    service = FakeService(exec_ok_after=0.2)
    await_ready(service, [CommandCheck(cmd=["check"], interval=1.0)], timeout=5)
    assert service.execs >= 3  # tried at once and then with growing pauses, not every 1 s


def test_log_probe_is_woken_by_the_line_when_the_backend_streams() -> None:
    service = FakeService(lines=["booting"], stream=True)
    later(0.2, lambda: service.lines.append("database system is ready to accept connections"))
    began = time.monotonic()
    await_ready(service, [LogCheck(pattern=r"ready to accept")], timeout=5)
    assert time.monotonic() - began < 1.0


def test_log_probe_reads_logs_when_the_backend_cannot_stream() -> None:
    service = FakeService(lines=["booting"])
    later(0.1, lambda: service.lines.append("listening on :80"))
    await_ready(service, [LogCheck(pattern="listening")], timeout=5)


class FakeReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.cond = threading.Condition()

    def add(self, name: str) -> None:
        with self.cond:
            self.spans.append(Span(name=name, trace_id="t", span_id=str(len(self.spans))))
            self.cond.notify_all()

    def wait_for(self, until: object, timeout: float | None) -> bool:
        assert callable(until)
        with self.cond:
            return self.cond.wait_for(lambda: until(self.spans), timeout) and until(self.spans)


def test_span_probe_is_ready_when_the_named_span_arrives() -> None:
    receiver = FakeReceiver()
    receiver.add("unrelated")
    later(0.2, lambda: receiver.add("api.ready"))
    await_ready(FakeService(), [SpanCheck(name="api.ready")], timeout=5,
                env=ProbeEnv(spans=receiver))
    with pytest.raises(ReadinessError, match=r"2 span\(s\) arrived, none named 'db\.ready'"):
        await_ready(FakeService(), [SpanCheck(name="db.ready", timeout=0.2)], timeout=5,
                    env=ProbeEnv(spans=receiver))


# -- failures --------------------------------------------------------------------------


def test_service_that_exits_while_waiting_is_reported_with_its_logs() -> None:
    service = FakeService(lines=["config file missing", "fatal: giving up"], exits_after=0.2)
    with pytest.raises(ReadinessError) as err:
        await_ready(service, [TcpCheck(port=free_port())], timeout=5)
    text = str(err.value)
    assert "service 'svc' exited with code 3 before it was ready" in text
    assert "(waiting for: TCP port" in text and "Hint:" in text
    assert err.value.service == "svc" and "fatal: giving up" in err.value.logs


def test_start_timeout_names_probe_limit_status_and_last_observation() -> None:
    service = FakeService(lines=["still warming up"])
    with pytest.raises(ReadinessError) as err:
        await_ready(service, [RunningCheck(), TcpCheck(port=free_port())], timeout=0.3)
    text = str(err.value)
    assert "tcp probe failed: TCP port" in text
    assert "did not hold within 0.3 s (the start timeout)" in text
    assert "Connection refused" in text and "container status: running" in text
    assert err.value.logs == "still warming up"


def test_probes_run_in_order_and_all_must_hold() -> None:
    service = FakeService(lines=["ready"], exec_ok_after=None)
    with pytest.raises(ReadinessError, match="command probe failed"):
        await_ready(service, [LogCheck(pattern="ready"), CommandCheck(cmd=["x"], timeout=0.2)],
                    timeout=5)


def test_abort_stops_a_waiting_probe_at_once() -> None:
    env = ProbeEnv()
    later(0.1, env.abort.set)
    began = time.monotonic()
    with pytest.raises(StartAborted):
        await_ready(FakeService(), [TcpCheck(port=free_port())], timeout=10, env=env)
    assert time.monotonic() - began < 1


# -- a real backend --------------------------------------------------------------------


def test_local_process_with_a_log_probe_and_a_dying_one() -> None:
    box = LocalBackend("x").sandbox("t", default_image="i", env={})
    ok = ServiceSpec(name="talker", kind="process", command=[
        sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        checks=(ReadinessProbe(log="^up$"),))
    dies = ServiceSpec(name="dies", kind="process",
                       command=["sh", "-c", "echo about to fail; sleep 0.2; exit 4"],
                       checks=(ReadinessProbe(log="never printed"),))
    with box:
        await_ready(box.launch(ok), checks_for(ok), timeout=10)
        with pytest.raises(ReadinessError) as err:
            await_ready(box.launch(dies), checks_for(dies), timeout=10)
    assert "exited with code 4" in str(err.value) and "about to fail" in err.value.logs
