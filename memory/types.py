"""The store's interface: what agents call, with no trace of Chroma in it.

Agents type against :class:`MemoryStore`; ``open_memory`` hands them an
implementation (embedded Chroma behind an elected writer, a Chroma server, or
the in-memory double in :mod:`memory.testing`).  Every implementation passes the
same contract tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from clnrm.memory.records import Agent, Kind, Record
from pydantic import BaseModel, Field


class Hit(BaseModel):
    """A record found by ``query``; ``score`` is cosine similarity (1.0 = same text)."""

    record: Record
    score: float


class PutAck(BaseModel):
    """Returned only after every record is committed: a crash after it loses none of them."""

    count: int
    ids: list[str] = Field(default_factory=list)


class MemoryStats(BaseModel):
    """How much each kind and agent has stored, and what the store is."""

    location: str
    mode: str
    schema_version: int
    embedding: str
    total: int
    by_kind: dict[str, int]
    by_agent: dict[str, int]
    writer_pid: int | None = None


@runtime_checkable
class MemoryStore(Protocol):
    """Shared agent memory.  Writes are upserts by id, so retrying one is always safe."""

    def put(self, records: Iterable[Record]) -> PutAck:
        """Store or replace records by id; returns once they are durable."""
        ...

    def get(self, ids: Sequence[str]) -> list[Record]:
        """The records with these ids, in that order, skipping unknown ones."""
        ...

    def query(self, text: str, *, kind: Kind | str | None = None,
              agent: Agent | str | None = None, k: int = 10,
              where: Mapping[str, Any] | None = None) -> list[Hit]:
        """The ``k`` records most similar to ``text``, best first.

        ``where`` holds equality filters on record fields (``{"status": "failed"}``),
        ``m.<key>`` for free-form metadata; ``$gt``/``$in``-style operators also work.
        """
        ...

    def records(self, kind: Kind | str | None = None) -> Iterator[Record]:
        """Every stored record (of one kind), in pages; for export and small scans."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove records by id; returns how many existed."""
        ...

    def forget(self, before: datetime | date, *, kind: Kind | str | None = None) -> int:
        """Remove records created before ``before`` (a date means its midnight UTC)."""
        ...

    def stats(self) -> MemoryStats: ...

    def export_jsonl(self, path: Path | str) -> int:
        """Write every record as one JSON line; returns the count."""
        ...

    def import_jsonl(self, path: Path | str) -> int:
        """Validate every line first, then put them all; a bad line writes nothing."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...
