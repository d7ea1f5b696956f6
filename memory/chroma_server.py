"""A Chroma server for the swarm's memory on a cluster, and for tests: ``chroma run`` from
this venv, always in a process group of its own so it is stopped whole.

Three ways to run one:

- ``clnrm memory serve --path DIR [--host 0.0.0.0] [--port 8000]``: in the foreground
  until Ctrl-C/SIGTERM; with ``--detach`` it returns once the server answers, and
  ``clnrm memory stop --path DIR`` stops it.  Either way ``DIR/chroma-server.pid``
  (a :class:`ServerRecord`) says where it serves; a live one refuses a second server
  on the same data, a stale one (its process is gone) is replaced.
- :func:`chroma_server` as a context manager (tests), stopped even when a test fails::

      with chroma_server(tmp_path / "chroma") as url:
          store = open_memory(url)

- ``python -m clnrm.memory.chroma_server --path DIR --port 8000`` (the foreground serve).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from clnrm.memory.errors import MemoryStoreError, MemoryUnavailable
from pydantic import BaseModel, ValidationError

from clnrm.interrupts import signals_as_interrupts
from clnrm.procs import group_alive

PID_FILE: Final = "chroma-server.pid"
LOG_FILE: Final = "chroma-server.log"


class ServerRecord(BaseModel):
    """``DIR/chroma-server.pid``: which process serves DIR, and where."""

    pid: int  # the `chroma run` process, leader of its own process group
    url: str
    path: str
    host: str
    port: int
    started_at: datetime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chroma_executable() -> str:
    beside = Path(sys.executable).with_name("chroma")
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise MemoryUnavailable("the `chroma` command is not installed",
                                hint="pip install 'clnrm[memory]'")
    return found


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise MemoryUnavailable(
        f"chroma server at {url} was not ready within {timeout:.0f}s "
        f"(exit code {proc.poll()}, last error {last!r}); log tail:\n{tail}",
        location=url, hint=f"see the full log in {log}")


@contextmanager
def chroma_server(path: Path | str, *, port: int | None = None, host: str = "127.0.0.1",
                  timeout: float = 60.0) -> Iterator[str]:
    """Run ``chroma run`` with its data in ``path``; yields the URL (on 127.0.0.1).

    The server gets its own process group and is terminated (then killed) on exit.
    No pid file: a test's server is the test's.
    """
    proc, url = _spawn(Path(path), host=host, port=port or free_port(), timeout=timeout)
    try:
        yield url
    finally:
        _stop(proc)


def _spawn(data: Path, *, host: str, port: int,
           timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    """``chroma run`` in a session of its own, answering; stopped again if it does not."""
    data.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"  # a server on 0.0.0.0 answers on loopback too
    log = data / LOG_FILE
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_chroma_executable(), "run", "--path", str(data), "--host", host,
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_ready(url, proc, log, timeout)
    except BaseException:
        _stop(proc)
        raise
    return proc, url


def public_url(host: str, port: int) -> str:
    """The URL to hand to agents: a wildcard bind is announced by this host's name."""
    name = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{name}:{port}"


def read_record(path: Path | str) -> ServerRecord | None:
    """The pid file of ``path`` if its server process still runs, else ``None``."""
    file = Path(path).expanduser() / PID_FILE
    try:
        record = ServerRecord.model_validate_json(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        raise MemoryStoreError(f"{file}: not a memory server pid file: {str(exc)[:300]}",
                               location=str(file),
                               hint="remove it if no `chroma run` serves that folder") from exc
    return record if _serving(record) else None


def _serving(record: ServerRecord) -> bool:
    """The recorded pid is still a ``chroma`` process serving this path (not a reused pid)."""
    try:
        stat = Path(f"/proc/{record.pid}/stat").read_text().rpartition(")")[2].split()
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat[0] != "Z" and b"chroma" in cmdline and record.path.encode() in cmdline


def start_server(path: Path | str, *, host: str = "127.0.0.1", port: int = 8000,
                 timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], ServerRecord]:
    """Start a server for ``path`` and write its pid file; refuses a second one."""
    data = Path(path).expanduser().resolve()
    running = read_record(data)
    if running is not None:
        raise MemoryStoreError(f"a memory server already serves {data} at {running.url} "
                               f"(pid {running.pid})", location=str(data),
                               hint=f"clnrm memory stop --path {data}")
    proc, _ = _spawn(data, host=host, port=port, timeout=timeout)
    try:
        record = ServerRecord(pid=proc.pid, url=public_url(host, port), path=str(data),
                              host=host, port=port, started_at=datetime.now(UTC))
        tmp = data / f".{PID_FILE}.tmp"
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, data / PID_FILE)
    except BaseException:  # an interrupt or a full disk must not leave a server unrecorded
        _stop(proc)
        raise
    return proc, record


def stop_server(path: Path | str, *, grace: float = 10.0) -> ServerRecord | None:
    """Stop the server recorded for ``path`` (its whole group) and remove the pid file.

    Returns the record of the server stopped, ``None`` when none was running.
    """
    data = Path(path).expanduser().resolve()
    record = read_record(data)
    if record is not None:
        _stop_group(record.pid, grace)
    with suppress(FileNotFoundError):
        (data / PID_FILE).unlink()
    return record


def serve_foreground(path: Path | str, *, host: str = "127.0.0.1", port: int = 8000,
                     on_ready: Callable[[ServerRecord], None] | None = None) -> int:
    """Serve until Ctrl-C/SIGTERM (then stop) or until the server exits; its exit code.

    SIGTERM is caught before the server starts: a caller that signals as soon as it reads
    the ready line must not kill this process with the default action and orphan the
    server (CI caught that race).  Interrupted before ready, the code is 130.
    """
    started: tuple[subprocess.Popen[bytes], ServerRecord] | None = None
    with signals_as_interrupts():
        try:
            started = start_server(path, host=host, port=port)
            if on_ready is not None:
                on_ready(started[1])
            return started[0].wait()
        except KeyboardInterrupt:
            return 0 if started is not None else 130
        finally:
            if started is not None:
                _stop(started[0])
                with suppress(FileNotFoundError):
                    (Path(started[1].path) / PID_FILE).unlink()


def _stop_group(pid: int, grace: float) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    code = serve_foreground(args.path, host=args.host, port=args.port, on_ready=lambda r: print(
        f"chroma server ready at {r.url} (Ctrl-C stops it)", flush=True))
    sys.exit(code)


if __name__ == "__main__":
    main()
