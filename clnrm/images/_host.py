"""Host-side helpers for image builds: run a tool with its output streamed, install a tool.

CI starts on a bare Debian machine as root, so a missing build tool (``debootstrap``,
``busybox-static``) is installed with apt-get; anywhere else the error says the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from clnrm.errors import BackendError

LOG_TAIL_LINES = 30
"""How many trailing output lines a failure message carries."""

_apt_updated = False


@dataclass(frozen=True)
class CommandOutcome:
    """Exit status and the last lines of a finished command (stdout and stderr merged)."""

    returncode: int
    tail: tuple[str, ...]
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail_text(self) -> str:
        return "\n".join(self.tail) if self.tail else "(no output)"


def run_streaming(
    argv: Sequence[str],
    *,
    emit: Callable[[str], None],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandOutcome:
    """Run ``argv``; pass each output line to ``emit``, keep the tail, kill after ``timeout`` s."""
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except OSError as e:
        return CommandOutcome(returncode=127, tail=(f"cannot run {argv[0]}: {e}",))
    timed_out = threading.Event()

    def _kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, _kill)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                emit(line)
        returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        tail.append(f"(killed after {timeout:.0f} s)")
    return CommandOutcome(returncode=returncode, tail=tuple(tail), timed_out=timed_out.is_set())


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_host_packages(
    packages: Sequence[str],
    *,
    present: Callable[[], bool],
    why: str,
    emit: Callable[[str], None],
) -> None:
    """Make ``present()`` true by apt-get installing ``packages``, or raise ``BackendError``.

    Runs ``apt-get update`` once per process before the first install.
    """
    if present():
        return
    names = " ".join(packages)
    if not is_root():
        raise BackendError(
            f"{names} is needed to {why} but is not installed, and installing it needs root",
            backend="docker",
            hint=f"install it once: sudo apt-get install -y {names}",
        )
    if shutil.which("apt-get") is None:
        raise BackendError(
            f"{names} is needed to {why} but is not installed, and apt-get is not available",
            backend="docker",
            hint=f"install the Debian package(s) {names} or your distribution's equivalent",
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    global _apt_updated
    if not _apt_updated:
        emit("apt-get update (host)")
        outcome = run_streaming(["apt-get", "update"], emit=emit, timeout=600, env=env)
        if not outcome.ok:
            raise BackendError(
                f"apt-get update failed while installing {names}:\n{outcome.tail_text()}",
                backend="docker",
                hint="check the host's apt sources and network, then retry",
            )
        _apt_updated = True
    emit(f"apt-get install -y {names} (host)")
    outcome = run_streaming(
        ["apt-get", "install", "-y", *packages], emit=emit, timeout=900, env=env
    )
    if not outcome.ok:
        raise BackendError(
            f"apt-get install {names} failed:\n{outcome.tail_text()}",
            backend="docker",
            hint=f"run `apt-get install -y {names}` by hand to see why",
        )
    if not present():
        raise BackendError(
            f"{names} was installed but is still not usable to {why}",
            backend="docker",
            hint=f"check the package contents: dpkg -L {packages[0]}",
        )
