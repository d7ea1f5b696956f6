"""Container lifecycle faults: kill, stop, pause, restart, an OOM kill, a signal.

Each acts on the target's container through the engine (or, for ``signal`` and the
OOM kill's victim choice, on its main process from the host) and, on rollback, brings
the service back as an orchestrator would: ``ctx.restart`` starts the container,
releases clnrm's start gate (a container created held waits for SIGUSR1 before its
command runs, restarted or not) and puts proxied ports back behind the chaos proxy,
since a restarted container has a new network namespace.  ``restart = false`` leaves
a killed service down, for experiments about living without it.

What outlives a SIGKILL of clnrm: a paused container, a stopped main process, a
lowered memory limit and a memory hog.  Those have undo records; a killed or stopped
container has none, since ``clnrm gc`` removes the run's containers anyway.
"""

from __future__ import annotations

import math
import os
import signal as signals
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import structlog
from pydantic import Field, field_validator

from clnrm.chaos.base import C, Fault, FaultConfig
from clnrm.chaos.faults import _cgroup, _linux
from clnrm.errors import ChaosError
from clnrm.scenario.durations import Duration

if TYPE_CHECKING:
    from clnrm.chaos.context import ChaosContext, UndoEnv

log = structlog.get_logger("clnrm.chaos")

_STOPPING = frozenset({"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU"})
"""Signals that freeze a process until SIGCONT: rolled back with SIGCONT, not a restart."""
_EXIT_WAIT_S = 10.0


class _ContainerFault(Fault[C]):
    category: ClassVar[Literal["container"]] = "container"

    def _state(self) -> dict[str, Any]:
        return self.ctx.state(self.target)

    def _wait_exit(self, timeout: float,
                   watch: Callable[[], None] | None = None) -> dict[str, Any]:
        """The container's state once it is no longer running (or at the deadline);
        ``watch`` runs at each look (to read a cgroup before it is removed with the box)."""
        deadline = time.monotonic() + timeout
        state = self._state()
        while state.get("Running") and time.monotonic() < deadline:
            if watch is not None:
                watch()
            time.sleep(0.05)
            state = self._state()
        return state

    def _bring_back(self, restart: bool) -> str:
        """Rollback of the faults that end the container: start it again if it is down."""
        state = self._state()
        if state.get("Running"):
            return f"{self.target} is running"
        if not restart:
            return f"left {self.target} down (restart = false)"
        self.ctx.restart(self.target)
        return f"started {self.target} again"


class KillConfig(FaultConfig):
    restart: bool = True
    """Start the container again on rollback (when the fault's ``duration`` ends), as an
    orchestrator's restart policy would; ``false`` leaves it dead."""


class Kill(_ContainerFault[KillConfig]):
    """SIGKILL to the whole container (the engine's kill): no shutdown, no flushed state."""

    type = "kill"
    summary = "SIGKILL the target's container; rollback starts it again"
    Config = KillConfig

    def inject(self) -> str:
        self.ctx.api.kill(self.cid, signal="SIGKILL")
        state = self._wait_exit(_EXIT_WAIT_S)
        return f"killed {self.target} (SIGKILL, exit code {state.get('ExitCode')})"

    def rollback(self) -> str:
        return self._bring_back(self.config.restart)


class StopConfig(FaultConfig):
    timeout: Duration = Field(default=10.0, le=300)
    """Grace period between the stop signal and SIGKILL (the engine's ``stop -t``)."""
    restart: bool = True
    """Start the container again on rollback."""


class Stop(_ContainerFault[StopConfig]):
    """A graceful stop: the image's stop signal, then SIGKILL after ``timeout``."""

    type = "stop"
    summary = "stop the target gracefully (stop signal, then SIGKILL); rollback starts it"
    Config = StopConfig

    def inject(self) -> str:
        started = time.monotonic()
        self.ctx.api.stop(self.cid, timeout=math.ceil(self.config.timeout))
        state = self._state()
        return (f"stopped {self.target} in {time.monotonic() - started:.1f} s "
                f"(exit code {state.get('ExitCode')})")

    def rollback(self) -> str:
        return self._bring_back(self.config.restart)


class Pause(_ContainerFault[FaultConfig]):
    """Every process of the container frozen (cgroup freezer): connections stay open and
    silent, so callers see timeouts, not refusals."""

    type = "pause"
    summary = "freeze every process of the target (connections hang); rollback unpauses"

    def inject(self) -> str:
        self.ctx.api.pause(self.cid)
        return f"paused {self.target}"

    def rollback(self) -> str:
        return _unpause(self.ctx.api, self.cid, self.target)

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        cid = str(record.get("container", ""))
        return _unpause(env.api, cid, cid[:12]) if cid else "incomplete record: nothing undone"


def _unpause(api: Any, cid: str, name: str) -> str:
    state = _linux.container_state(api, cid)
    if state is None:
        return f"{name} is gone"
    if not state.get("Paused"):
        return f"{name} was not paused"
    api.unpause(cid)
    return f"unpaused {name}"


class RestartConfig(FaultConfig):
    timeout: Duration = Field(default=10.0, le=300)
    """Grace period of the stop half of the restart."""


class Restart(_ContainerFault[RestartConfig]):
    """The engine's restart (graceful stop, start), then the start gate released: one
    instantaneous fault whose effect is the outage while the service comes back up."""

    type = "restart"
    summary = "restart the target's container (stop, start); the outage is the effect"
    Config = RestartConfig

    def inject(self) -> str:
        started = time.monotonic()
        self.ctx.api.restart(self.cid, timeout=math.ceil(self.config.timeout))
        self.ctx.restart(self.target)  # a held container waits in its gate again
        return f"restarted {self.target} in {time.monotonic() - started:.1f} s"

    def rollback(self) -> str:
        return self._bring_back(True)


class OomKillConfig(FaultConfig):
    margin_mb: int = Field(default=8, ge=1, le=1024)
    """Headroom above the current usage the limit is lowered to before the hog starts."""
    timeout: Duration = Field(default=15.0, gt=0, le=120)
    """How long to wait for the kernel's OOM kill."""
    restart: bool = True
    """Restore the memory limit and start the container again on rollback."""


class OomKill(_ContainerFault[OomKillConfig]):
    """The kernel's OOM killer takes the container's main process, as when a service
    outgrows its memory limit.

    How: the memory limit is lowered to the current usage plus ``margin_mb`` (through
    the engine) and a shell started in the container holds memory until the cgroup runs
    out.  The victim must be the service, not the hog:

    - cgroup v2: ``memory.oom.group`` is set to 1 first, so the kernel kills every
      process of the container together (what an orchestrator's OOM kill of a box
      looks like); the old value is written back on rollback while the cgroup exists.
    - cgroup v1 has no such knob: the main process's ``oom_score_adj`` is raised to 1000
      from the host (lowering the hog's score instead would need CAP_SYS_RESOURCE,
      which the container lacks and clnrm may lack too).

    The engine reports ``State.OOMKilled`` from the cgroup's OOM event (on v2, containerd
    watches ``memory.events``); the kernel's own count of OOM kills in the cgroup is
    read while waiting and reported too.  Inject fails when the container is still
    running at ``timeout``.  Rollback restores the engine's and the kernel's memory
    limits exactly (as ``memory_limit`` does) and starts the container again.
    """

    type = "oom_kill"
    summary = "make the kernel OOM-kill the target's main process (lowered memory limit)"
    Config = OomKillConfig

    def __init__(self, config: OomKillConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._old: dict[str, int] | None = None
        self._kernel: dict[str, str] | None = None
        self._group: tuple[str, str] | None = None  # v2 cgroup dir, old memory.oom.group
        self._hog: str | None = None
        self._victim: tuple[int, str | None, str] | None = None  # pid, start, old score

    def _memory_cgroup(self) -> _cgroup.ContainerCgroup:
        cgroup = _cgroup.of_container(self.ctx.container_pid(self.target), fault=self.type,
                                      target=self.target)
        cgroup.require("memory", fault=self.type, target=self.target)
        return cgroup

    def _remember(self) -> dict[str, int]:
        """What rollback and gc put back, read once before anything changes (so even the
        record journalled before inject can restore ``memory.oom.group``)."""
        if self._old is None:
            cgroup = self._memory_cgroup()
            self._kernel = cgroup.memory_snapshot()
            if cgroup.version == 2:
                self._group = (str(cgroup.folder("memory")),
                               cgroup.read("memory", "memory.oom.group"))
            self._old = _linux.memory_limits(self.ctx.api, self.cid)
        return self._old

    def inject(self) -> str:
        cfg = self.config
        api = self.ctx.api
        self._remember()
        cgroup = self._memory_cgroup()
        usage = cgroup.memory_usage()
        kills = [cgroup.oom_kills()]
        limit = usage + (cfg.margin_mb << 20)
        if cgroup.version == 2:
            cgroup.write("memory", "memory.oom.group", "1")
        _linux.set_memory(api, self.cid, limit)
        if cgroup.version == 1:
            # last before the hog: without CAP_SYS_RESOURCE the raised score cannot be
            # lowered again, should the kernel not take the process after all
            main = self.ctx.main_pid(self.target)
            self._victim = (main, _linux.start_time(main), _linux.oom_score_adj(main))
            _linux.set_oom_score_adj(main, "1000")
        self._hog = self.ctx.exec_background(self.target, _linux.hog_argv(limit))

        def count_kills() -> None:  # the cgroup goes with the container: read it meanwhile
            kills.append(max(kills[-1], cgroup.oom_kills()))

        state = self._wait_exit(cfg.timeout, count_kills)
        if state.get("Running"):
            raise ChaosError(f"the kernel did not OOM-kill {self.target} within "
                             f"{cfg.timeout:g} s (limit {limit >> 20} MiB)",
                             fault=self.type, target=self.target,
                             hint="the container may not run anything that allocates; "
                                  "raise timeout or lower margin_mb")
        how = "the whole container, memory.oom.group=1" if cgroup.version == 2 \
            else "oom_score_adj=1000"
        return (f"OOM-killed {self.target}'s main process ({how}; limit lowered to "
                f"{limit >> 20} MiB, exit code {state.get('ExitCode')}, "
                f"OOMKilled={state.get('OOMKilled')}, kernel OOM kills seen "
                f"+{kills[-1] - kills[0]})")

    def rollback(self) -> str:
        cfg = self.config
        api = self.ctx.api
        if self._hog is not None:
            _linux.kill_exec(api, self._hog)
        if self._victim is not None:  # still alive when the kernel chose otherwise
            pid, started, score = self._victim
            if _linux.same_process(pid, started):
                try:
                    _linux.set_oom_score_adj(pid, score)
                except ChaosError as exc:  # lowering it needs CAP_SYS_RESOURCE
                    log.warning("chaos.oom_score_kept", target=self.target, pid=pid,
                                error=exc.message)
        _restore_oom_group(self._group)
        if self._old is None:
            return "nothing was changed"
        _linux.restore_memory(api, self.cid, self._old, self._kernel)
        done = self._bring_back(cfg.restart)
        if self._state().get("Running"):  # the kernel's view, now it runs
            _linux.restore_memory(api, self.cid, self._old, self._kernel)
        return f"memory limit restored; {done}"

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid, "memory": self._remember(), "kernel": self._kernel,
                "hog": self._hog, "oom_group": list(self._group) if self._group else None}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        cid = str(record.get("container", ""))
        if not cid or _linux.container_state(env.api, cid) is None:
            return "container gone: nothing to undo"
        if record.get("hog"):
            _linux.kill_exec(env.api, str(record["hog"]))
        group = record.get("oom_group")
        _restore_oom_group((str(group[0]), str(group[1])) if group else None)
        if record.get("memory"):
            _linux.restore_memory(env.api, cid, dict(record["memory"]), record.get("kernel"))
        return f"memory limit of {cid[:12]} restored"


def _restore_oom_group(group: tuple[str, str] | None) -> None:
    """Write the old ``memory.oom.group`` back while the cgroup exists (a restarted
    container gets a new cgroup with the kernel's default)."""
    if group is None:
        return
    path = Path(group[0]) / "memory.oom.group"
    if path.exists():
        try:
            path.write_text(group[1], encoding="ascii")
        except OSError:
            pass  # removed between the check and the write: the box is gone


class SignalConfig(FaultConfig):
    signal: str = "SIGTERM"
    """Any signal name (``SIGTERM``, ``TERM``, ``SIGSTOP``, ``SIGHUP``...)."""
    restart: bool = True
    """When the signal ended the container: start it again on rollback."""
    wait: Duration = Field(default=3.0, le=60)
    """How long inject waits to see whether the container exits (reported on the timeline)."""

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name not in signals.Signals.__members__ or name in ("SIGRTMIN", "SIGRTMAX"):
            raise ValueError(f"unknown signal {value!r}; use a name such as SIGTERM, SIGKILL, "
                             "SIGSTOP, SIGHUP, SIGINT, SIGUSR1")
        return name


class Signal(_ContainerFault[SignalConfig]):
    """A signal to the service's main process (the child of docker-init), sent from the
    host: what the program does with it (exit, reload, freeze) is the experiment.

    Rollback: SIGCONT after a stopping signal; a restart when the container ended.
    """

    type = "signal"
    summary = "send a signal (SIGTERM, SIGSTOP, SIGHUP...) to the target's main process"
    Config = SignalConfig

    def __init__(self, config: SignalConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._pid = 0
        self._started: str | None = None

    def inject(self) -> str:
        cfg = self.config
        self._pid = self.ctx.main_pid(self.target)
        self._started = _linux.start_time(self._pid)
        os.kill(self._pid, signals.Signals[cfg.signal])
        sent = f"sent {cfg.signal} to {self.target}'s main process (pid {self._pid})"
        if cfg.signal in _STOPPING:
            return sent
        state = self._wait_exit(cfg.wait)
        if state.get("Running"):
            return f"{sent}; still running after {cfg.wait:g} s"
        return f"{sent}; the container exited (code {state.get('ExitCode')})"

    def rollback(self) -> str:
        cfg = self.config
        if cfg.signal in _STOPPING:
            if _linux.kill_if_same(self._pid, self._started, signals.SIGCONT):
                return f"sent SIGCONT to {self.target}'s main process"
            return f"{self.target}'s main process is gone"
        return self._bring_back(cfg.restart)

    def undo_record(self) -> dict[str, Any] | None:
        if self.config.signal not in _STOPPING:
            return None
        return {"pid": self._pid, "start": self._started}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        pid = int(record.get("pid") or 0)
        if _linux.kill_if_same(pid, record.get("start"), signals.SIGCONT):
            return f"sent SIGCONT to pid {pid}"
        return f"pid {pid} is gone"


FAULTS: list[type[Fault[Any]]] = [Kill, Stop, Pause, Restart, OomKill, Signal]
