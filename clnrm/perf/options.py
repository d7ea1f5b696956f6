"""How a run reaches the performance layer's memory: where it is, and whether to write.

Kept apart from :mod:`clnrm.perf.session` so :class:`clnrm.runner.RunOptions` can carry
it without importing anything heavy.  ``memory`` is a location (a directory, or
``http://host:port`` of a Chroma server) or a store that is already open (an agent
passes its own); ``None`` means what ``clnrm memory`` uses: ``$CLNRM_MEMORY``, else
``~/.clnrm/memory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from clnrm.memory.types import MemoryStore

MemoryRef: TypeAlias = "str | Path | MemoryStore | None"
"""A memory location, an open store, or None for the default location."""


@dataclass(frozen=True)
class PerfOptions:
    """``record = False`` compares with the baseline but stores nothing (``perf baseline
    diff``); ``save_baseline`` makes every measured run a baseline run (``perf baseline
    save``), as ``record_baseline = true`` does in a file."""

    memory: MemoryRef = None
    record: bool = True
    save_baseline: bool = False
