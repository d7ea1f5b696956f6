"""Resource faults: less CPU, memory, disk, file descriptors or I/O bandwidth for one service.

Limits go through the engine where it can change them on a running container
(``docker update``: CPU quota, memory), and through the host otherwise (rlimits
with ``prlimit(2)``, block I/O limits in the container's cgroup: v1 blkio throttles,
v2 ``io.max``).  Cgroup files are read and written through :mod:`._cgroup`, which
hides the cgroup version (decided per host at run time).  Load is made inside the target
with background execs of plain ``sh`` (busy loops, a shell holding memory, ``head``
writing a file), so any image with a shell works.  Every fault reads what it
changes before changing it; rollback puts exactly that back, and the undo record
carries it for ``clnrm gc``.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from clnrm.chaos.base import C, Fault, FaultConfig
from clnrm.chaos.faults import _cgroup, _linux
from clnrm.errors import ChaosError
from clnrm.scenario.durations import Duration

if TYPE_CHECKING:
    from clnrm.chaos.context import ChaosContext, UndoEnv

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", re.IGNORECASE)
_SCALE = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2,
          "mb": 1000**2, "mib": 1024**2, "mi": 1024**2, "g": 1000**3, "gb": 1000**3,
          "gib": 1024**3, "gi": 1024**3}


def _bytes(value: object) -> object:
    """``1048576``, ``"1MiB"``, ``"512kb"`` -> bytes (other values left to pydantic)."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = (match.group(2) or "").lower() if match else None
        if match is None or unit not in _SCALE:
            raise ValueError(f"expected a size such as 1048576, \"512KiB\" or \"1MB\", "
                             f"got {value!r}")
        return int(float(match.group(1)) * _SCALE[unit])
    return value


ByteRate = Annotated[int, BeforeValidator(_bytes), Field(ge=1)]
"""Bytes per second: an integer or a string with a unit (``"1MiB"``, ``"500kb"``)."""


class _ResourceFault(Fault[C]):
    category: ClassVar[Literal["resource"]] = "resource"

    def _target_cgroup(self) -> _cgroup.ContainerCgroup:
        """The target's cgroup, looked up each time (a restart gives a new first pid)."""
        return _cgroup.of_container(self.ctx.container_pid(self.target), fault=self.type,
                                    target=self.target)


# -- CPU ---------------------------------------------------------------------------------


class CpuLimitConfig(FaultConfig):
    cpus: float = Field(gt=0, le=1024)
    """CPU time allowed, in CPUs (``0.1``: a tenth of one CPU)."""
    period_us: int = Field(default=100_000, ge=1000, le=1_000_000)
    """CFS period; the quota is ``cpus * period_us`` (at least 1000 us)."""


class CpuLimit(_ResourceFault[CpuLimitConfig]):
    """A CFS quota on the container (the engine's ``--cpu-quota``/``--cpu-period``):
    work that needs more CPU than allowed is throttled, so latency grows with load."""

    type = "cpu_limit"
    summary = "cap the target's CPU time (cfs quota via the engine); rollback restores it"
    Config = CpuLimitConfig

    def __init__(self, config: CpuLimitConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._old: dict[str, int] | None = None

    def _read_old(self) -> dict[str, int]:
        if self._old is None:
            host = self.ctx.api.inspect_container(self.cid)["HostConfig"]
            if host.get("NanoCpus"):
                raise ChaosError("the container was started with --cpus (NanoCpus), which "
                                 "the engine will not combine with a CPU quota",
                                 fault=self.type, target=self.target)
            self._old = {"quota": int(host.get("CpuQuota") or 0),
                         "period": int(host.get("CpuPeriod") or 0)}
        return self._old

    def inject(self) -> str:
        cfg = self.config
        self._read_old()
        quota = max(1000, round(cfg.cpus * cfg.period_us))
        self.ctx.api.update_container(self.cid, cpu_quota=quota, cpu_period=cfg.period_us)
        return f"limited {self.target} to {quota / cfg.period_us:g} CPUs " \
               f"({quota} us per {cfg.period_us} us)"

    def rollback(self) -> str:
        if self._old is None:
            return "nothing was changed"
        _restore_cpu(self.ctx.api, self.cid, self._old)
        return f"CPU quota of {self.target} restored"

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid, "cpu": self._read_old()}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        cid = str(record.get("container", ""))
        if not cid or _linux.container_state(env.api, cid) is None:
            return "container gone: nothing to undo"
        _restore_cpu(env.api, cid, dict(record.get("cpu") or {}))
        return f"CPU quota of {cid[:12]} restored"


def _restore_cpu(api: Any, cid: str, old: dict[str, int]) -> None:
    # 0 means "unchanged" to the engine's update; -1 is the kernel's "no quota"
    api.update_container(cid, cpu_quota=old.get("quota") or -1,
                         cpu_period=old.get("period") or 100_000)


class CpuStressConfig(FaultConfig):
    workers: int = Field(default=1, ge=1, le=64)
    """Busy loops started in the container, each wanting one whole CPU."""


class CpuStress(_ResourceFault[CpuStressConfig]):
    """Busy ``sh`` loops inside the target compete with the service for its CPU share.

    The loops are the container's own processes, so they count against its CPU limit:
    with a ``cpu_limit`` in place the service is starved; without one they take host
    CPUs (each worker one CPU), which slows everything on a small machine.
    """

    type = "cpu_stress"
    summary = "busy loops inside the target competing for its CPU; rollback kills them"
    Config = CpuStressConfig

    def __init__(self, config: CpuStressConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._execs: list[str] = []

    def inject(self) -> str:
        cfg = self.config
        pids = []
        for _ in range(cfg.workers):
            exec_id = self.ctx.exec_background(self.target, ["sh", "-c", "while :; do :; done"])
            self._execs.append(exec_id)
            pids.append(_linux.exec_running(self.ctx.api, exec_id))
        if not all(pids):
            raise ChaosError("a busy loop did not start (does the image have sh?)",
                             fault=self.type, target=self.target)
        return f"{cfg.workers} busy loop(s) in {self.target} (host pids " \
               f"{', '.join(map(str, pids))})"

    def rollback(self) -> str:
        killed = sum(_linux.kill_exec(self.ctx.api, e) for e in self._execs)
        return f"killed {killed} busy loop(s) in {self.target}"

    def undo_record(self) -> dict[str, Any] | None:
        return {"execs": list(self._execs)}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        killed = sum(_linux.kill_exec(env.api, str(e)) for e in record.get("execs") or [])
        return f"killed {killed} busy loop(s)"


# -- memory ------------------------------------------------------------------------------


class MemoryLimitConfig(FaultConfig):
    limit_mb: int = Field(ge=6, le=1 << 22)
    """The new memory limit in MiB (no swap on top). Below what the service needs, it
    is reclaimed from, then OOM-killed."""


class MemoryLimit(_ResourceFault[MemoryLimitConfig]):
    """A lower memory limit through the engine (``docker update --memory``).

    Below what the container uses, cgroup v1 refuses a limit it cannot reclaim down to
    (inject fails saying so), while v2 reclaims and then OOM-kills inside the container.
    The kernel's limit files (v1 ``memory.limit_in_bytes`` and ``memsw``, v2
    ``memory.max`` and ``memory.swap.max``) are read before the change; rollback and
    gc's undo restore the engine's record and write exactly those contents back (see
    ``_linux`` for why the engine alone cannot give a container "no limit" back).
    """

    type = "memory_limit"
    summary = "lower the target's memory limit; rollback restores it"
    Config = MemoryLimitConfig

    def __init__(self, config: MemoryLimitConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._old: dict[str, int] | None = None
        self._kernel: dict[str, str] | None = None

    def _remember(self) -> dict[str, int]:
        if self._old is None:
            cgroup = self._target_cgroup()
            cgroup.require("memory", fault=self.type, target=self.target)
            self._kernel = cgroup.memory_snapshot()
            self._old = _linux.memory_limits(self.ctx.api, self.cid)
        return self._old

    def inject(self) -> str:
        cfg = self.config
        self._old = self._remember()
        _linux.set_memory(self.ctx.api, self.cid, cfg.limit_mb << 20)
        was = f"{self._old['memory'] >> 20} MiB" if self._old["memory"] else "no limit"
        return f"memory limit of {self.target}: {cfg.limit_mb} MiB (was {was})"

    def rollback(self) -> str:
        if self._old is None:
            return "nothing was changed"
        _linux.restore_memory(self.ctx.api, self.cid, self._old, self._kernel)
        return f"memory limit of {self.target} restored"

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid, "memory": self._remember(), "kernel": self._kernel}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        cid = str(record.get("container", ""))
        if not cid or _linux.container_state(env.api, cid) is None:
            return "container gone: nothing to undo"
        _linux.restore_memory(env.api, cid, dict(record.get("memory") or {}),
                              record.get("kernel"))
        return f"memory limit of {cid[:12]} restored"


class MemoryPressureConfig(FaultConfig):
    mb: int = Field(ge=1, le=1 << 20)
    """MiB to allocate and hold inside the container (charged to its memory cgroup)."""
    timeout: Duration = Field(default=20.0, gt=0, le=300)
    """How long inject waits for the allocation to be complete."""


class MemoryPressure(_ResourceFault[MemoryPressureConfig]):
    """A shell inside the target allocates ``mb`` MiB and holds it, so the service has that
    much less before its limit: page cache is reclaimed, and near the limit the kernel
    OOM-kills the largest process (the hog itself, usually).  Rollback kills the hog.

    The same on both cgroup versions: the hog is charged to the container's memory
    cgroup either way.  The cgroup is only read, to report the usage before and after
    (v1 ``memory.usage_in_bytes``, v2 ``memory.current``; left out of the report where
    the memory controller is not enabled).  v2's ``memory.high`` is not used: it
    throttles and reclaims the whole container, a different fault from memory taken."""

    type = "memory_pressure"
    summary = "allocate and hold memory inside the target; rollback frees it"
    Config = MemoryPressureConfig

    def __init__(self, config: MemoryPressureConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._hog: str | None = None

    def inject(self) -> str:
        cfg = self.config
        cgroup = self._target_cgroup()
        before = _usage(cgroup)
        self._hog = self.ctx.exec_background(self.target, _linux.hog_argv(cfg.mb << 20))
        pid = _linux.exec_running(self.ctx.api, self._hog)
        deadline = time.monotonic() + cfg.timeout
        rss = 0
        while pid and time.monotonic() < deadline:
            rss = _rss(pid)
            if rss >= (cfg.mb << 20) * 0.95 or not _linux.exec_alive(self.ctx.api, self._hog):
                break
            time.sleep(0.05)
        after = _usage(cgroup)
        if not pid or not _linux.exec_alive(self.ctx.api, self._hog):
            raise ChaosError(f"the memory hog ended before holding {cfg.mb} MiB "
                             "(OOM-killed at the container's limit?)",
                             fault=self.type, target=self.target)
        usage = (f" (cgroup usage {before >> 20} -> {after >> 20} MiB)"
                 if before is not None and after is not None else "")
        return f"holding {rss >> 20} MiB in {self.target}{usage}"

    def rollback(self) -> str:
        if self._hog is None or not _linux.kill_exec(self.ctx.api, self._hog):
            return f"no memory hog left in {self.target}"
        return f"freed the memory held in {self.target}"

    def undo_record(self) -> dict[str, Any] | None:
        return {"hog": self._hog}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        hog = record.get("hog")
        return "killed the memory hog" if hog and _linux.kill_exec(env.api, str(hog)) \
            else "no memory hog left"


def _usage(cgroup: _cgroup.ContainerCgroup) -> int | None:
    """Memory charged to the cgroup; None without a memory controller or once it is gone."""
    if not cgroup.has("memory"):
        return None
    try:
        return cgroup.memory_usage()
    except (OSError, ValueError):
        return None


def _rss(pid: int) -> int:
    """Resident bytes of ``pid`` (the shell holding the memory)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


# -- disk --------------------------------------------------------------------------------


class DiskFillConfig(FaultConfig):
    path: str = "/tmp"
    """Directory in the container whose filesystem is filled."""
    mb: int | None = Field(default=None, ge=1)
    """Size of the file to write, in MiB."""
    percent: float | None = Field(default=None, gt=0, le=100)
    """Or: this share of the filesystem's free space (capped by ``max_mb``)."""
    max_mb: int = Field(default=1024, ge=1)
    """Upper bound of a ``percent`` fill: the container's root filesystem is usually the
    host's disk, which other work shares."""

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
            raise ValueError(f"path must be an absolute directory path without '..', "
                             f"got {value!r}")
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        if (self.mb is None) == (self.percent is None):
            raise ValueError("give exactly one of mb (a size) or percent (of the free space)")
        return self


class DiskFill(_ResourceFault[DiskFillConfig]):
    """A file of zeros fills (part of) the filesystem under ``path`` in the target; the
    service's own writes then fail with ENOSPC.  Written as root, so root's reserved
    blocks go too.  Rollback deletes it (through the container's writable layer on the
    host when the container is not running)."""

    type = "disk_fill"
    summary = "fill the filesystem under a path in the target; rollback deletes the file"
    Config = DiskFillConfig

    def __init__(self, config: DiskFillConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        base = config.path if config.path != "/" else ""
        self.file = f"{base}/.clnrm-disk-fill-{secrets.token_hex(4)}"

    def inject(self) -> str:
        cfg = self.config
        free_before = self._free_kib()
        if cfg.mb is not None:
            size = cfg.mb << 20
        else:
            size = min(int(free_before * 1024 * (cfg.percent or 0) / 100), cfg.max_mb << 20)
        code, out = _linux.exec_as_root(self.ctx.api, self.cid,
                                        ["sh", "-c", f'head -c {size} /dev/zero > "$0"',
                                         self.file])
        if code != 0 and "No space left" not in out:
            raise ChaosError(f"could not write {self.file}: {out.strip()[-300:]}",
                             fault=self.type, target=self.target)
        free_after = self._free_kib()
        return (f"filled {cfg.path} in {self.target} with {size >> 20} MiB "
                f"(free {free_before >> 10} -> {free_after >> 10} MiB)")

    def _free_kib(self) -> int:
        path = self.config.path
        _, out = _linux.exec_as_root(self.ctx.api, self.cid, ["df", "-Pk", path])
        try:
            return int(out.strip().splitlines()[-1].split()[3])
        except (IndexError, ValueError) as exc:
            raise ChaosError(f"cannot read the free space of {path}: {out.strip()[-200:]}",
                             fault=self.type, target=self.target) from exc

    def rollback(self) -> str:
        return _linux.delete_in_container(self.ctx.api, self.cid, self.file)

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid, "file": self.file}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        cid, path = str(record.get("container", "")), str(record.get("file", ""))
        if not cid or not path or _linux.container_state(env.api, cid) is None:
            return "container gone: nothing to undo"
        return _linux.delete_in_container(env.api, cid, path)


# -- file descriptors --------------------------------------------------------------------


class FdExhaustionConfig(FaultConfig):
    limit: int | None = Field(default=None, ge=0, le=1 << 20)
    """New soft RLIMIT_NOFILE.  Default: the number of descriptors the process has open
    now, so it keeps them but can open (next to) none: no socket, no file, no accept.
    Lower values can break more than I/O: ``poll`` refuses more descriptors than the
    limit, so 0 makes an event loop fail outright."""
    processes: Literal["main", "all"] = "main"
    """``main``: the service's main process; ``all``: every process of the container
    (servers that fork workers, e.g. PostgreSQL under its supervisor)."""


class FdExhaustion(_ResourceFault[FdExhaustionConfig]):
    """The service runs out of file descriptors: its soft RLIMIT_NOFILE is lowered from
    the host (``prlimit(2)``, so the image needs no tool).

    Open descriptors keep working; ``accept``, ``connect`` and ``open`` fail with EMFILE.
    Only the soft limit changes: raising a hard limit back needs CAP_SYS_RESOURCE, which
    clnrm may lack (see :func:`_linux.set_nofile`); a program that raised its own soft
    limit at runtime would escape, which servers do only at start.  Rollback restores
    each process's recorded limits; processes forked during the fault inherited the low
    limit and get the old limits of the first recorded process.

    Not a cgroup limit: rlimits belong to processes, so this works the same on cgroup v1
    and v2.  The cgroup is only where the container's processes are listed (its
    ``cgroup.procs``: v1 the pids hierarchy's, v2 the container's one cgroup, which has
    the file whatever controllers are enabled).
    """

    type = "fd_exhaustion"
    summary = "lower the target's open-files limit (prlimit from the host); rollback restores"
    Config = FdExhaustionConfig

    def __init__(self, config: FdExhaustionConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._saved: list[dict[str, Any]] = []
        self._procs: str | None = None

    def inject(self) -> str:
        cfg = self.config
        try:
            self._procs = str(self._target_cgroup().procs_folder())
        except _cgroup.CgroupUnsupported as exc:
            raise ChaosError(exc.message, fault=self.type, target=self.target) from None
        pids = ([self.ctx.main_pid(self.target)] if cfg.processes == "main"
                else _cgroup_pids(Path(self._procs)))
        for pid in pids:
            soft, hard = _linux.nofile(pid)
            limit = cfg.limit if cfg.limit is not None else _open_fds(pid)
            if limit > hard:
                raise ChaosError(f"limit {limit} is above the hard limit {hard} of pid "
                                 f"{pid}: that is not exhaustion", fault=self.type,
                                 target=self.target, hint=f"choose a limit below {hard}")
            self._saved.append({"pid": pid, "start": _linux.start_time(pid), "soft": soft,
                                "hard": hard, "limit": limit})
            _linux.set_nofile(pid, limit, hard)
        old = self._saved[0]
        return (f"open-files limit of {self.target} ({len(pids)} process(es)): "
                f"{old['soft']} -> {old['limit']}")

    def rollback(self) -> str:
        restored = _restore_nofile(self._saved, self._procs)
        return f"open-files limit restored on {restored} process(es) of {self.target}"

    def undo_record(self) -> dict[str, Any] | None:
        return {"saved": self._saved, "cgroup": self._procs}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        restored = _restore_nofile(list(record.get("saved") or []), record.get("cgroup"))
        return f"open-files limit restored on {restored} process(es)"


def _cgroup_pids(folder: Path) -> list[int]:
    return [int(p) for p in (folder / "cgroup.procs").read_text().split()]


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError as exc:
        raise ChaosError(f"cannot count the open descriptors of pid {pid}: {exc}") from exc


def _restore_nofile(saved: list[dict[str, Any]], cgroup: str | None) -> int:
    restored = 0
    for entry in saved:
        pid = int(entry["pid"])
        if _linux.same_process(pid, entry.get("start")):
            _linux.set_nofile(pid, int(entry["soft"]), int(entry["hard"]))
            restored += 1
    if saved and cgroup and Path(cgroup).is_dir():
        known = {int(e["pid"]) for e in saved}
        lowered = {int(e["limit"]) for e in saved}
        for pid in _cgroup_pids(Path(cgroup)):  # forked meanwhile, with our limit
            try:
                soft, hard = _linux.nofile(pid)
                if pid not in known and soft in lowered:
                    _linux.set_nofile(pid, min(int(saved[0]["soft"]), hard), hard)
                    restored += 1
            except (OSError, ChaosError):
                pass  # ended meanwhile
    return restored


# -- block I/O ---------------------------------------------------------------------------


class IoThrottleConfig(FaultConfig):
    read_bps: ByteRate | None = None
    """Read bandwidth in bytes/s (or with a unit: "1MiB", "500kb")."""
    write_bps: ByteRate | None = None
    """Write bandwidth in bytes/s (or with a unit)."""
    read_iops: int | None = Field(default=None, ge=1)
    """Read operations per second."""
    write_iops: int | None = Field(default=None, ge=1)
    """Write operations per second."""
    device: str | None = Field(default=None, pattern=r"^\d+:\d+$")
    """``major:minor`` of the disk to throttle; default: the disk under the engine's data
    root (where container filesystems live)."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not any((self.read_bps, self.write_bps, self.read_iops, self.write_iops)):
            raise ValueError("give at least one of read_bps, write_bps, read_iops, write_iops")
        return self


class IoThrottle(_ResourceFault[IoThrottleConfig]):
    """Block I/O of the target limited in its cgroup on the disk backing the container's
    filesystem (the engine's ``update`` cannot do this): cgroup v1 ``blkio.throttle.*``
    rules, or the device's line of cgroup v2 ``io.max``
    (``MAJ:MIN rbps=N wbps=N riops=max wiops=max``).

    Limits apply to I/O the kernel charges to the container: reads, direct writes, and
    writeback.  On v1, buffered writes nobody syncs are written back by the kernel
    outside the container's cgroup and escape; v2 charges writeback to the cgroup that
    dirtied the pages (where memory is enabled too and the filesystem supports cgroup
    writeback: ext4, xfs, btrfs), so they are throttled too.  Rollback and gc's undo write back
    exactly the values read before (on v2 the whole line: all ``max`` removes it).
    Where the host lacks the controller (v1 blkio not mounted, v2 io not enabled for the
    container), or the engine's data root is on a virtual filesystem, inject fails
    saying which.
    """

    type = "io_throttle"
    summary = "throttle the target's disk reads/writes (v1 blkio, v2 io.max); rollback lifts it"
    Config = IoThrottleConfig

    def __init__(self, config: IoThrottleConfig, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._where: _cgroup.ContainerCgroup | None = None
        self._device: str | None = None
        self._old: dict[str, str] = {}

    def inject(self) -> str:
        cfg = self.config
        cgroup = self._target_cgroup()
        folder = cgroup.require("io", fault=self.type, target=self.target)
        self._where = _cgroup.ContainerCgroup(cgroup.pid, cgroup.version,
                                              {_io_key(cgroup.version): folder})
        self._device = cfg.device or data_root_disk(self.ctx.api)
        wanted = {key: str(getattr(cfg, key)) for key in _cgroup.IO_KEYS
                  if getattr(cfg, key) is not None}
        now = cgroup.io_limits(self._device)
        self._old = {key: now[key] for key in wanted}
        cgroup.set_io_limits(self._device, wanted)
        applied = ", ".join(f"{key}={value}" for key, value in wanted.items())
        return f"throttled {self.target} on disk {self._device}: {applied}"

    def rollback(self) -> str:
        if self._where is None or self._device is None or not self._old:
            return "nothing was changed"
        return _lift(self._where, self._device, self._old, self.target)

    def undo_record(self) -> dict[str, Any] | None:
        where = self._where
        return {"cgroup": str(next(iter(where.dirs.values()))) if where else None,
                "version": where.version if where else None, "device": self._device,
                "old": self._old}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        folder, device = record.get("cgroup"), record.get("device")
        if not folder or not device:
            return "nothing was changed"
        version: _cgroup.Version = 2 if record.get("version") == 2 else 1
        where = _cgroup.ContainerCgroup(0, version, {_io_key(version): Path(folder)})
        old = {str(k): str(v) for k, v in dict(record.get("old") or {}).items()}
        return _lift(where, str(device), old, folder)


def _io_key(version: int) -> str:
    """Key of the I/O directory in :attr:`ContainerCgroup.dirs`."""
    return "blkio" if version == 1 else ""


def _lift(where: _cgroup.ContainerCgroup, device: str, old: dict[str, str], name: str) -> str:
    folder = next(iter(where.dirs.values()))
    if not folder.is_dir():
        return f"{name}: its cgroup is gone (the container stopped): nothing to lift"
    where.set_io_limits(device, old)
    return f"lifted the I/O throttle of {name}"


def data_root_disk(api: Any) -> str:
    """``major:minor`` of the whole disk holding the engine's data root (partitions are
    mapped to their disk, which is what blkio throttles accept)."""
    root = str(api.info().get("DockerRootDir") or "/var/lib/docker")
    try:
        dev = os.stat(root).st_dev
    except OSError as exc:
        raise ChaosError(f"cannot stat the engine's data root {root}: {exc}",
                         hint="io_throttle needs the engine on this host") from exc
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        raise ChaosError(f"the engine's data root {root} is on a virtual filesystem "
                         f"(device 0:{minor}), which has no disk to throttle",
                         hint='name the disk with device = "major:minor" (see lsblk)')
    sysfs = Path(f"/sys/dev/block/{major}:{minor}")
    if (sysfs / "partition").exists():
        parent = (sysfs.resolve().parent / "dev").read_text(encoding="ascii").strip()
        return parent
    return f"{major}:{minor}"


FAULTS: list[type[Fault[Any]]] = [CpuLimit, CpuStress, MemoryLimit, MemoryPressure, DiskFill,
                             FdExhaustion, IoThrottle]
