"""The embedded store as each process sees it: the elected writer, or a client of it.

See :mod:`clnrm.memory._writer` for the election.  Clients need neither Chroma nor
scikit-learn; a client whose writer dies becomes the writer itself (or a client
of the next one) and resends, which is safe because writes are idempotent.
A new writer proves the index applies its log before serving, and rebuilds it
from the records on disk if it does not (:mod:`clnrm.memory._repair`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from clnrm.memory._common import StoreMixin, as_instant
from clnrm.memory._writer import (
    LOCK_FILE,
    PAGE,
    WriterServer,
    connect,
    socket_address,
    store_key,
    try_lock,
)
from clnrm.memory.errors import EmbeddingMismatch, MemoryStoreError, MemoryUnavailable, StoreWedged
from clnrm.memory.records import RECORDS_ADAPTER, Agent, Kind, Record
from clnrm.memory.types import Hit, MemoryStats, PutAck
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

_RESULTS: Final[dict[str, TypeAdapter[Any]]] = {
    "put": TypeAdapter(PutAck), "get": RECORDS_ADAPTER, "page": RECORDS_ADAPTER,
    "query": TypeAdapter(list[Hit]), "delete": TypeAdapter(int), "forget": TypeAdapter(int),
    "stats": TypeAdapter(MemoryStats), "hello": TypeAdapter(dict[str, Any]),
    "check": TypeAdapter(Any), "repair": TypeAdapter(Any),  # validated by their callers
}


_LIVE: weakref.WeakSet[ElectedStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child shares the parent's lock: holding it after the parent died
    # would block every election while serving nobody.
    for store in list(_LIVE):
        store._disown_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ElectedStore(StoreMixin):
    """An embedded store shared by processes: the writer itself, or a client of it."""

    def __init__(self, root: Path, *, embedding: str | None = None, timeout: float = 60.0,
                 request_timeout: float = 600.0, repair: bool = True) -> None:
        self.root = root.expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._embedding = embedding
        self._repair = repair
        self.repaired_on_open: Any = None  # the RepairReport if this open rebuilt the index
        self._timeout = timeout
        self._request_timeout = request_timeout
        self._address = socket_address(self.root)
        self._authkey = store_key(self.root)
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._server: WriterServer | None = None
        self._conn: Connection | None = None
        self._closed = False
        self._forked = False
        self._elect(time.monotonic() + timeout)
        _LIVE.add(self)

    @property
    def is_writer(self) -> bool:
        return self._server is not None

    def _elect(self, deadline: float) -> None:
        while True:
            fd = try_lock(self.root)
            if fd is not None:
                self._become_writer(fd)
                return
            try:
                conn = connect(self._address, self._authkey)
            except (OSError, EOFError, AuthenticationError):
                conn = None  # the writer is still starting, stopping, or just died
            if conn is not None:
                self._conn = conn
                try:
                    self._check_embedding(self._roundtrip("hello", {})["embedding"])
                except (OSError, EOFError):
                    self._drop_conn()
                    continue
                return
            if time.monotonic() > deadline:
                rebuilding = (self.root / "chroma.rebuild").exists()
                raise MemoryUnavailable(
                    f"memory store {self.root}: another process holds the writer lock but "
                    f"does not answer on its socket"
                    + (" (it is rebuilding a wedged index from the records on disk)"
                       if rebuilding else ""), location=str(self.root),
                    hint="retry in a minute: a rebuild takes about 1 s per 1,000 records"
                    if rebuilding else f"check the process whose pid is in "
                                       f"{self.root / LOCK_FILE}")
            time.sleep(0.05)

    def _become_writer(self, fd: int) -> None:
        from clnrm.memory._repair import open_healthy

        try:
            store, self.repaired_on_open = open_healthy(self.root, embedding=self._embedding,
                                                        repair=self._repair)
            self._server = WriterServer(store, self._address, self._authkey, root=self.root,
                                        embedding=self._embedding)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _check_embedding(self, stored: str) -> None:
        if self._embedding is None:
            return
        from clnrm.memory.embedding import make_embedder

        wanted = make_embedder(self._embedding).name
        if wanted != stored:
            raise EmbeddingMismatch(f"memory store {self.root} was built with embedding "
                                    f"{stored!r}, not {wanted!r}", location=str(self.root))

    def _roundtrip(self, op: str, args: Mapping[str, Any]) -> Any:
        assert self._conn is not None
        self._conn.send_bytes(json.dumps({"op": op, "args": to_jsonable_python(args)},
                                         separators=(",", ":")).encode())
        if not self._conn.poll(self._request_timeout):
            raise MemoryUnavailable(f"memory writer for {self.root} did not answer {op!r} "
                                    f"within {self._request_timeout:.0f}s",
                                    location=str(self.root))
        reply = json.loads(self._conn.recv_bytes())
        if reply["ok"]:
            return reply["result"]
        if reply["error"] == "ValueError":
            raise ValueError(reply["message"])
        if reply["error"] == "StoreWedged":
            raise StoreWedged(reply["message"], location=str(self.root))
        raise MemoryStoreError(reply["message"], location=str(self.root))

    def _drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, op: str, args: Mapping[str, Any]) -> Any:
        with self._mutex:
            if self._closed or self._forked:
                raise MemoryStoreError(f"memory store {self.root} is closed"
                                       + (" in this forked process; open it again"
                                          if self._forked else ""), location=str(self.root))
            while True:
                # Each election gets the whole timeout, counted from when the writer was
                # found gone: a request that waited long in a busy writer's queue before
                # the writer handed over must not leave the next election seconds only.
                if self._server is None and self._conn is None:
                    self._elect(time.monotonic() + self._timeout)  # an earlier one timed out
                if self._server is not None:
                    return _RESULTS[op].validate_python(self._server.execute(op, args))
                try:
                    return _RESULTS[op].validate_python(self._roundtrip(op, args))
                except (OSError, EOFError):
                    # The writer went away; writes are idempotent, so resend after re-election.
                    self._drop_conn()
                    self._elect(time.monotonic() + self._timeout)

    # -- MemoryStore ---------------------------------------------------------
    def put(self, records: Iterable[Record]) -> PutAck:
        batch = list(records)
        if self._server is None:
            return self._call("put", {"records": [r.model_dump(mode="json") for r in batch]})
        return self._call("put", {"records": batch})

    def get(self, ids: Sequence[str]) -> list[Record]:
        return self._call("get", {"ids": list(ids)})

    def query(self, text: str, *, kind: Kind | str | None = None,
              agent: Agent | str | None = None, k: int = 10,
              where: Mapping[str, Any] | None = None) -> list[Hit]:
        return self._call("query", {"text": text, "kind": kind, "agent": agent, "k": k,
                                    "where": dict(where) if where else None})

    def records(self, kind: Kind | str | None = None) -> Iterator[Record]:
        for each in [Kind(kind)] if kind is not None else list(Kind):
            offset = 0
            while True:
                page = self._call("page", {"kind": each.value, "offset": offset, "limit": PAGE})
                yield from page
                if len(page) < PAGE:
                    break
                offset += len(page)

    def delete(self, ids: Sequence[str]) -> int:
        return self._call("delete", {"ids": list(ids)})

    def forget(self, before: datetime | date, *, kind: Kind | str | None = None) -> int:
        return self._call("forget", {"before": as_instant(before).isoformat(), "kind": kind})

    def stats(self) -> MemoryStats:
        return self._call("stats", {})

    def check(self) -> Any:
        """Probe the index through the writer: a :class:`clnrm.memory._repair.StoreHealth`."""
        from clnrm.memory._repair import StoreHealth

        return StoreHealth.model_validate(self._call("check", {}))

    def repair(self) -> Any:
        """Rebuild the index from the records on disk: a :class:`clnrm.memory._repair.RepairReport`.

        If opening this store already rebuilt it, that rebuild is the answer.
        """
        from clnrm.memory._repair import RepairReport

        if self.repaired_on_open is not None:
            return self.repaired_on_open
        return RepairReport.model_validate(self._call("repair", {}))

    def close(self) -> None:
        """Hand over: a writer stops serving and releases the lock for the next one."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._drop_conn()
            server, self._server = self._server, None
            if server is not None:
                server.stop()
                server.store.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock; the next writer may open
                self._lock_fd = None

    def _disown_after_fork(self) -> None:
        self._forked = True
        self._server = None
        self._conn = None
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = None
