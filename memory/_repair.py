"""Find a wedged embedded store and rebuild its index from the records on disk.

Chroma keeps every record (id, document, metadata) in ``chroma.sqlite3`` and the
vectors in a per-collection HNSW directory that it persists every 1000 writes,
in place.  A SIGKILL while it does that, or while it applies an upsert of ids
the index already holds, can leave an index that refuses its own write-ahead
log for good (chroma-core/chroma#7678): every later read and write fails with
"Error in compaction: Failed to apply logs to the hnsw segment writer", while
the records themselves are intact in SQLite.

The cure is the maintainers' one: build a fresh store from those records.  The
rebuild reads SQLite read-only (never through the wedged Chroma), re-embeds each
record into ``chroma.rebuild/``, marks it complete, then swaps directories:

    chroma/ -> chroma.backup-<time>/      chroma.rebuild/ -> chroma/

An interrupted rebuild or swap is finished or undone by the next open
(:func:`recover_swap`), so a crash at any step leaves one whole store.  Only the
elected writer (it holds ``writer.lock``) runs any of this.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog
from clnrm.memory._writer import DATA_DIR
from clnrm.memory.errors import MemoryStoreError, StoreWedged
from clnrm.memory.records import Kind, Record, parse_record
from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from clnrm.memory._chroma import ChromaStore

log = structlog.get_logger("clnrm.memory")

REBUILD_DIR: Final = "chroma.rebuild"
BACKUP_PREFIX: Final = "chroma.backup-"
DONE_MARK: Final = ".clnrm-rebuilt"
REPAIR_LOG: Final = "repair.log"
SQLITE_FILE: Final = "chroma.sqlite3"
_BATCH: Final = 1000
_META: Final = "clnrm_meta"
_LEGACY: Final = "clnrm_memory"


class CollectionHealth(BaseModel):
    """One Chroma collection as its SQLite file and its persisted index describe it."""

    name: str
    records: int = Field(description="records in Chroma's SQLite file (the source of truth)")
    indexed_on_disk: int | None = Field(
        None, description="vectors in the HNSW files as last persisted (Chroma persists every "
                          "1000 writes, so this may trail `records` by up to that)")
    pending_log: int = Field(description="write-ahead log rows not yet applied to the index")


class StoreHealth(BaseModel):
    """What ``clnrm memory check`` reports; ``healthy`` is its exit code (0 or 1)."""

    location: str
    mode: str
    healthy: bool
    wedged: bool
    probe_error: str | None = Field(None, description="what the index said when probed")
    total: int
    by_kind: dict[str, int]
    by_namespace: dict[str, int]
    collections: list[CollectionHealth] = Field(default_factory=list)
    backups: list[str] = Field(default_factory=list)
    repairs: int = Field(0, description="rebuilds recorded in the store's repair.log")
    writer_pid: int | None = None


class RepairReport(BaseModel):
    """What a rebuild did; appended as one JSON line to the store's ``repair.log``."""

    location: str
    at: datetime
    reason: str
    records: int
    by_kind: dict[str, int]
    unreadable: int = Field(0, description="documents in SQLite that are not valid records")
    seconds: float
    backup: str = Field(description="where the old directory went")
    backup_kept: bool = Field(False, description="false: removed once the new store opened")


# -- reading Chroma's SQLite file (read-only) ------------------------------------
def _connect(data: Path) -> sqlite3.Connection:
    path = data / SQLITE_FILE
    if not path.is_file():
        raise MemoryStoreError(f"memory store {data.parent} has no {DATA_DIR}/{SQLITE_FILE}",
                               location=str(data.parent))
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    conn.execute("PRAGMA query_only = 1")
    return conn


def _segments(conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
    """collection name -> {"id": collection id, "METADATA": seg id, "VECTOR": seg id}."""
    found: dict[str, dict[str, str]] = {}
    for name, cid, scope, sid in conn.execute(
            "SELECT c.name, c.id, s.scope, s.id FROM collections c "
            "JOIN segments s ON s.collection = c.id WHERE c.name LIKE 'clnrm%'"):
        found.setdefault(name, {"id": cid})[scope] = sid
    return found


def _indexed_on_disk(data: Path, vector_segment: str | None) -> int | None:
    """hnswlib's element count from ``header.bin`` (int32 version, then three u64s)."""
    if vector_segment is None:
        return None
    try:
        header = (data / vector_segment / "header.bin").read_bytes()
        return int(struct.unpack_from("<Q", header, 20)[0])
    except (OSError, struct.error):
        return None


def inspect(root: Path) -> tuple[list[CollectionHealth], dict[str, int], dict[str, int]]:
    """Per-collection counts, records per kind and per namespace, straight from SQLite."""
    data = root / DATA_DIR
    collections: list[CollectionHealth] = []
    by_kind = {kind.value: 0 for kind in Kind}
    by_namespace: dict[str, int] = {}
    with closing(_connect(data)) as conn:
        for name, seg in sorted(_segments(conn).items()):
            meta_seg, vec_seg = seg.get("METADATA"), seg.get("VECTOR")
            (records,) = conn.execute("SELECT count(*) FROM embeddings WHERE segment_id = ?",
                                      (meta_seg,)).fetchone()
            row = conn.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?",
                               (vec_seg,)).fetchone()
            applied = int(row[0]) if row and row[0] is not None else 0
            (pending,) = conn.execute(
                "SELECT count(*) FROM embeddings_queue WHERE topic LIKE ? AND seq_id > ?",
                (f"%/{seg['id']}", applied)).fetchone()
            collections.append(CollectionHealth(name=name, records=records, pending_log=pending,
                                                indexed_on_disk=_indexed_on_disk(data, vec_seg)))
            kind = name.removeprefix("clnrm_")
            if kind in by_kind:
                by_kind[kind] = records
            if name == _META:
                continue
            for agent, count in conn.execute(
                    "SELECT m.string_value, count(*) FROM embeddings e JOIN embedding_metadata m "
                    "ON m.id = e.id AND m.key = 'agent' WHERE e.segment_id = ? "
                    "GROUP BY m.string_value", (meta_seg,)):
                namespace = f"swarm/{agent}"
                by_namespace[namespace] = by_namespace.get(namespace, 0) + count
    return collections, by_kind, by_namespace


def stored_embedding(root: Path) -> str | None:
    """The embedding named in the store's meta record, or None for a legacy/empty store."""
    with closing(_connect(root / DATA_DIR)) as conn:
        seg = _segments(conn).get(_META, {}).get("METADATA")
        row = conn.execute(
            "SELECT m.string_value FROM embeddings e JOIN embedding_metadata m ON m.id = e.id "
            "AND m.key = 'embedding' WHERE e.segment_id = ? AND e.embedding_id = 'schema'",
            (seg,)).fetchone()
    return str(row[0]) if row and row[0] else None


def stored_records(root: Path) -> Iterator[Record | None]:
    """Every record document of every clnrm collection (None for one that does not parse).

    Ids are unique per segment in SQLite, so each record comes out exactly once.
    """
    with closing(_connect(root / DATA_DIR)) as conn:
        segments = [seg["METADATA"] for name, seg in _segments(conn).items()
                    if name != _META and "METADATA" in seg]
        for segment in segments:
            cursor = conn.execute(
                "SELECT m.string_value FROM embeddings e JOIN embedding_metadata m "
                "ON m.id = e.id AND m.key = 'chroma:document' WHERE e.segment_id = ?",
                (segment,))
            for (doc,) in cursor:
                try:
                    yield parse_record(doc)
                except (ValidationError, ValueError, TypeError):
                    yield None


# -- health --------------------------------------------------------------------------
def backups(root: Path) -> list[str]:
    return sorted(str(p) for p in root.glob(f"{BACKUP_PREFIX}*") if p.is_dir())


def repairs_logged(root: Path) -> int:
    try:
        with (root / REPAIR_LOG).open(encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    except FileNotFoundError:
        return 0


def health(root: Path, *, error: BaseException | None, writer_pid: int | None = None
           ) -> StoreHealth:
    """The embedded store's health from SQLite, given the probe's outcome (``error``)."""
    collections, by_kind, by_namespace = inspect(root)
    wedged = error is not None and isinstance(error, StoreWedged)
    return StoreHealth(location=str(root), mode="embedded", healthy=error is None, wedged=wedged,
                       probe_error=None if error is None else str(error).splitlines()[0],
                       total=sum(c.records for c in collections if c.name != _META),
                       by_kind=by_kind, by_namespace=by_namespace, collections=collections,
                       backups=backups(root), repairs=repairs_logged(root),
                       writer_pid=writer_pid)


# -- swap, rebuild, open ---------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_swap(root: Path) -> str | None:
    """Finish or undo a rebuild a crash interrupted; returns what it did, if anything.

    A complete rebuild (its mark written) whose swap did not finish is moved in;
    an incomplete one is deleted, and a moved-away store with no complete
    rebuild to replace it is moved back.  Call only while holding the writer lock.
    """
    data, rebuilt = root / DATA_DIR, root / REBUILD_DIR
    done = ""
    if not data.exists() and (rebuilt / DONE_MARK).exists():
        os.rename(rebuilt, data)
        done = "finished an interrupted swap"
    if rebuilt.exists():
        shutil.rmtree(rebuilt)
        done = done or "removed an unfinished rebuild"
    if not data.exists():
        olds = backups(root)
        if olds:
            os.rename(olds[-1], data)
            done = done or "restored the store an interrupted rebuild had moved away"
    (data / DONE_MARK).unlink(missing_ok=True)
    if done:
        _fsync_dir(root)
        log.warning("memory.swap_recovered", location=str(root), action=done)
    return done or None


def rebuild(root: Path, *, reason: str, keep_backup: bool = False) -> RepairReport:
    """Build a fresh store from the records in SQLite and swap it in for ``root/chroma``.

    The caller holds the writer lock and has closed every Chroma client on the
    store.  The old directory is removed once the new one is in place and has
    opened healthy, unless ``keep_backup``.
    """
    from clnrm.memory._chroma import ChromaStore, connect_embedded

    started = time.monotonic()
    data, target = root / DATA_DIR, root / REBUILD_DIR
    if target.exists():
        shutil.rmtree(target)
    embedding = stored_embedding(root)
    client = connect_embedded(target)
    by_kind = {kind.value: 0 for kind in Kind}
    unreadable = 0
    try:
        fresh = ChromaStore(client, location=str(root), mode="embedded", embedding=embedding)
        batch: list[Record] = []
        for record in stored_records(root):
            if record is None:
                unreadable += 1
                continue
            batch.append(record)
            by_kind[record.kind.value] += 1
            if len(batch) >= _BATCH:
                fresh.put(batch)
                batch = []
        if batch:
            fresh.put(batch)
        fresh.probe()
        written = fresh.stats().total
    finally:
        client.close()
    if written != sum(by_kind.values()):
        raise MemoryStoreError(f"memory store {root}: rebuild wrote {written} records, "
                               f"expected {sum(by_kind.values())}; the old store is untouched",
                               location=str(root))
    (target / DONE_MARK).write_text("complete\n")
    _fsync_dir(target)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = root / f"{BACKUP_PREFIX}{stamp}"
    os.rename(data, backup)
    os.rename(target, data)
    (data / DONE_MARK).unlink(missing_ok=True)
    _fsync_dir(root)
    report = RepairReport(location=str(root), at=datetime.now(UTC), reason=reason,
                          records=written, by_kind=by_kind, unreadable=unreadable,
                          seconds=round(time.monotonic() - started, 3),
                          backup=str(backup), backup_kept=keep_backup)
    log.warning("memory.rebuilt", location=str(root), reason=reason, records=written,
                unreadable=unreadable, seconds=report.seconds)
    return report


def _finish(root: Path, report: RepairReport) -> None:
    """Drop the backup (unless kept) and record the repair, once the new store opened."""
    if not report.backup_kept:
        shutil.rmtree(report.backup, ignore_errors=True)
    with (root / REPAIR_LOG).open("a", encoding="utf-8") as fh:
        fh.write(report.model_dump_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _open_probed(root: Path, embedding: str | None) -> ChromaStore:
    from clnrm.memory._chroma import ChromaStore, connect_embedded

    client = connect_embedded(root / DATA_DIR)
    try:
        store = ChromaStore(client, location=str(root), mode="embedded", embedding=embedding)
        store.probe()
    except BaseException:
        client.close()
        raise
    return store


def open_healthy(root: Path, *, embedding: str | None, repair: bool = True,
                 force: str | None = None, keep_backup: bool = False
                 ) -> tuple[ChromaStore, RepairReport | None]:
    """Open the store under ``root`` and prove its index applies its log; rebuild if not.

    ``force`` (a reason) rebuilds even a healthy store.  With ``repair=False`` a
    wedged store raises :class:`StoreWedged` instead.  A store still wedged after
    a rebuild raises too: the rebuild is never retried in a loop.
    """
    try:
        recover_swap(root)
    except OSError as exc:
        raise MemoryStoreError(f"memory store {root}: cannot finish an interrupted rebuild: "
                               f"{exc}", location=str(root),
                               hint=f"move {root / REBUILD_DIR} away by hand, then run "
                                    "`clnrm memory repair`") from exc
    reason = force
    if reason is None:
        try:
            return _open_probed(root, embedding), None
        except StoreWedged as exc:
            if not repair:
                raise
            reason = str(exc).splitlines()[0]
            log.warning("memory.wedged", location=str(root), error=reason)
    try:
        report = rebuild(root, reason=reason, keep_backup=keep_backup)
    except (OSError, sqlite3.Error) as exc:
        raise MemoryStoreError(f"memory store {root}: rebuilding the index failed: {exc}",
                               location=str(root),
                               hint="the records are untouched in chroma/chroma.sqlite3; free "
                                    "disk space or fix permissions, then run "
                                    "`clnrm memory repair`") from exc
    store = _open_probed(root, embedding)
    _finish(root, report)
    return store, report
