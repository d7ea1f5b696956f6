"""This host's processes as /proc shows them (Linux): who is alive, who descends from whom.

Cleanup decisions hang on these answers (reap a dead owner's containers, end what a
killed driver's Ray tree left running, stop a cluster node's whole group), so they are
made one way everywhere: a zombie counts as dead (it runs nothing; its parent has just
not reaped it), and process names with spaces or parentheses are parsed from the last
``)`` of ``/proc/PID/stat``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple


class Proc(NamedTuple):
    comm: str
    state: str  # R, S, D, Z, ...
    ppid: int
    pgid: int


def proc(pid: int) -> Proc | None:
    """One process's entry, or None when it is gone (or /proc is not there)."""
    try:
        return _parse(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return None


def proc_table(*, zombies: bool = False) -> dict[int, Proc]:
    """Every process of this host, zombies left out unless asked for."""
    table: dict[int, Proc] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            entry = _parse(stat.read_text())
        except (OSError, IndexError, ValueError):
            continue
        if zombies or entry.state != "Z":
            table[int(stat.parent.name)] = entry
    return table


def pid_alive(pid: int) -> bool:
    entry = proc(pid)
    return entry is not None and entry.state != "Z"


def group_alive(pgid: int) -> bool:
    """Any live process of process group ``pgid`` (no need to be its parent)."""
    return any(p.pgid == pgid for p in proc_table().values())


def descendants(root: int) -> set[int]:
    """Pids below ``root`` (children, their children, ...), zombies included: a killed
    tree's zombies still hold their place until reaped."""
    parents = {pid: p.ppid for pid, p in proc_table(zombies=True).items()}
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def ancestor_running(pid: int, prefix: str, within: set[int]) -> int | None:
    """The process at or above ``pid``, inside ``within``, whose command line starts with
    ``prefix``: which Ray worker (``ray::``) a container's owner runs in, when only the
    owner's pid is on the container's label."""
    parents = {p: info.ppid for p, info in proc_table(zombies=True).items()}
    while pid in within:
        if cmdline(pid).startswith(prefix):
            return pid
        pid = parents.get(pid, 0)
    return None


def environ(pid: int) -> list[bytes]:
    """``NAME=value`` entries the process started with; [] when gone or not ours to read."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def with_environ(entry: str, table: Mapping[int, Proc] | None = None) -> list[int]:
    """Live processes (never this one) started with ``entry`` (``NAME=value``) in their
    environment: a marker set before spawning reaches every descendant, even those that
    left the process tree or renamed themselves, as Ray's workers do.  ``table`` is a
    :func:`proc_table` the caller already read (one pass over /proc, not two)."""
    needle = entry.encode()
    me = os.getpid()
    return [pid for pid in (proc_table() if table is None else table)
            if pid != me and needle in environ(pid)]


def cmdline(pid: int) -> str:
    """The command line with spaces for NULs; "" when the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return ""


def _parse(text: str) -> Proc:
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return Proc(head.partition("(")[2], fields[0], int(fields[1]), int(fields[2]))
