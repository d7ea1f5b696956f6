"""Running host programs inside a container's network namespace.

Faults that need the kernel's view from inside a container (iptables rules, the
chaos proxy listening on the container's own address) use ``nsenter --net``
rather than ``docker exec``: the target image need not ship iptables or Python,
and only the network namespace is entered, so the host's binaries and files are
used.  The pid is the container's init as the engine reports it; it changes when
the container restarts, so callers look it up each time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from clnrm.errors import ChaosError


def container_pid(api: Any, cid: str) -> int:
    """Host pid of the container's first process; ChaosError when it is not running."""
    state = api.inspect_container(cid)["State"]
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or pid <= 0:
        raise ChaosError(f"container {cid[:12]} is not running ({state.get('Status')})")
    return pid


def nsenter_argv(pid: int, argv: Sequence[str]) -> list[str]:
    tool = shutil.which("nsenter")
    if tool is None:
        raise ChaosError("nsenter is not installed on this host",
                         hint="apt-get install util-linux")
    return [tool, "-t", str(pid), "-n", "--", *argv]


def run_in_netns(pid: int, argv: Sequence[str], *, timeout: float = 10.0,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run argv in the network namespace of ``pid``; raise ChaosError with stderr on failure."""
    try:
        done = subprocess.run(nsenter_argv(pid, argv), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ChaosError(f"{' '.join(argv)} timed out after {timeout:g} s in netns of "
                         f"pid {pid}") from exc
    if check and done.returncode != 0:
        raise ChaosError(f"{' '.join(argv)} failed in netns of pid {pid} "
                         f"(exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return done


def popen_in_netns(pid: int, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a long-lived host program (the chaos proxy) inside the netns of ``pid``."""
    return subprocess.Popen(nsenter_argv(pid, argv), **kwargs)


def iptables(pid: int, *rule: str, table: str = "filter", check: bool = True) -> bool:
    """Run one iptables command in the netns; True when it succeeded.

    ``-w`` waits for the xtables lock: several faults may edit rules of different
    containers at once and iptables-nft still serialises on one host lock.
    """
    tool = shutil.which("iptables")
    if tool is None:
        raise ChaosError("iptables is not installed on this host",
                         hint="apt-get install iptables")
    return run_in_netns(pid, [tool, "-w", "5", "-t", table, *rule],
                        check=check).returncode == 0
