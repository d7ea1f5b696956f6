"""A started container as readiness probes see it (:class:`~clnrm.backends.base.ServiceHandle`).

Kept apart from the sandbox: probes only need state, address, exec and logs,
and the log stream is the one place that holds an open engine connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from clnrm.backends.base import LogStream, ServiceHandle, ServiceState
from clnrm.results import ExecResult

if TYPE_CHECKING:
    from clnrm.backends.docker import DockerSandbox


class DockerService(ServiceHandle):
    """A started container as readiness probes see it."""

    def __init__(self, box: DockerSandbox, api: Any, name: str, cid: str) -> None:
        self.name = name
        self._box = box
        self._api = api  # the engine's low-level client
        self._cid = cid
        self._address: str | None = None

    def state(self) -> ServiceState:
        from docker.errors import NotFound

        try:
            info = self._api.inspect_container(self._cid)
        except NotFound:  # removed under us (interrupt, reap)
            return ServiceState(running=False, status="removed")
        st = info["State"]
        return ServiceState(running=bool(st.get("Running")), exit_code=st.get("ExitCode"),
                            status=str(st.get("Status") or ""),
                            oom_killed=bool(st.get("OOMKilled")),
                            restarts=int(info.get("RestartCount") or 0))

    def address(self) -> str | None:
        if self._address is None:
            self._address = self._box.address_of(self._cid)
        return self._address

    def exec(self, argv: list[str], *, timeout: float | None) -> ExecResult:
        return self._box.exec_in(self._cid, argv, env=None, workdir=None, timeout=timeout)

    def logs(self, *, tail: int = 20) -> str:
        return self._box.logs(self.name, tail=tail)

    def follow_logs(self) -> LogStream | None:
        try:
            raw = self._api.logs(self._cid, stream=True, follow=True)
        except Exception:  # the probe falls back to reading the logs
            return None
        return _DockerLogStream(raw)


class _DockerLogStream(LogStream):
    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[str]:
        pending = b""
        for chunk in self._raw:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace")
        if pending:
            yield pending.decode("utf-8", errors="replace")

    def close(self) -> None:
        try:
            self._raw.close()
        except Exception:  # already closed by the engine
            pass
