"""A container's cgroup on either cgroup version: where it is and what its files say.

The one place the two versions differ for the faults, which otherwise ask for what they
mean ("memory usage", "the processes", "the I/O limits of this disk"):

==================  ======================================  ==============================
what                cgroup v1 (one hierarchy per controller)  cgroup v2 (unified hierarchy)
==================  ======================================  ==============================
where               ``<root>/<controller>/<path>``           ``<root>/<path>``
memory usage        ``memory.usage_in_bytes``                ``memory.current``
memory limit        ``memory.limit_in_bytes`` (-1: none)     ``memory.max`` ("max": none)
swap on top         ``memory.memsw.limit_in_bytes`` (total)  ``memory.swap.max`` (swap only)
kill the whole box  (no such knob)                           ``memory.oom.group`` = 1
OOM kills seen      ``memory.oom_control`` oom_kill          ``memory.events`` oom_kill
processes           ``cgroup.procs`` of any controller       ``cgroup.procs`` (no controller)
block I/O limits    ``blkio.throttle.*_device``, one a file  ``io.max``, one line a disk
==================  ======================================  ==============================

The version is decided per host at run time, the way runc and systemd decide it: a
``cgroup.controllers`` file at the root of the cgroup mount means the unified hierarchy
(a "hybrid" host, v1 controllers plus an empty v2 tree under ``unified/``, is v1).  The
container's path comes from ``/proc/<pid>/cgroup`` as the host sees it, so the engine's
cgroup driver does not matter (``system.slice/docker-<id>.scope`` for systemd,
``docker/<id>`` for cgroupfs).

:data:`ROOT` and :data:`PROC` are read at each call, so tests point them at a fake tree or
at a cgroup2 mounted for the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clnrm.errors import ChaosError

ROOT = Path("/sys/fs/cgroup")
"""Where the host mounts its cgroups (a cgroup2 mount itself on a v2 host)."""
PROC = Path("/proc")

Version = Literal[1, 2]

V1_CONTROLLER = {"memory": "memory", "io": "blkio", "pids": "pids", "cpu": "cpu"}
"""Controller names as v2 spells them -> the v1 hierarchy that does the job."""

IO_KEYS = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops",
           "write_iops": "wiops"}
"""io_throttle's parameters -> the keys of a v2 ``io.max`` line."""

V1_THROTTLES = {"read_bps": "blkio.throttle.read_bps_device",
                "write_bps": "blkio.throttle.write_bps_device",
                "read_iops": "blkio.throttle.read_iops_device",
                "write_iops": "blkio.throttle.write_iops_device"}

_MEMORY_FILES = {1: ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
                 2: ("memory.max", "memory.swap.max")}
_UNLIMITED = {1: "-1", 2: "max"}


def host_version() -> Version:
    """2 when the host runs the unified hierarchy (``<root>/cgroup.controllers`` exists)."""
    return 2 if (ROOT / "cgroup.controllers").exists() else 1


class CgroupUnsupported(ChaosError):
    """The host's cgroups lack what a fault needs; one line naming the version and what is
    missing (the fault adds its own name, see :meth:`ContainerCgroup.require`)."""


@dataclass(frozen=True)
class ContainerCgroup:
    """The cgroup(s) of one process, usually a container's first process."""

    pid: int
    version: Version
    dirs: dict[str, Path]
    """v1: controller -> its directory (only those present); v2: ``{"": the directory}``."""

    # -- where --------------------------------------------------------------------------

    def has(self, controller: str) -> bool:
        """Whether ``controller`` (v2 spelling: memory, io, pids, cpu) governs this cgroup."""
        if self.version == 1:
            return V1_CONTROLLER.get(controller, controller) in self.dirs
        return controller in self.controllers()

    def controllers(self) -> list[str]:
        """v2: the controllers enabled for this cgroup (its ``cgroup.controllers``)."""
        if self.version == 1:
            return sorted(self.dirs)
        try:
            return (self.dirs[""] / "cgroup.controllers").read_text(encoding="ascii").split()
        except OSError:
            return []

    def folder(self, controller: str) -> Path:
        """The directory holding ``controller``'s files; :class:`CgroupUnsupported` when
        the host does not give this cgroup that controller."""
        if self.version == 2:
            if controller not in self.controllers():
                enabled = " ".join(self.controllers()) or "none"
                raise CgroupUnsupported(
                    f"host cgroup v2: the {controller} controller is not enabled for "
                    f"{self.dirs['']} (its cgroup.controllers: {enabled})",
                    hint=f"enable {controller} in the parent's cgroup.subtree_control (with "
                         "systemd: Delegate=yes for the engine's unit), or leave this out")
            return self.dirs[""]
        name = V1_CONTROLLER.get(controller, controller)
        if name not in self.dirs:
            raise CgroupUnsupported(
                f"host cgroup v1: no {name} controller for pid {self.pid} "
                f"(is {ROOT / name} mounted?)")
        return self.dirs[name]

    def require(self, controller: str, *, fault: str, target: str) -> Path:
        """:meth:`folder`, with the error naming the fault and its target."""
        try:
            return self.folder(controller)
        except CgroupUnsupported as exc:
            raise ChaosError(exc.message, fault=fault, target=target, hint=exc.hint) from None

    def read(self, controller: str, name: str) -> str:
        return (self.folder(controller) / name).read_text(encoding="ascii").strip()

    def write(self, controller: str, name: str, value: str) -> None:
        path = self.folder(controller) / name
        try:
            path.write_text(value, encoding="ascii")
        except OSError as exc:
            raise ChaosError(f"the kernel refused {path} = {value!r}: {exc}") from exc

    # -- processes ----------------------------------------------------------------------

    def procs_folder(self) -> Path:
        """A directory whose ``cgroup.procs`` lists the container's processes: v2 its one
        directory (every cgroup has the file); v1 the pids hierarchy, else any other."""
        if self.version == 2:
            return self.dirs[""]
        for name in ("pids", "memory", "cpu", *sorted(self.dirs)):
            if name in self.dirs:
                return self.dirs[name]
        raise CgroupUnsupported(f"host cgroup v1: pid {self.pid} is in no cgroup clnrm "
                                "can list processes of")

    # -- memory -------------------------------------------------------------------------

    def memory_usage(self) -> int:
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return int(self.read("memory", name).split()[0])

    def memory_snapshot(self) -> dict[str, str]:
        """Exact contents of the memory limit files (the swap one only where the kernel
        accounts swap), for :meth:`restore_memory`."""
        folder = self.folder("memory")
        return {name: (folder / name).read_text(encoding="ascii").strip()
                for name in _MEMORY_FILES[self.version] if (folder / name).exists()}

    def restore_memory(self, snapshot: dict[str, str] | None = None) -> None:
        """Write a :meth:`memory_snapshot` back, or "no limit" when None.

        v1 requires ``memsw >= limit`` at every step, so the total is opened first, then
        the limit and the total are written; v2's two files are independent.
        """
        folder = self.folder("memory")
        limit, swap = _MEMORY_FILES[self.version]
        if snapshot is None:
            snapshot = {n: _UNLIMITED[self.version] for n in (limit, swap)
                        if (folder / n).exists()}
        if self.version == 1 and swap in snapshot:
            self.write("memory", swap, "-1")
        for name in (limit, swap):
            if name in snapshot:
                self.write("memory", name, snapshot[name])

    def oom_kills(self) -> int:
        """OOM kills the kernel counted in this cgroup (0 where it keeps no count)."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.folder("memory") / name).read_text(encoding="ascii")
        except (OSError, CgroupUnsupported):
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    # -- block I/O ----------------------------------------------------------------------

    def io_limits(self, device: str) -> dict[str, str]:
        """The device's current limits by io_throttle key: v1 ``"0"`` (no rule) or the
        value; v2 ``"max"`` or the value, read from its ``io.max`` line."""
        folder = self.folder("io")
        if self.version == 1:
            return {key: _v1_rule(folder / name, device) for key, name in V1_THROTTLES.items()}
        found = dict.fromkeys(IO_KEYS, "max")
        by_v2 = {v: k for k, v in IO_KEYS.items()}
        for line in (folder / "io.max").read_text(encoding="ascii").splitlines():
            dev, *pairs = line.split()
            if dev != device:
                continue
            for pair in pairs:
                key, _, value = pair.partition("=")
                if key in by_v2:
                    found[by_v2[key]] = value
        return found

    def set_io_limits(self, device: str, limits: dict[str, str]) -> None:
        """Set the given limits of ``device`` (keys as in :data:`IO_KEYS`; v1 ``"0"`` and v2
        ``"max"`` lift one).  v2 takes one line naming all four keys, so the line read
        back afterwards is exactly the one written (all ``max``: the line disappears)."""
        folder = self.folder("io")
        if self.version == 1:
            for key, value in limits.items():
                _write_io(folder / V1_THROTTLES[key], f"{device} {value}")
            return
        merged = {**self.io_limits(device), **limits}
        line = " ".join([device] + [f"{IO_KEYS[k]}={merged[k]}" for k in IO_KEYS])
        _write_io(folder / "io.max", line)


def _v1_rule(path: Path, device: str) -> str:
    for line in path.read_text(encoding="ascii").splitlines():
        dev, _, value = line.partition(" ")
        if dev == device:
            return value.strip()
    return "0"


def _write_io(path: Path, line: str) -> None:
    try:
        path.write_text(line, encoding="ascii")
    except OSError as exc:
        raise ChaosError(f"the kernel refused {path.name} = {line!r}: {exc}",
                         hint="I/O limits need a whole disk (not a partition) with a "
                              "request queue; give device = \"major:minor\"") from exc


def of_pid(pid: int) -> ContainerCgroup:
    """The cgroup(s) ``pid`` is in, on this host's cgroup version."""
    try:
        lines = (PROC / str(pid) / "cgroup").read_text(encoding="ascii").splitlines()
    except OSError as exc:
        raise ChaosError(f"cannot read the cgroups of pid {pid}: {exc}") from exc
    version = host_version()
    if version == 2:
        for line in lines:
            hierarchy, _, path = line.split(":", 2)
            if hierarchy == "0":
                folder = ROOT / path.lstrip("/")
                if folder.is_dir():
                    return ContainerCgroup(pid, 2, {"": folder})
                raise ChaosError(f"host cgroup v2: pid {pid}'s cgroup {folder} does not exist "
                                 "(clnrm in another cgroup namespace?)")
        raise ChaosError(f"host cgroup v2: pid {pid} is in no unified cgroup")
    dirs: dict[str, Path] = {}
    for line in lines:
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            name = name.removeprefix("name=")
            folder = ROOT / name / path.lstrip("/")
            if name and folder.is_dir():
                dirs[name] = folder
    return ContainerCgroup(pid, 1, dirs)


def of_container(pid: int, *, fault: str, target: str) -> ContainerCgroup:
    """:func:`of_pid` for a fault: errors name the fault and its target."""
    try:
        return of_pid(pid)
    except ChaosError as exc:
        raise ChaosError(exc.message, fault=fault, target=target, hint=exc.hint) from None
