"""Which layout a store has, and how an older one is brought up to date.

The version lives in a tiny ``clnrm_meta`` collection, so embedded and server
stores keep it the same way.  Opening a store written by a newer clnrm is
refused (it may hold records this version would silently mangle); an older one
is migrated in place.  Migrations are idempotent upserts: one that is
interrupted simply runs again on the next open.

Versions:
    0  one collection ``clnrm_memory`` for every kind, filtered by ``kind``
       (filtered queries were ~75 ms p95 at 100k records)
    1  one collection per kind, ``clnrm_<kind>``; version in ``clnrm_meta``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from clnrm.memory.embedding import DIMENSIONS, make_embedder
from clnrm.memory.errors import EmbeddingMismatch, SchemaVersionError

if TYPE_CHECKING:
    from clnrm.memory._chroma import ChromaStore

CURRENT: Final = 1
META: Final = "clnrm_meta"
LEGACY_V0: Final = "clnrm_memory"
_V0_EMBEDDING: Final = "hashing-384-v1"
_MIGRATE_BATCH: Final = 1000


@dataclass(frozen=True)
class StoredMeta:
    schema_version: int
    embedding: str


def _write_meta(store: ChromaStore, version: int, embedding: str) -> None:
    unit = [1.0] + [0.0] * (DIMENSIONS - 1)
    store.collection(META).upsert(
        ids=["schema"], embeddings=[unit], documents=["clnrm memory schema"],
        metadatas=[{"schema_version": version, "embedding": embedding}])


def open_meta(store: ChromaStore, *, requested_embedding: str | None) -> StoredMeta:
    """Read (or for a new store, write) the version and embedding, refusing what we can't use."""
    got = store.collection(META).get(ids=["schema"], include=["metadatas"])
    if got["ids"]:
        meta = got["metadatas"][0]
        stored = StoredMeta(int(meta["schema_version"]), str(meta["embedding"]))
    elif store.has_collection(LEGACY_V0):
        stored = StoredMeta(0, _V0_EMBEDDING)
    else:
        stored = StoredMeta(CURRENT, make_embedder(requested_embedding).name)
        _write_meta(store, stored.schema_version, stored.embedding)
    if stored.schema_version > CURRENT or stored.schema_version not in (*MIGRATIONS, CURRENT):
        raise SchemaVersionError(
            f"memory store {store.location} has schema version {stored.schema_version}; "
            f"this clnrm reads versions up to {CURRENT}",
            location=store.location, found=stored.schema_version, supported=CURRENT,
            hint="upgrade clnrm (pip install -U clnrm) to open it, or point --memory at "
                 "another store; an exported JSONL file can be imported into a new one")
    if requested_embedding is not None:
        wanted = make_embedder(requested_embedding).name
        if wanted != stored.embedding:
            raise EmbeddingMismatch(
                f"memory store {store.location} was built with embedding "
                f"{stored.embedding!r}, not {wanted!r}", location=store.location,
                hint="open it without choosing an embedding, or export it and import "
                     "the JSONL into a new store built with the other embedding")
    return stored


def finish_open(store: ChromaStore) -> None:
    """Run the migrations from the stored version up to :data:`CURRENT`."""
    for version in range(store.schema_version, CURRENT):
        MIGRATIONS[version](store)
        _write_meta(store, version + 1, store.embedder.name)
        store.schema_version = version + 1
    # A v0->v1 migration interrupted after its meta write leaves the old collection.
    store.drop_collection(LEGACY_V0)


def _v0_to_v1(store: ChromaStore) -> None:
    """Copy the single v0 collection into per-kind ones, re-embedding and re-flattening."""
    if not store.has_collection(LEGACY_V0):
        return
    batch = []
    for record in store.page_all(store.collection(LEGACY_V0)):
        batch.append(record)
        if len(batch) >= _MIGRATE_BATCH:
            store.put(batch)
            batch = []
    if batch:
        store.put(batch)


MIGRATIONS: Final[dict[int, Callable[[ChromaStore], None]]] = {0: _v0_to_v1}
