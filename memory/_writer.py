"""One writer per embedded store, elected by a lock the kernel releases on death.

Embedded Chroma keeps SQLite plus an in-process HNSW index, so two processes
writing the same directory corrupt or hide each other's writes.  Instead the
first process to take ``writer.lock`` (``flock``) opens Chroma and serves every
other process over a unix socket in the store directory; those send their
requests there and get the answer (for a write: the ack) only after the write
is committed.

If the writer dies, even by SIGKILL, the kernel drops its lock and its socket
closes; a client whose request failed takes the lock itself (or connects to
whoever did) and resends.  Records have deterministic ids and the store adds
only ids it does not hold yet, so a resent write whose first attempt had in
fact committed changes nothing (and never re-upserts committed ids, the write
that can wedge Chroma's index under SIGKILL, chroma-core/chroma#7678).

Every writer proves the index applies its log before it serves (see
:mod:`clnrm.memory._repair`); if it does not, or stops doing so mid-session, the
writer rebuilds the index from the records on disk and carries on.

The wire format is JSON over ``multiprocessing.connection`` (length-prefixed,
HMAC handshake with a per-store key in a 0600 file); nothing is unpickled.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from clnrm.memory.errors import StoreWedged
from clnrm.memory.records import RECORDS_ADAPTER, Record
from clnrm.memory.types import PutAck
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from clnrm.memory._chroma import ChromaStore

LOCK_FILE: Final = "writer.lock"
KEY_FILE: Final = "writer.key"
SOCKET_FILE: Final = "writer.sock"
DATA_DIR: Final = "chroma"
PAGE: Final = 1000
_ACCEPT_POLL: Final = 0.2
_GROUP_MAX: Final = 5000



def socket_address(root: Path) -> str:
    """The socket file in the store when its path fits ``sun_path``, else an abstract name."""
    path = str(root / SOCKET_FILE)
    if len(path.encode()) < 100:
        return path
    return "\0clnrm-memory-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]


def store_key(root: Path) -> bytes:
    """The per-store HMAC key, created once atomically (link fails if another won)."""
    key_path = root / KEY_FILE
    if not key_path.exists():
        tmp = root / f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, key_path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return key_path.read_text().strip().encode()


def try_lock(root: Path) -> int | None:
    """The writer lock's fd if this process may now write, else ``None``."""
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class _Gate:
    """Many requests share the store; a rebuild waits for them and holds it alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class WriterServer:
    """Runs requests from this process and from clients against the one ChromaStore."""

    def __init__(self, store: ChromaStore, address: str, authkey: bytes, *,
                 root: Path | None = None, embedding: str | None = None) -> None:
        self.store = store
        self._root = root
        self._embedding = embedding
        self._gate = _Gate()
        self._generation = 0
        self.repairs: list[Any] = []
        self._address = address
        self._authkey = authkey
        self._listener = _listen(address)
        self._stopping = False
        self._idle = threading.Condition()
        self._busy = 0
        self._conns: set[Connection] = set()
        self._puts: queue.SimpleQueue[_PendingPut | None] = queue.SimpleQueue()
        self._committer = threading.Thread(target=self._commit_loop, daemon=True,
                                           name="clnrm-memory-commit")
        self._committer.start()
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="clnrm-memory-writer")
        self._accepter.start()

    def _group_put(self, records: list[Record]) -> PutAck:
        pending = _PendingPut(records)
        self._puts.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return PutAck(count=len(records), ids=[r.id for r in records])

    def _commit_loop(self) -> None:
        """Group commit: every put waiting now goes into one upsert, then all are acked.

        Chroma's cost per upsert call is large (~13 ms, then ~0.3 ms a record),
        so concurrent writers share one call instead of queueing for many.
        """
        while True:
            first = self._puts.get()
            if first is None:
                return
            group, size, last = [first], len(first.records), False
            while size < _GROUP_MAX:
                try:
                    more = self._puts.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                group.append(more)
                size += len(more.records)
            self._commit(group)
            if last:
                return

    def _commit(self, group: list[_PendingPut]) -> None:
        try:
            self._healing(lambda store: store.put([r for p in group for r in p.records]))
        except BaseException as exc:
            if len(group) > 1:  # do not fail everyone for one bad request
                for pending in group:
                    self._commit([pending])
                return
            group[0].error = exc
        for pending in group:
            pending.done.set()

    def _healing(self, action: Any) -> Any:
        """Run ``action(store)``; if the index is wedged, rebuild it once and run it again."""
        with self._gate.shared():
            store, generation = self.store, self._generation
            try:
                return action(store)
            except StoreWedged as exc:
                wedge = exc
        self.heal(str(wedge).splitlines()[0], seen=generation)
        with self._gate.shared():
            return action(self.store)

    def heal(self, reason: str, *, seen: int | None = None, keep_backup: bool = False) -> Any:
        """Rebuild the index from SQLite and swap the new store in; returns the RepairReport.

        ``seen`` is the store generation the caller found wedged: if another
        request rebuilt it meanwhile, nothing is done twice.
        """
        if self._root is None:
            raise StoreWedged(reason)
        from clnrm.memory._repair import open_healthy

        with self._gate.exclusive():
            if seen is not None and seen != self._generation:
                return None
            self.store.close()
            self.store, report = open_healthy(self._root, embedding=self._embedding,
                                              force=reason, keep_backup=keep_backup)
            self._generation += 1
            self.repairs.append(report)
            return report

    def check(self) -> Any:
        """Probe the index now and describe the store (``clnrm memory check``)."""
        from clnrm.memory._repair import health

        assert self._root is not None
        error: BaseException | None = None
        with self._gate.shared():
            try:
                self.store.probe()
            except StoreWedged as exc:
                error = exc
            return health(self._root, error=error, writer_pid=os.getpid())

    def execute(self, op: str, args: Mapping[str, Any]) -> Any:
        """One request; arguments may be models (same process) or their JSON form."""
        if op == "put":
            return self._group_put(RECORDS_ADAPTER.validate_python(args["records"]))
        if op == "check":
            return self.check()
        if op == "repair":
            return self.heal("requested by `clnrm memory repair`")
        return self._healing(lambda store: self._read(store, op, args))

    def _read(self, store: ChromaStore, op: str, args: Mapping[str, Any]) -> Any:
        if op == "get":
            return store.get(list(args["ids"]))
        if op == "query":
            return store.query(args["text"], kind=args.get("kind"), agent=args.get("agent"),
                               k=int(args.get("k", 10)), where=args.get("where"))
        if op == "page":
            return store.page(args["kind"], int(args["offset"]), int(args.get("limit", PAGE)))
        if op == "delete":
            return store.delete(list(args["ids"]))
        if op == "forget":
            before = args["before"]
            if isinstance(before, str):
                before = datetime.fromisoformat(before)
            return store.forget(before, kind=args.get("kind"))
        if op == "stats":
            return store.stats().model_copy(update={"writer_pid": os.getpid()})
        if op == "hello":
            return {"pid": os.getpid(), "embedding": store.embedder.name,
                    "schema_version": store.schema_version}
        raise ValueError(f"unknown memory operation {op!r}")

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping:
                    return
                time.sleep(0.05)  # e.g. EMFILE: do not spin
                continue
            if self._stopping:
                sock.close()
                return
            conn = Connection(sock.detach())
            self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="clnrm-memory-conn").start()

    def _serve(self, conn: Connection) -> None:
        try:
            try:
                deliver_challenge(conn, self._authkey)
                answer_challenge(conn, self._authkey)
            except (OSError, EOFError, AuthenticationError):
                return
            while True:
                try:
                    raw = conn.recv_bytes()
                except (EOFError, OSError):
                    return
                with self._idle:
                    if self._stopping:
                        return  # not executed: the client resends to the next writer
                    self._busy += 1
                try:
                    reply = self._answer(raw)
                finally:
                    with self._idle:
                        self._busy -= 1
                        self._idle.notify_all()
                try:
                    conn.send_bytes(reply)
                except OSError:
                    return
        finally:
            self._conns.discard(conn)
            conn.close()

    def _answer(self, raw: bytes) -> bytes:
        try:
            request = json.loads(raw)
            result = self.execute(request["op"], request.get("args") or {})
            reply: dict[str, Any] = {"ok": True, "result": to_jsonable_python(result)}
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": "ValueError", "message": str(exc)}
        except Exception as exc:
            reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        return json.dumps(reply, separators=(",", ":")).encode()

    def stop(self, grace: float = 30.0) -> None:
        """Finish requests already running, refuse new ones, then drop every connection."""
        with self._idle:
            self._stopping = True
            # Unlink and close first: clients connecting now fail fast and re-elect
            # instead of waiting in a backlog nobody will accept from.
            if not self._address.startswith("\0"):
                Path(self._address).unlink(missing_ok=True)
            self._listener.close()
            self._idle.wait_for(lambda: self._busy == 0, timeout=grace)
        self._accepter.join(timeout=2 * _ACCEPT_POLL)
        self._puts.put(None)
        self._committer.join(timeout=grace)
        for conn in list(self._conns):
            _hang_up(conn)


class _PendingPut:
    __slots__ = ("done", "error", "records")

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.done = threading.Event()
        self.error: BaseException | None = None


def _listen(address: str) -> socket.socket:
    """A listening unix socket whose accept() wakes up to notice a stop.

    Not ``multiprocessing.connection.Listener``: its accept() runs the auth
    handshake in the accept thread (one stalled client blocks everyone) and it
    cannot be woken without connecting to it, which blocks once the backlog is full.
    """
    if not address.startswith("\0"):
        Path(address).unlink(missing_ok=True)  # stale: its writer held our lock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(128)
    sock.settimeout(_ACCEPT_POLL)
    return sock


def connect(address: str, authkey: bytes, timeout: float = 5.0) -> Connection:
    """Connect and authenticate, never waiting longer than ``timeout`` on a silent writer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    conn = Connection(sock.detach())
    try:
        if not conn.poll(timeout):  # accepted by the kernel, but nobody serves it
            raise TimeoutError(f"no handshake from the writer within {timeout}s")
        answer_challenge(conn, authkey)
        deliver_challenge(conn, authkey)
    except BaseException:
        conn.close()
        raise
    return conn


def _hang_up(conn: Connection) -> None:
    """Wake a thread blocked in recv on ``conn`` without closing the fd under it."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
