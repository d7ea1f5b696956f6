"""Shared memory of the swarm: typed records in, similar records out.

Agents import only this package: records, the :class:`MemoryStore` protocol and
:func:`open_memory`.  Chroma, scikit-learn and the writer election stay behind
it and are imported only when a store is opened (``pip install 'clnrm[memory]'``).
"""

from __future__ import annotations

from clnrm.memory._open import open_memory
from clnrm.memory.errors import (
    EmbeddingMismatch,
    MemoryStoreError,
    MemoryUnavailable,
    RecordImportError,
    SchemaVersionError,
)
from clnrm.memory.records import (
    Agent,
    BaselineRecord,
    BlackboardAction,
    BlackboardEntry,
    FailureRecord,
    Kind,
    PatternRecord,
    Record,
    RemediationOutcome,
    RemediationRecord,
    RunRecord,
    TestResultRecord,
    parse_record,
)
from clnrm.memory.types import Hit, MemoryStats, MemoryStore, PutAck

__all__ = [
    "Agent",
    "BaselineRecord",
    "BlackboardAction",
    "BlackboardEntry",
    "EmbeddingMismatch",
    "FailureRecord",
    "Hit",
    "Kind",
    "MemoryStats",
    "MemoryStore",
    "MemoryStoreError",
    "MemoryUnavailable",
    "PatternRecord",
    "PutAck",
    "Record",
    "RecordImportError",
    "RemediationOutcome",
    "RemediationRecord",
    "RunRecord",
    "SchemaVersionError",
    "TestResultRecord",
    "open_memory",
    "parse_record",
]
