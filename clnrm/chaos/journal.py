"""What ``clnrm gc`` needs to undo faults after a SIGKILL.

Rollback normally runs in-process (``finally``, signal handlers).  A SIGKILL
leaves faults applied: a paused container, a lowered limit, a chaos proxy still
running as an orphaned host process.  So before each injection the engine appends
the fault's undo record to a per-run journal (one JSON object per line, flushed and
fsynced), and appends a ``done`` line after the rollback.  ``clnrm gc`` (and the
start of every run) replays the pending records of runs whose owner process is
gone, then deletes the journal.  Containers of a dead run are removed afterwards
anyway; undoing first still matters for what outlives them (proxy processes) and
makes gc's report say what was left in which state.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("clnrm.chaos")

PROXY_RECORD = "__proxy__"
"""Journal type of a chaos proxy process (undo: kill it if it is still the same process)."""


def journal_dir() -> Path:
    """``$CLNRM_STATE_DIR/chaos``, else ``$XDG_STATE_HOME/clnrm/chaos`` or
    ``~/.local/state/clnrm/chaos``."""
    base = os.environ.get("CLNRM_STATE_DIR")
    if base:
        return Path(base) / "chaos"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "clnrm" / "chaos"


@dataclass(frozen=True, slots=True)
class PendingUndo:
    entry_id: str
    type: str
    record: dict[str, Any]


class Journal:
    """Append-only undo log of one run (shared by its tests; thread-safe)."""

    def __init__(self, run_id: str, owner: str, *, directory: Path | None = None) -> None:
        self.run_id = run_id
        self.owner = owner
        self.path = (directory or journal_dir()) / f"{run_id}.jsonl"
        self._lock = threading.Lock()
        self._open: set[str] = set()

    def _append(self, obj: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as fh:
            if fresh:
                fh.write(json.dumps({"run_id": self.run_id, "owner": self.owner}) + "\n")
            fh.write(json.dumps(obj, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def record(self, entry_id: str, fault_type: str, undo: dict[str, Any]) -> None:
        """Before injecting: how to undo ``entry_id`` if this process dies."""
        with self._lock:
            self._append({"id": entry_id, "type": fault_type, "undo": undo})
            self._open.add(entry_id)

    def done(self, entry_id: str) -> None:
        """After a rollback: nothing of ``entry_id`` is left to undo."""
        with self._lock:
            if entry_id in self._open:
                self._append({"id": entry_id, "done": True})
                self._open.discard(entry_id)

    def close(self) -> None:
        """Delete the journal once nothing in it is pending."""
        with self._lock:
            if not self._open:
                self.path.unlink(missing_ok=True)


def read_journal(path: Path) -> tuple[dict[str, Any], list[PendingUndo]]:
    """Header and pending (recorded, not done) entries; tolerates a torn last line."""
    header: dict[str, Any] = {}
    entries: dict[str, PendingUndo] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # the process died mid-write
            if n == 0 and "owner" in obj:
                header = obj
            elif obj.get("done"):
                entries.pop(str(obj.get("id")), None)
            elif "id" in obj and "type" in obj:
                entries[str(obj["id"])] = PendingUndo(str(obj["id"]), str(obj["type"]),
                                                      dict(obj.get("undo") or {}))
    return header, list(entries.values())


def replay_dead_journals(api: Any, *, everything: bool = False,
                         directory: Path | None = None) -> list[str]:
    """Undo what dead runs left applied; return one line per undo for gc's report.

    Runs whose owner is alive are skipped (their own rollback will run) unless
    ``everything``.  Undo failures are reported, not raised: gc must go on to
    remove the containers either way.
    """
    from clnrm.chaos.catalog import fault_types
    from clnrm.chaos.context import UndoEnv
    from clnrm.labels import owner_alive

    folder = directory or journal_dir()
    if not folder.is_dir():
        return []
    lines: list[str] = []
    undoers: dict[str, Any] | None = None
    env = UndoEnv(api=api)
    for path in sorted(folder.glob("*.jsonl")):
        try:
            header, pending = read_journal(path)
        except OSError:
            continue
        if not everything and owner_alive(str(header.get("owner", ""))):
            continue
        run = header.get("run_id", path.stem)
        for entry in reversed(pending):  # last applied, first undone
            try:
                if undoers is None:  # the fault registry, plus the proxy processes
                    undoers = {PROXY_RECORD: ProxyProcess, **fault_types()}
                cls = undoers.get(entry.type)
                what = (cls.undo(entry.record, env) if cls is not None
                        else f"unknown fault type {entry.type!r}: left as is")
            except Exception as exc:
                what = f"undo failed: {type(exc).__name__}: {exc}"
            lines.append(f"run {run}: {entry.type} {entry.entry_id}: {what}")
            log.info("chaos.gc_undo", run=run, fault=entry.type, entry=entry.entry_id,
                     result=what)
        path.unlink(missing_ok=True)
    return lines


class ProxyProcess:
    """The journal entry of a chaos proxy process, undone like a fault type's entries
    (``undo(record, env)``) so replay is one registry lookup."""

    type = PROXY_RECORD

    @classmethod
    def undo(cls, record: dict[str, Any], env: object = None) -> str:
        return undo_proxy(record)


def undo_proxy(record: dict[str, Any]) -> str:
    """Kill an orphaned chaos proxy, but only if the pid is still that process."""
    import signal

    from clnrm.labels import process_start_time

    pid = int(record.get("pid") or 0)
    if pid <= 0:
        return "no pid recorded"
    try:
        if process_start_time(pid) != record.get("start"):
            return f"proxy pid {pid} already gone"
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, FileNotFoundError, OSError):
        return f"proxy pid {pid} already gone"
    return f"killed orphaned chaos proxy pid {pid}"
