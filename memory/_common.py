"""Behaviour every store shares, written once on top of ``put`` and ``records``.

JSONL export/import live here so the embedded, server and in-memory stores
cannot drift apart on the file format or on how a bad line is reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from clnrm.memory.errors import RecordImportError
from clnrm.memory.records import Agent, Kind, Record, parse_record
from clnrm.memory.types import PutAck
from pydantic import ValidationError

IMPORT_BATCH = 1000


def as_kind(kind: Kind | str | None) -> Kind | None:
    if kind is None or isinstance(kind, Kind):
        return kind
    try:
        return Kind(kind)
    except ValueError:
        valid = ", ".join(k.value for k in Kind)
        raise ValueError(f"unknown kind {kind!r}; expected one of: {valid}") from None


def as_agent(agent: Agent | str | None) -> Agent | None:
    return None if agent is None else Agent.parse(agent)


def as_instant(before: datetime | date) -> datetime:
    """A date means its first instant in UTC; naive datetimes are UTC too."""
    if not isinstance(before, datetime):
        before = datetime.combine(before, time.min)
    return before.replace(tzinfo=UTC) if before.tzinfo is None else before


def where_clauses(agent: Agent | None, where: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Equality filters as a list of single-key clauses (Chroma wants ``$and`` for more)."""
    clauses: list[dict[str, Any]] = []
    if agent is not None:
        clauses.append({"agent": agent.value})
    for key, value in (where or {}).items():
        if isinstance(value, Agent | Kind):
            value = value.value
        clauses.append({key: value})
    return clauses


def read_jsonl(path: Path | str) -> list[Record]:
    """Every record of a JSONL file, or a :class:`RecordImportError` naming the first bad line."""
    path = Path(path)
    records: list[Record] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(parse_record(line))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "record"
                raise RecordImportError(f"{where}: {first['msg']}", file=path,
                                        line=number) from exc
            except ValueError as exc:  # pragma: no cover - validate_json raises ValidationError
                raise RecordImportError(str(exc), file=path, line=number) from exc
    return records


def write_jsonl(records: Iterable[Record], path: Path | str) -> int:
    """Write atomically: a crash leaves the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(record.model_dump_json())
                fh.write("\n")
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class StoreMixin:
    """Export, import and context management for any store with ``put`` and ``records``."""

    def put(self, records: Iterable[Record]) -> PutAck:  # pragma: no cover - overridden
        raise NotImplementedError

    def records(self, kind: Kind | str | None = None) -> Iterator[Record]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def export_jsonl(self, path: Path | str) -> int:
        return write_jsonl(self.records(), path)

    def import_jsonl(self, path: Path | str) -> int:
        records = read_jsonl(path)
        for start in range(0, len(records), IMPORT_BATCH):
            self.put(records[start:start + IMPORT_BATCH])
        return len(records)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
