"""Where a store lives decides how it is opened; callers only say where."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from clnrm.memory.errors import MemoryStoreError
from clnrm.memory.types import MemoryStore

ENV_VAR: Final = "CLNRM_MEMORY"
DEFAULT_LOCATION: Final = Path("~/.clnrm/memory")


def resolve_location(location: str | Path | None) -> str | Path:
    """``None`` means ``$CLNRM_MEMORY``, else ``~/.clnrm/memory``; URLs stay strings."""
    if location is None or location == "":
        location = os.environ.get(ENV_VAR) or DEFAULT_LOCATION
    if isinstance(location, str) and location.startswith(("http://", "https://")):
        return location
    return Path(location).expanduser()


def open_memory(location: str | Path | None = None, *, embedding: str | None = None,
                timeout: float = 60.0, repair: bool = True) -> MemoryStore:
    """Open the shared memory at a directory (embedded) or ``http://host:port`` (server).

    Both give the same API.  An embedded store is safe to open from many
    processes at once: the first becomes its writer and the others go through
    it (see :mod:`clnrm.memory._writer`).  ``embedding`` picks the embedding of a new
    store and must match an existing one's (``None`` accepts what is there).
    A process that becomes an embedded store's writer rebuilds a wedged index
    from the records on disk first; ``repair=False`` raises ``StoreWedged`` instead.
    """
    where = resolve_location(location)
    if isinstance(where, str):
        from clnrm.memory._chroma import ChromaStore, connect_server

        return ChromaStore(connect_server(where), location=where, mode="server",
                           embedding=embedding)
    from clnrm.memory._elected import ElectedStore

    _check_folder(where)
    try:
        return ElectedStore(where, embedding=embedding, timeout=timeout, repair=repair)
    except OSError as exc:
        raise MemoryStoreError(f"{where}: cannot open the memory store: {exc.strerror or exc}",
                               location=str(where)) from None


def _check_folder(where: Path) -> None:
    """An embedded store is a folder: refuse a file, device or FIFO before creating anything."""
    from clnrm.paths import PathError, check_folder

    try:
        check_folder(where, what="memory store folder")
    except PathError as exc:
        raise MemoryStoreError(str(exc), location=str(where)) from None
