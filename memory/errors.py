"""Errors of the shared memory, under clnrm's one ``ClnrmError`` root.

The CLI turns each into one message and exit code 2, so every message says
which store, which file or line, and what the user can do next.

    ClnrmError
    └── MemoryStoreError        the store cannot do what was asked
        ├── MemoryUnavailable   no writer / Chroma server answered in time
        ├── SchemaVersionError  the store was written by another clnrm version
        ├── EmbeddingMismatch   the store was built with another embedding
        ├── StoreWedged         Chroma's index cannot apply its log (needs a rebuild)
        └── RecordImportError   a JSONL line is not a valid record (file, line)
"""

from __future__ import annotations

from pathlib import Path

from clnrm.errors import ClnrmError


class MemoryStoreError(ClnrmError):
    """The memory store at ``location`` cannot do what was asked."""

    def __init__(self, message: str, *, location: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.location = location


class MemoryUnavailable(MemoryStoreError):
    """Neither a writer process nor a Chroma server answered before the deadline."""


class SchemaVersionError(MemoryStoreError):
    """The store's schema version is newer than this clnrm, or has no migration path."""

    def __init__(self, message: str, *, location: str, found: int, supported: int,
                 hint: str | None = None) -> None:
        super().__init__(message, location=location, hint=hint)
        self.found = found
        self.supported = supported


class EmbeddingMismatch(MemoryStoreError):
    """Vectors from two embeddings are not comparable, so mixing them is refused."""


class StoreWedged(MemoryStoreError):
    """Chroma's vector index refuses its own write-ahead log (chroma-core/chroma#7678).

    The records are still in Chroma's SQLite file; ``clnrm memory repair`` (or the
    next writer's open) rebuilds the index from them.
    """

    def __init__(self, message: str, *, location: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, location=location,
                         hint=hint or "run `clnrm memory repair` to rebuild the index from "
                                      "the records on disk (none are lost)")


class RecordImportError(MemoryStoreError):
    """A line of an import file is not a valid record; nothing from the file was written."""

    def __init__(self, message: str, *, file: Path | str, line: int) -> None:
        super().__init__(f"{file}:{line}: {message}", location=str(file),
                         hint="fix or delete that line and import again "
                              "(the import is all-or-nothing)")
        self.file = Path(file)
        self.line = line
