"""Host-side helpers the container and resource faults share: processes, limits, execs.

The faults run as root on the engine's host (a local engine is what clnrm supports),
so they can do what the engine's API cannot: write a process's ``oom_score_adj``,
change another process's rlimits, put a cgroup file back (cgroup files, for both
cgroup versions, are :mod:`._cgroup`'s).  Everything here takes the container's id or
a host pid and touches nothing else.

Engine quirks handled here, each measured on dockerd 20.10 / cgroup v1:

- ``docker update`` cannot take a memory limit away again (``Memory: -1`` is refused
  with "Minimum memory limit allowed is 6MB", ``0`` means "unchanged"), so
  :func:`restore_memory` sets the engine's record to the host's RAM (what "no limit"
  amounts to) and writes the kernel's own "no limit" into the cgroup (v1 ``-1``,
  v2 ``max``; or the exact contents read before the fault) so the kernel's view is
  exactly what it was.  The engine refuses ``-1`` on cgroup v2 as well (the 6 MiB check
  comes before the cgroup driver).
- ``CpuQuota: -1`` is accepted and means unlimited, so CPU limits restore exactly.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from clnrm.chaos.faults import _cgroup
from clnrm.errors import ChaosError

MIN_MEMORY = 6 << 20
"""The engine refuses memory limits below 6 MiB."""


def start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (clock ticks since boot), None when it is gone; with the
    pid it names one process for good, so a recorded pid is never mistaken after reuse."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def same_process(pid: int, started: str | None) -> bool:
    return pid > 0 and started is not None and start_time(pid) == started


def kill_if_same(pid: int, started: str | None, sig: int = signal.SIGKILL) -> bool:
    """Signal ``pid`` only if it is still the process recorded; True when signalled."""
    if not same_process(pid, started):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def nofile(pid: int) -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of ``pid``, from ``/proc/<pid>/limits`` (readable by all)."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return (_limit(soft), _limit(hard))
    raise ChaosError(f"no open-files limit in /proc/{pid}/limits")


def _limit(text: str) -> int:
    return resource.RLIM_INFINITY if text == "unlimited" else int(text)


def set_nofile(pid: int, soft: int, hard: int) -> None:
    """Set the open-files limits of another process.

    ``prlimit(2)`` on another user's process needs CAP_SYS_RESOURCE, which a
    containerised CI runner (this project's, for one) may not grant even to root.
    The kernel also allows it to a caller whose real uid and gid are the target's, so
    without the capability ``prlimit`` runs as the target's user.  Either way the hard
    limit can only be raised with the capability: callers lower the soft limit only.
    """
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        return
    except PermissionError:
        pass
    uid, gid = _owner(pid)
    tool = shutil.which("prlimit")
    if tool is None:
        raise ChaosError("prlimit is not installed on this host (and clnrm lacks "
                         "CAP_SYS_RESOURCE to change another user's limits itself)",
                         hint="apt-get install util-linux")
    done = subprocess.run([tool, "--pid", str(pid), f"--nofile={soft}:{hard}"],
                          user=uid, group=gid, extra_groups=[], cwd="/",
                          capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise ChaosError(f"prlimit --pid {pid} --nofile={soft}:{hard} as uid {uid} failed: "
                         f"{done.stderr.strip()[-200:]}")


def _owner(pid: int) -> tuple[int, int]:
    """Real uid and gid of ``pid``; ChaosError when its ids differ (setuid programs), since
    then no unprivileged caller may change its limits."""
    ids: dict[str, list[int]] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Uid", "Gid"):
                ids[key] = [int(v) for v in rest.split()[:3]]
    uids, gids = ids.get("Uid", [-1]), ids.get("Gid", [-1])
    if len(set(uids)) != 1 or len(set(gids)) != 1:
        raise ChaosError(f"pid {pid} runs with mixed ids (uid {uids}, gid {gids}); changing "
                         "its limits needs CAP_SYS_RESOURCE, which clnrm does not have here")
    return uids[0], gids[0]


def oom_score_adj(pid: int) -> str:
    with open(f"/proc/{pid}/oom_score_adj", encoding="ascii") as fh:
        return fh.read().strip()


def set_oom_score_adj(pid: int, value: str) -> None:
    """Written from the host: raising it needs nothing, lowering it CAP_SYS_RESOURCE,
    which a container's root lacks."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w", encoding="ascii") as fh:
            fh.write(value)
    except OSError as exc:
        raise ChaosError(f"cannot set oom_score_adj of pid {pid}: {exc}") from exc


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limits(api: Any, cid: str) -> dict[str, int]:
    """The engine's record of the container's memory limits (0: none).  A limit of the
    host's RAM or more is what :func:`restore_memory` leaves for "none", and read as such."""
    host = api.inspect_container(cid)["HostConfig"]
    memory, memswap = int(host.get("Memory") or 0), int(host.get("MemorySwap") or 0)
    if memory >= host_memory():
        return {"memory": 0, "memswap": 0}
    return {"memory": memory, "memswap": memswap}


def set_memory(api: Any, cid: str, limit: int) -> None:
    """Limit RAM to ``limit`` bytes with no swap on top (memswap = memory)."""
    limit = max(limit, MIN_MEMORY)
    try:
        api.update_container(cid, mem_limit=limit, memswap_limit=limit)
    except Exception as exc:
        text = str(getattr(exc, "explanation", None) or exc)
        hint = ("the kernel could not reclaim enough memory to fit the new limit; choose a "
                "limit above the container's current usage") if "busy" in text.lower() else None
        raise ChaosError(f"could not set the memory limit to {limit >> 20} MiB: "
                         f"{text.strip()[:300]}", hint=hint) from exc


def restore_memory(api: Any, cid: str, old: dict[str, int],
                   kernel: dict[str, str] | None = None) -> None:
    """Put back the limits recorded by :func:`memory_limits` in the engine and, while the
    container runs, the kernel's: exactly the files of ``kernel`` (a
    :meth:`~clnrm.chaos.faults._cgroup.ContainerCgroup.memory_snapshot`) when given, else
    "no limit" when there was none (see the module docstring for why the engine's record
    of "no limit" is the host's RAM)."""
    memory, memswap = old.get("memory", 0), old.get("memswap", 0)
    if memory > 0:
        api.update_container(cid, mem_limit=memory,
                             memswap_limit=memswap if memswap != 0 else memory * 2)
    else:
        api.update_container(cid, mem_limit=host_memory(), memswap_limit=host_memory())
    if memory > 0 and not kernel:
        return
    state = api.inspect_container(cid)["State"]
    if not state.get("Running"):
        return  # the next start applies the engine's record
    _cgroup.of_pid(int(state["Pid"])).restore_memory(kernel or None)


def container_state(api: Any, cid: str) -> dict[str, Any] | None:
    """``State`` of the container, None once it has been removed."""
    try:
        return dict(api.inspect_container(cid)["State"])
    except Exception as exc:
        if type(exc).__name__ == "NotFound":
            return None
        raise


def hog_argv(size: int) -> list[str]:
    """A shell that holds ``size`` bytes in a variable and then idles.

    Shell-only (``head`` and ``tr`` are in every Debian and busybox image); the bytes
    are translated away from NUL because shells drop NULs from command substitutions.
    The idle loop uses short sleeps so that killing the shell leaves no long-lived child.
    """
    return ["sh", "-c", f"x=$(head -c {int(size)} /dev/zero | tr '\\0' x); "
                        "while :; do sleep 1; done"]


def kill_exec(api: Any, exec_id: str) -> bool:
    """SIGKILL a background exec by its host pid; False when it had already ended."""
    try:
        info = api.exec_inspect(exec_id)
    except Exception:
        return False
    pid = int(info.get("Pid") or 0)
    # the engine notices an exit a moment late: a dead or zombie pid counts as ended
    if not info.get("Running") or pid <= 0 or _proc_state(pid) in (None, "Z", "X"):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    # a throttled cgroup runs the dying task only in its next period: wait so "killed"
    # means gone (and its CPU or memory free) when the caller goes on
    deadline = time.monotonic() + 2.0
    while _proc_state(pid) not in (None, "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.01)
    return True


def exec_alive(api: Any, exec_id: str) -> bool:
    try:
        return bool(api.exec_inspect(exec_id).get("Running"))
    except Exception:
        return False


def exec_as_root(api: Any, cid: str, argv: list[str]) -> tuple[int, str]:
    """Run argv in the container as root and wait: (exit code, stdout+stderr).

    Root because faults write where the service's own user may not (``/etc``, a data
    directory); the container's root is still confined by its namespaces and caps.
    """
    exec_id = api.exec_create(cid, argv, user="root")["Id"]
    out = api.exec_start(exec_id)
    code = api.exec_inspect(exec_id).get("ExitCode")
    text = out.decode("utf-8", errors="replace") if isinstance(out, bytes) else str(out)
    return int(code if code is not None else -1), text


def exec_running(api: Any, exec_id: str, timeout: float = 3.0) -> int:
    """Wait until a background exec has a host pid; the pid (0: it ended or never ran)."""
    deadline = time.monotonic() + timeout
    while True:
        info = api.exec_inspect(exec_id)
        pid = int(info.get("Pid") or 0)
        if info.get("Running") and pid > 0:
            return pid
        if info.get("ExitCode") is not None or time.monotonic() > deadline:
            return 0
        time.sleep(0.02)


def delete_in_container(api: Any, cid: str, path: str) -> str:
    """Delete a file of the container: by exec while it runs, else from its writable layer
    on the host (a file on a tmpfs went with the stopped container anyway)."""
    state = container_state(api, cid)
    if state is None:
        return "container gone"
    if state.get("Running"):
        code, out = exec_as_root(api, cid, ["rm", "-f", path])
        if code == 0:
            return f"deleted {path}"
        raise ChaosError(f"could not delete {path}: {out.strip()[-200:]}")
    # not running: the file is in the writable layer (a tmpfs went with the container)
    upper = ((api.inspect_container(cid).get("GraphDriver") or {}).get("Data") or {}) \
        .get("UpperDir")
    if upper:
        host_path = Path(upper) / path.lstrip("/")
        if host_path.is_file():
            host_path.unlink()
            return f"deleted {path} from the stopped container's layer"
    return f"{path} is already gone"
