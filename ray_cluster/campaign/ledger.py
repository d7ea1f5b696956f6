"""The campaign ledger: the one durable record of what a campaign planned, ran and found.

**Why SQLite.**  A campaign must survive SIGKILL of its driver, of a worker and of the
memory server, and count every unit exactly once.  SQLite (stdlib ``sqlite3``) gives that
with no server to lose: every write is one transaction, WAL with ``synchronous=FULL`` makes
a committed transaction durable and an interrupted one invisible, and a PRIMARY KEY on the
unit id turns "record once" into ``INSERT OR IGNORE`` (a second record of the same unit is a
no-op the caller can see).  The memory (Chroma) is deliberately *not* the ledger: it has no
transactions or compare-and-set, and losing it is one of the crashes a campaign survives.

One file per campaign: ``<campaign home>/<id>/ledger.sqlite3`` where the home is
``$CLNRM_CAMPAIGNS``, else ``~/.clnrm/campaigns``.  Rows hold the pydantic models of
:mod:`clnrm.swarm.campaign.model` as JSON, so the file format is those models.

A result and the finding it names are written in the same transaction
(:meth:`Ledger.record`), so a kill between them cannot count a finding without its unit or
a unit without its finding.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clnrm.swarm.campaign.model import (
    CampaignSpec,
    CampaignState,
    CampaignStatus,
    Finding,
    UnitResult,
    UnitSpec,
)

from clnrm.errors import ClnrmError
from clnrm.procs import pid_alive, with_environ

SCHEMA_VERSION = 1
# A driver heartbeats every few seconds; one silent for this long is gone even if its pid
# was reused by another process (or it ran on another host, where the pid means nothing).
HEARTBEAT_STALE_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE, spec TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS results (
    unit TEXT PRIMARY KEY REFERENCES units(id), idx INTEGER NOT NULL, result TEXT NOT NULL,
    recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS findings (key TEXT PRIMARY KEY, finding TEXT NOT NULL);
"""


class LedgerError(ClnrmError):
    """A campaign ledger is missing, exists already, or is not a clnrm ledger."""


def campaign_home() -> Path:
    """``$CLNRM_CAMPAIGNS``, else ``~/.clnrm/campaigns``."""
    env = os.environ.get("CLNRM_CAMPAIGNS")
    return Path(env).expanduser() if env else Path.home() / ".clnrm" / "campaigns"


def ledger_path(campaign_id: str, home: Path | None = None) -> Path:
    return (home or campaign_home()) / campaign_id / "ledger.sqlite3"


def list_campaigns(home: Path | None = None) -> list[str]:
    """The ids of every campaign under the home, sorted."""
    root = home or campaign_home()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/ledger.sqlite3"))


DRIVER_ENV = "CLNRM_CAMPAIGN_DRIVER"
"""Set by a driver before embedded Ray starts, so every process of its Ray inherits it."""


def driver_marker(campaign_id: str, pid: int) -> str:
    return f"{DRIVER_ENV}={campaign_id}:{pid}"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), so a reused pid is not taken for the
    driver that owned the campaign; None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class Ledger:
    """One campaign's ledger file.  Every method is one short transaction; a Ledger may be
    shared by threads of one process (a lock serialises them) and opened by any number of
    processes at once (``status`` and ``stop`` while the driver runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA foreign_keys=ON")

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: CampaignSpec, home: Path | None = None) -> Ledger:
        """A new ledger for ``spec`` (``stopped`` until a driver claims it); an existing id
        is an error."""
        path = ledger_path(spec.id, home)
        if path.exists():
            raise LedgerError(f"campaign {spec.id!r} exists already ({path})",
                              hint=f"`clnrm campaign resume {spec.id}` continues it")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Built aside and linked into place: a ledger file is never seen half-made by a
        # concurrent `status`, and two starts of one id cannot both win (link refuses).
        draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
        draft.unlink(missing_ok=True)
        ledger = cls(draft)
        try:
            with ledger._tx() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                ledger._put(db, "schema", SCHEMA_VERSION)
                ledger._put(db, "spec", spec.model_dump(mode="json"))
                ledger._put(db, "state", CampaignState.stopped.value)  # until claimed
                ledger._put(db, "reason", "not driven yet")
                ledger._put(db, "stop_requested", False)
            ledger.close()  # the last connection folds the WAL into the file
            try:
                os.link(draft, path)
            except FileExistsError:
                raise LedgerError(f"campaign {spec.id!r} exists already ({path})") from None
        finally:
            ledger.close()
            for leftover in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
                leftover.unlink(missing_ok=True)
        return cls(path)

    @classmethod
    def open(cls, campaign_id: str, home: Path | None = None) -> Ledger:
        """The ledger of an existing campaign; an unknown id is an error naming the home."""
        path = ledger_path(campaign_id, home)
        if not path.is_file():
            raise LedgerError(f"no campaign {campaign_id!r} under {path.parent.parent}",
                              hint="`clnrm campaign list` shows the campaigns there")
        ledger = cls(path)
        try:
            version = ledger._get("schema")
        except sqlite3.DatabaseError as exc:
            ledger.close()
            raise LedgerError(f"{path} is not a campaign ledger: {exc}") from None
        if version != SCHEMA_VERSION:
            ledger.close()
            raise LedgerError(f"{path}: ledger schema {version!r}, this clnrm reads "
                              f"{SCHEMA_VERSION}")
        return ledger

    def close(self) -> None:
        with self._lock:
            self._db.close()  # closing twice is harmless

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so two writers
        queue instead of failing half-way."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _put(db: sqlite3.Connection, key: str, value: Any) -> None:
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                   (key, json.dumps(value)))

    def _get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- the campaign --------------------------------------------------------------------
    @property
    def spec(self) -> CampaignSpec:
        return CampaignSpec.model_validate(self._get("spec"))

    def state(self) -> CampaignState:
        return CampaignState(self._get("state"))

    def reason(self) -> str:
        return str(self._get("reason", ""))

    def set_state(self, state: CampaignState, reason: str = "") -> None:
        with self._tx() as db:
            self._put(db, "state", CampaignState(state).value)
            self._put(db, "reason", reason)

    def request_stop(self) -> None:
        """Ask the running driver to stop after its current units (``campaign stop``)."""
        with self._tx() as db:
            self._put(db, "stop_requested", True)

    def stop_requested(self) -> bool:
        return bool(self._get("stop_requested", False))

    # -- ownership -----------------------------------------------------------------------
    def claim(self, pid: int | None = None) -> None:
        """This process drives the campaign now: owner, fresh heartbeat, state running,
        any earlier stop request forgotten."""
        pid = os.getpid() if pid is None else pid
        with self._tx() as db:
            self._put(db, "owner", {"pid": pid, "host": socket.gethostname(),
                                    "start": _process_start(pid), "heartbeat": time.time()})
            self._put(db, "state", CampaignState.running.value)
            self._put(db, "reason", "")
            self._put(db, "stop_requested", False)

    def heartbeat(self, *, elapsed_s: float | None = None) -> None:
        """The owner is alive; ``elapsed_s`` is the campaign's running time so far (all
        drivers together: what ``--duration`` is measured against)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
            if row:
                owner = json.loads(row[0])
                owner["heartbeat"] = time.time()
                self._put(db, "owner", owner)
            if elapsed_s is not None:
                self._put(db, "elapsed_s", round(elapsed_s, 3))

    def set_processes(self, pids: set[int]) -> None:
        """The driver's process tree (embedded Ray: raylet, its agents, the workers), with
        start times, so a resume can end what a SIGKILLed driver's tree left running."""
        tree = [[pid, start] for pid in sorted(pids) if (start := _process_start(pid))]
        with self._tx() as db:
            self._put(db, "processes", {"host": socket.gethostname(), "tree": tree})

    def orphaned_processes(self) -> list[int]:
        """Processes of the recorded tree still running (same pid and start time) while the
        owner is gone; empty on another host or while the owner lives."""
        if self.owner_alive():
            return []
        saved = self._get("processes") or {}
        owner = self.owner() or {}
        found: set[int] = set()
        if saved.get("host") == socket.gethostname():
            found |= {pid for pid, start in saved.get("tree", []) if _process_start(pid) == start}
        if owner.get("host") == socket.gethostname() and owner.get("pid"):
            # what started after the tree was last recorded carries the driver's marker
            found |= set(with_environ(driver_marker(self.path.parent.name, int(owner["pid"]))))
        return sorted(found)

    def elapsed_s(self) -> float:
        return float(self._get("elapsed_s", 0.0))

    def owner(self) -> dict[str, Any] | None:
        owner = self._get("owner")
        return owner if isinstance(owner, dict) else None

    def owner_alive(self) -> bool:
        """Whether the process that claimed the campaign still drives it: same host, pid
        alive with the same start time, heartbeat fresh; elsewhere only the heartbeat."""
        owner = self.owner()
        if owner is None:
            return False
        fresh = time.time() - float(owner.get("heartbeat", 0)) < HEARTBEAT_STALE_S
        if owner.get("host") != socket.gethostname():
            return fresh
        pid = int(owner.get("pid", 0))
        if pid <= 0 or not pid_alive(pid):
            return False
        start = owner.get("start")
        return start is None or start == _process_start(pid)

    def shown_state(self) -> str:
        """The state as ``status`` prints it: a running campaign whose driver is gone is
        ``stopped (driver gone)``."""
        state = self.state()
        if state is CampaignState.running and not self.owner_alive():
            return "stopped (driver gone)"
        return state.value

    # -- units ---------------------------------------------------------------------------
    def plan(self, unit: UnitSpec) -> UnitSpec:
        """Plan ``unit`` once: planning an index again returns what was planned first, so a
        resumed driver replays the plan instead of drawing it anew."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO units(id, idx, spec) VALUES (?, ?, ?)",
                       (unit.id, unit.index, unit.model_dump_json()))
            row = db.execute("SELECT spec FROM units WHERE idx = ?", (unit.index,)).fetchone()
        return UnitSpec.model_validate_json(row[0])

    def start_attempt(self, unit_id: str) -> int:
        """Count one more hand-out of ``unit_id`` to a worker (durably, before it runs) and
        return its number: attempts > 1 are units redone after a crash."""
        with self._tx() as db:
            db.execute("UPDATE units SET attempts = attempts + 1 WHERE id = ?", (unit_id,))
            row = db.execute("SELECT attempts FROM units WHERE id = ?", (unit_id,)).fetchone()
        if row is None:
            raise LedgerError(f"unit {unit_id!r} was never planned")
        return int(row[0])

    def attempts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT id, attempts FROM units ORDER BY idx").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def planned(self) -> list[UnitSpec]:
        with self._lock:
            rows = self._db.execute("SELECT spec FROM units ORDER BY idx").fetchall()
        return [UnitSpec.model_validate_json(r[0]) for r in rows]

    def results(self) -> list[UnitResult]:
        with self._lock:
            rows = self._db.execute("SELECT result FROM results ORDER BY idx").fetchall()
        return [UnitResult.model_validate_json(r[0]) for r in rows]

    def pending(self) -> list[UnitSpec]:
        """Planned and not recorded, in plan order: what a resume redoes first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT spec FROM units WHERE id NOT IN (SELECT unit FROM results) "
                "ORDER BY idx").fetchall()
        return [UnitSpec.model_validate_json(r[0]) for r in rows]

    def counts(self) -> tuple[int, int]:
        """(units planned, units recorded)."""
        with self._lock:
            planned = self._db.execute("SELECT count(*) FROM units").fetchone()[0]
            done = self._db.execute("SELECT count(*) FROM results").fetchone()[0]
        return int(planned), int(done)

    def record(self, result: UnitResult, finding: Finding | None = None) -> bool:
        """Record ``result`` exactly once; False (and nothing written) when the unit was
        recorded already.  ``finding`` (the one ``result.finding`` names) is merged in the
        same transaction, so it counts this unit exactly once too."""
        if finding is not None and result.finding not in (None, finding.key):
            raise ValueError(f"result names finding {result.finding}, given {finding.key}")
        if finding is not None and result.finding is None:
            result = result.model_copy(update={"finding": finding.key})
        result = result.model_copy(update={"recorded_at": time.time()})
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO results(unit, idx, result, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (result.unit, result.index, result.model_dump_json(), result.recorded_at))
            new = cur.rowcount == 1
            if new and finding is not None:
                self._merge_finding(db, finding.model_copy(
                    update={"first_unit": finding.first_unit or result.unit}), result.unit)
        return new

    # -- findings ------------------------------------------------------------------------
    def add_finding(self, finding: Finding) -> Finding:
        """Insert ``finding`` or, when its key is known, count one more occurrence (once
        per unit: adding the same unit's finding again changes nothing).  Returns the
        stored finding."""
        with self._tx() as db:
            return self._merge_finding(db, finding, finding.first_unit)

    def update_finding(self, key: str, **fields: Any) -> Finding:
        """Set fields of a stored finding (its reproducer and verification, written after
        the unit was recorded)."""
        with self._tx() as db:
            row = db.execute("SELECT finding FROM findings WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise LedgerError(f"no finding {key!r} in {self.path}")
            stored = Finding.model_validate_json(row[0])
            updated = Finding.model_validate({**stored.model_dump(), **fields, "key": key})
            db.execute("UPDATE findings SET finding = ? WHERE key = ?",
                       (updated.model_dump_json(), key))
        return updated

    @staticmethod
    def _merge_finding(db: sqlite3.Connection, finding: Finding, unit: str) -> Finding:
        row = db.execute("SELECT finding FROM findings WHERE key = ?",
                         (finding.key,)).fetchone()
        if row is None:
            units = list(dict.fromkeys([*finding.units, unit] if unit else finding.units))
            stored = finding.model_copy(update={"units": units,
                                                "occurrences": max(1, len(units))})
            db.execute("INSERT INTO findings(key, finding) VALUES (?, ?)",
                       (finding.key, stored.model_dump_json()))
            return stored
        stored = Finding.model_validate_json(row[0])
        if unit and unit not in stored.units:
            stored = stored.model_copy(update={
                "units": [*stored.units, unit], "occurrences": stored.occurrences + 1,
                "reproducer": stored.reproducer or finding.reproducer})
            db.execute("UPDATE findings SET finding = ? WHERE key = ?",
                       (stored.model_dump_json(), finding.key))
        return stored

    def findings(self) -> list[Finding]:
        with self._lock:
            rows = self._db.execute("SELECT finding FROM findings ORDER BY key").fetchall()
        found = [Finding.model_validate_json(r[0]) for r in rows]
        return sorted(found, key=lambda f: (f.first_unit, f.key))

    # -- status --------------------------------------------------------------------------
    def status(self) -> CampaignStatus:
        """The issue's ``status --format json`` document; a ``running`` campaign whose
        driver is gone is ``stopped`` with the reason ``driver gone``."""
        planned, done = self.counts()
        results: list[dict[str, Any]] = []
        for r in self.results():
            item: dict[str, Any] = {"unit": r.unit, "outcome": r.outcome}
            if r.finding is not None:
                item["finding"] = r.finding
            item.update(attempt=r.attempt, worker=r.worker, duration_s=r.duration_s,
                        recorded_at=r.recorded_at)
            results.append(item)
        state, reason = self.state(), self.reason()
        if state is CampaignState.running and not self.owner_alive():
            state, reason = CampaignState.stopped, "driver gone"
        return CampaignStatus(id=self.spec.id, state=state, reason=reason,
                              units_planned=planned, units_done=done, results=results,
                              findings=self.findings())

    def integrity(self) -> list[str]:
        """Problems a crash could have caused, empty when none: SQLite's own check, results
        of unplanned units, findings whose count disagrees with the results naming them."""
        problems: list[str] = []
        with self._lock:
            check = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            problems.append(f"integrity_check: {check}")
        planned = {u.id for u in self.planned()}
        named: dict[str, set[str]] = {}
        for r in self.results():
            if r.unit not in planned:
                problems.append(f"result of unplanned unit {r.unit}")
            if r.finding:
                named.setdefault(r.finding, set()).add(r.unit)
        for f in self.findings():
            seen = named.pop(f.key, set())
            if f.occurrences != len(f.units) or (seen and not seen <= set(f.units)):
                problems.append(f"finding {f.key}: {f.occurrences} occurrences, units "
                                f"{f.units}, results {sorted(seen)}")
        problems.extend(f"results name unknown finding {k}" for k in named)
        return problems


__all__ = [
    "HEARTBEAT_STALE_S",
    "Ledger",
    "LedgerError",
    "campaign_home",
    "ledger_path",
    "list_campaigns",
]
