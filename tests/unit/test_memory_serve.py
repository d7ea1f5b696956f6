"""``clnrm memory serve|stop``: one memory server per folder, found by its pid file, stopped whole.

Most tests put a tiny stand-in ``chroma`` first (an HTTP server answering the heartbeat,
started exactly as ``chroma run`` is), so they take well under a second each; the last
two run the real ``chroma run`` through the CLI, as a user does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

FAKE_CHROMA = f"""#!{sys.executable}
import argparse, http.server
p = argparse.ArgumentParser()
p.add_argument("cmd"); p.add_argument("--path"); p.add_argument("--host")
p.add_argument("--port", type=int)
a = p.parse_args()

class Heartbeat(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *args):
        pass

http.server.HTTPServer((a.host, a.port), Heartbeat).serve_forever()
"""


@pytest.fixture
def fake_chroma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    exe = tmp_path / "bin" / "chroma"
    exe.parent.mkdir()
    exe.write_text(FAKE_CHROMA)
    exe.chmod(0o755)
    monkeypatch.setattr("clnrm.memory.chroma_server._chroma_executable", lambda: str(exe))
    return exe


def _port() -> int:
    from clnrm.memory.chroma_server import free_port

    return free_port()


def _processes_serving(path: Path) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"chroma" in text and str(path).encode() in text and b"run" in text:
            stat = (cmdline.parent / "stat").read_text().rpartition(")")[2].split()
            if stat[0] != "Z":
                found.append(int(cmdline.parent.name))
    return found


def test_detached_server_answers_refuses_a_second_and_stop_leaves_no_process(
        tmp_path: Path, fake_chroma: Path) -> None:
    import urllib.request

    from clnrm.memory.chroma_server import PID_FILE, start_server, stop_server
    from clnrm.memory.errors import MemoryStoreError

    data = tmp_path / "data"
    port = _port()
    proc, record = start_server(data, port=port)
    try:
        assert record.url == f"http://127.0.0.1:{port}" and record.pid == proc.pid
        with urllib.request.urlopen(f"{record.url}/api/v2/heartbeat", timeout=5) as resp:
            assert resp.status == 200
        assert json.loads((data / PID_FILE).read_text())["pid"] == proc.pid
        with pytest.raises(MemoryStoreError, match="already serves") as err:
            start_server(data, port=_port())
        assert f"clnrm memory stop --path {data}" in str(err.value)
    finally:
        stopped = stop_server(data)
    assert stopped is not None and stopped.pid == proc.pid
    assert proc.wait(timeout=5) is not None
    assert not (data / PID_FILE).exists() and _processes_serving(data) == []
    assert stop_server(data) is None  # idempotent: nothing runs, nothing to do


def test_stale_pid_file_of_a_dead_server_is_replaced(tmp_path: Path, fake_chroma: Path) -> None:
    from clnrm.memory.chroma_server import PID_FILE, read_record, start_server, stop_server

    data = tmp_path / "data"
    data.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data / PID_FILE).write_text(json.dumps({
        "pid": dead.pid, "url": "http://127.0.0.1:1", "path": str(data), "host": "127.0.0.1",
        "port": 1, "started_at": "2026-01-01T00:00:00Z"}))
    assert read_record(data) is None
    proc, record = start_server(data, port=_port())
    try:
        assert read_record(data) == record and record.pid == proc.pid
    finally:
        stop_server(data)


def test_a_pid_of_another_program_is_not_taken_for_the_server(
        tmp_path: Path, fake_chroma: Path) -> None:
    """A reused pid (here: this test's own) is not the server: stop must not kill it."""
    from clnrm.memory.chroma_server import PID_FILE, read_record, stop_server

    data = tmp_path / "data"
    data.mkdir()
    (data / PID_FILE).write_text(json.dumps({
        "pid": os.getpid(), "url": "http://127.0.0.1:1", "path": str(data),
        "host": "127.0.0.1", "port": 1, "started_at": "2026-01-01T00:00:00Z"}))
    assert read_record(data) is None
    assert stop_server(data) is None  # and we are still here


def test_unreadable_pid_file_is_one_clear_error(tmp_path: Path) -> None:
    from clnrm.memory.chroma_server import PID_FILE, read_record
    from clnrm.memory.errors import MemoryStoreError

    (tmp_path / PID_FILE).write_text("{not json")
    with pytest.raises(MemoryStoreError, match="not a memory server pid file") as err:
        read_record(tmp_path)
    assert str(tmp_path / PID_FILE) in str(err.value)


def test_server_that_cannot_bind_fails_with_its_log_and_leaves_nothing(
        tmp_path: Path, fake_chroma: Path) -> None:
    from clnrm.memory.chroma_server import PID_FILE, start_server
    from clnrm.memory.errors import MemoryUnavailable

    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(MemoryUnavailable, match="not ready") as err:
            start_server(data, port=taken.getsockname()[1], timeout=20)
    assert "Address already in use" in str(err.value)
    assert not (data / PID_FILE).exists() and _processes_serving(data) == []


SIGNAL_ON_READY = """
import os, signal, sys
import clnrm.memory.chroma_server as server
server._chroma_executable = lambda: sys.argv[1]
sys.exit(server.serve_foreground(sys.argv[2], port=int(sys.argv[3]),
         on_ready=lambda record: os.kill(os.getpid(), signal.SIGTERM)))
"""


def test_sigterm_right_at_the_ready_line_still_stops_the_server(
        tmp_path: Path, fake_chroma: Path) -> None:
    """A caller that signals the moment it reads "ready" (as CI's test did) gets a clean stop.

    SIGTERM is sent from inside ``on_ready``, the earliest moment a caller can know the
    server is up, so a handler installed only after it would leave the default action to
    kill the process (-15) with the server orphaned.
    """
    from clnrm.memory.chroma_server import PID_FILE, stop_server

    data = tmp_path / "data"
    try:
        done = subprocess.run([sys.executable, "-c", SIGNAL_ON_READY, str(fake_chroma),
                               str(data), str(_port())], capture_output=True, text=True,
                              timeout=60, cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert _processes_serving(data) == [] and not (data / PID_FILE).exists()
    finally:
        stop_server(data)  # an orphan of a failing run is not left behind


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "clnrm", "memory", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "served"
    yield data
    from clnrm.memory.chroma_server import stop_server

    stop_server(data)  # whatever the test did, nothing keeps running
    assert _processes_serving(data) == []


@pytest.mark.slow
def test_foreground_serve_stops_its_server_on_sigterm(served: Path) -> None:
    """The real ``chroma run``: ready line, pid file, SIGTERM stops it and removes both."""
    from clnrm.memory.chroma_server import PID_FILE

    proc = _cli("serve", "--path", str(served), "--port", str(_port()))
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "memory server ready at http://127.0.0.1:" in line, proc.stderr
        assert (served / PID_FILE).exists() and _processes_serving(served)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while _processes_serving(served) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_serving(served) == [] and not (served / PID_FILE).exists()


@pytest.mark.slow
def test_detached_serve_then_stop_through_the_cli(served: Path) -> None:
    port = _port()
    up = _cli("serve", "--path", str(served), "--port", str(port), "--detach", "-f", "json")
    out, err = up.communicate(timeout=90)
    assert up.returncode == 0, err
    record = json.loads(out)
    assert record["url"] == f"http://127.0.0.1:{port}" and _processes_serving(served)
    down = _cli("stop", "--path", str(served))
    out, err = down.communicate(timeout=60)
    assert down.returncode == 0, err
    assert f"memory server at http://127.0.0.1:{port} stopped" in out
    assert _processes_serving(served) == []
