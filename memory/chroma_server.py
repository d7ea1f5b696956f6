"""Start a local Chroma server for cluster mode and tests: ``chroma run`` from this venv.

Used as a context manager so the server is stopped even when a test fails::

    with chroma_server(tmp_path / "chroma") as url:
        store = open_memory(url)

or from a shell: ``python -m clnrm.memory.chroma_server --path DIR --port 8000``.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clnrm.memory.errors import MemoryUnavailable


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
def chroma_server(path: Path | str, *, port: int | None = None,
                  timeout: float = 60.0) -> Iterator[str]:
    """Run ``chroma run`` on 127.0.0.1 with its data in ``path``; yields the URL.

    The server gets its own process group and is terminated (then killed) on exit.
    """
    data = Path(path)
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = data / "chroma-server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_chroma_executable(), "run", "--path", str(data), "--host", "127.0.0.1",
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
    try:
        _wait_ready(url, proc, log, timeout)
        yield url
    finally:
        _stop(proc)


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
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    with chroma_server(args.path, port=args.port) as url:
        print(f"chroma server ready at {url} (Ctrl-C stops it)", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
