"""The ``local`` backend: subprocesses on this machine, for hosts with no engine.

It is honest about what it is: steps and ``local_process`` services run as the
current user in a temporary working directory, in their own process groups
(killed at cleanup), but share the host's network, filesystem and kernel.
Container services are refused with a clear error instead of being faked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from clnrm.backends.base import Backend, Sandbox, ServiceHandle, ServiceState
from clnrm.errors import BackendError, ReadinessError
from clnrm.plugins.base import ServiceSpec
from clnrm.results import ExecResult

LIMITATIONS = [
    "no network isolation: steps and services use the host network and ports",
    "no filesystem isolation: only the working directory is a fresh temporary folder",
    "no resource limits and no container images: container services cannot run",
]


class LocalSandbox(Sandbox):
    def __init__(self, run_id: str, test_slug: str, env: dict[str, str]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"clnrm-{run_id}-")
        self.workdir = Path(self._tmp.name)
        self._env = env
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self._closed = False
        self._stop_after: dict[str, set[str]] = {}

    def extend_env(self, env: dict[str, str]) -> None:
        self._env = {**self._env, **env}

    def _environ(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {**os.environ, **self._env, **(extra or {})}

    def launch(self, spec: ServiceSpec) -> LocalService:
        if spec.kind != "process" or not spec.command:
            raise BackendError(
                f"service {spec.name!r} is a container service; the local backend runs no "
                "containers", backend="local",
                hint="use --backend docker, or plugin = \"local_process\" with a command")
        log_path = self.workdir / f"{spec.name}.log"
        self._logs[spec.name] = log_path
        with open(log_path, "wb") as log_file:
            try:
                proc = subprocess.Popen(spec.command, cwd=spec.workdir or self.workdir,
                                        env=self._environ({"OTEL_SERVICE_NAME": spec.name,
                                                           **spec.env}), stdout=log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise ReadinessError(f"service {spec.name!r} could not start: {exc}",
                                     service=spec.name) from exc
        self._procs[spec.name] = proc
        return LocalService(self, spec.name, proc)

    def order_shutdown(self, stop_after: dict[str, set[str]]) -> None:
        self._stop_after = {name: set(deps) for name, deps in stop_after.items()}

    def exec(self, service: str | None, argv: list[str], *, env: dict[str, str] | None = None,
             workdir: str | None = None, timeout: float | None = None) -> ExecResult:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(argv, cwd=workdir or self.workdir, env=self._environ(env),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            return ExecResult(exit_code=127, stderr=str(exc), duration_s=0.0)
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        return ExecResult(exit_code=None if timed_out else proc.returncode,
                          stdout=out.decode("utf-8", "replace"),
                          stderr=err.decode("utf-8", "replace"),
                          duration_s=time.monotonic() - started, timed_out=timed_out)

    def logs(self, service: str, *, tail: int = 20) -> str:
        path = self._logs.get(service)
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-tail:])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name in _stop_order(list(self._procs), self._stop_after):
            _kill_group(self._procs[name])
        self._procs.clear()
        self._tmp.cleanup()


class LocalService(ServiceHandle):
    """A host process as readiness probes see it (reached on loopback)."""

    def __init__(self, box: LocalSandbox, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.name = name
        self._box = box
        self._proc = proc

    def state(self) -> ServiceState:
        code = self._proc.poll()
        return ServiceState(running=code is None, exit_code=code,
                            status="running" if code is None else "exited")

    def address(self) -> str | None:
        return "127.0.0.1"

    def exec(self, argv: list[str], *, timeout: float | None) -> ExecResult:
        return self._box.exec(None, argv, timeout=timeout)

    def logs(self, *, tail: int = 20) -> str:
        return self._box.logs(self.name, tail=tail)


def _stop_order(started: list[str], stop_after: dict[str, set[str]]) -> list[str]:
    """Latest first, but never before a dependant that is still running."""
    order: list[str] = []
    pending = list(reversed(started))
    while pending:
        name = next((n for n in pending
                     if not (stop_after.get(n, set()) & set(pending) - {n})), pending[0])
        pending.remove(name)
        order.append(name)
    return order


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


class LocalBackend(Backend):
    name = "local"

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self._sandboxes: list[LocalSandbox] = []

    def sandbox(self, test_slug: str, *, default_image: str, env: dict[str, str],
                links: Sequence[Sequence[str]] | None = None) -> LocalSandbox:
        box = LocalSandbox(self.run_id, test_slug, env)
        self._sandboxes.append(box)
        return box

    def limitations(self) -> list[str]:
        return list(LIMITATIONS)

    def reap(self) -> None:
        for box in self._sandboxes:
            box.close()
