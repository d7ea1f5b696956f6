"""The store on Chroma: one collection per record kind, vectors computed here.

One collection per kind is a measured choice: at 100k records a ``where
kind=...`` filter inside one shared collection took p95 ~75 ms (Chroma
materialises the matching ids first), while querying the kind's own collection
takes ~2 ms.  Cross-kind queries ask each collection and merge by score.

Vectors are computed by :mod:`clnrm.memory.embedding` and passed explicitly; the
collections are also given that embedding function, so Chroma never falls back
to its default one (which would download a model).
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import urlparse

import chromadb
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from chromadb.errors import NotFoundError
from chromadb.utils.embedding_functions import register_embedding_function
from clnrm.memory import schema
from clnrm.memory._common import StoreMixin, as_agent, as_instant, as_kind, where_clauses
from clnrm.memory.embedding import TextEmbedder, make_embedder
from clnrm.memory.errors import MemoryUnavailable, StoreWedged
from clnrm.memory.records import Agent, Kind, Record, flat_metadata, parse_record
from clnrm.memory.types import Hit, MemoryStats, PutAck

PAGE: Final = 1000
_OVERFETCH: Final = 20
# What Chroma's errors say when its log cannot be applied to a segment (the wedge
# of chroma-core/chroma#7678 and its relatives: a torn index file or id map).
_WEDGE_MARKS: Final = ("error in compaction", "apply logs", "backfill", "hnsw segment",
                       "segment reader", "segment writer", "hnsw index")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def is_wedge(exc: BaseException) -> bool:
    """Whether a Chroma error means its index cannot apply the log (rebuild needed)."""
    text = str(exc).lower()
    return isinstance(exc, StoreWedged) or any(mark in text for mark in _WEDGE_MARKS)


@contextmanager
def _wedge_guard(location: str) -> Iterator[None]:
    """Chroma's wedge error as :class:`StoreWedged`; every other error unchanged."""
    try:
        yield
    except StoreWedged:
        raise
    except Exception as exc:
        if not is_wedge(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreWedged(f"memory store {location}: Chroma cannot apply its log to the "
                          f"vector index ({first})", location=location) from exc


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _wedge_guard(args[0].location):  # type: ignore[attr-defined]
            return method(*args, **kwargs)
    return wrapper


@register_embedding_function
class ClnrmEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma's view of our offline embedder; registered so stored configs resolve to it."""

    def __init__(self, embedding: str | None = None) -> None:
        self._embedder = make_embedder(embedding)

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "clnrm"

    def get_config(self) -> dict[str, Any]:
        return {"embedding": self._embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ClnrmEmbeddingFunction:
        return ClnrmEmbeddingFunction(config.get("embedding"))

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine"]

    def is_legacy(self) -> bool:
        return False


def _settings() -> Settings:
    return Settings(anonymized_telemetry=False, allow_reset=False)


def connect_embedded(path: Path) -> Any:
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=_settings())


def connect_server(url: str) -> Any:
    parsed = urlparse(url)
    if not parsed.hostname or not parsed.port:
        raise MemoryUnavailable(f"--memory {url!r} is not http://HOST:PORT", location=url)
    try:
        client = chromadb.HttpClient(host=parsed.hostname, port=parsed.port,
                                     ssl=parsed.scheme == "https", settings=_settings())
        client.heartbeat()
    except Exception as exc:
        raise MemoryUnavailable(
            f"no Chroma server answers at {url}: {exc}", location=url,
            hint="start one with `python -m clnrm.memory.chroma_server --port PORT --path DIR` "
                 "(or `chroma run`), or drop --memory to use the embedded store") from exc
    return client


class ChromaStore(StoreMixin):
    """A :class:`~clnrm.memory.types.MemoryStore` talking to Chroma directly.

    Safe for threads (writes are serialised); for several processes use it only
    behind a Chroma server or the elected writer of :mod:`clnrm.memory._writer`.
    """

    def __init__(self, client: Any, *, location: str, mode: str,
                 embedding: str | None = None) -> None:
        self._client = client
        self.location = location
        self.mode = mode
        self._write_lock = threading.Lock()
        self._ef: ClnrmEmbeddingFunction | None = None
        with _wedge_guard(location):
            stored = schema.open_meta(self, requested_embedding=embedding)
            self.schema_version = stored.schema_version
            self.embedder: TextEmbedder = make_embedder(stored.embedding)
            self._ef = ClnrmEmbeddingFunction(self.embedder.name)
            self._max_batch = int(client.get_max_batch_size())
            self._collections = {kind: self.collection(f"clnrm_{kind.value}") for kind in Kind}
            schema.finish_open(self)

    # -- plumbing shared with clnrm.memory.schema ---------------------------
    def collection(self, name: str) -> Any:
        return self._client.get_or_create_collection(
            name, embedding_function=self._ef_or_default(),
            configuration={"hnsw": {"space": "cosine"}})

    def has_collection(self, name: str) -> bool:
        # Not list_collections(): it builds every Collection with Chroma's default
        # embedding function.
        try:
            self._client.get_collection(name, embedding_function=self._ef_or_default())
        except NotFoundError:
            return False
        return True

    def _ef_or_default(self) -> ClnrmEmbeddingFunction:
        if self._ef is None:
            self._ef = ClnrmEmbeddingFunction()
        return self._ef

    def drop_collection(self, name: str) -> None:
        if self.has_collection(name):
            self._client.delete_collection(name)

    # -- MemoryStore ---------------------------------------------------------
    def put(self, records: Iterable[Record]) -> PutAck:
        by_kind: dict[Kind, dict[str, Record]] = defaultdict(dict)
        ids: list[str] = []
        for record in records:
            by_kind[record.kind][record.id] = record  # last one wins within a batch
            ids.append(record.id)
        with self._write_lock, _wedge_guard(self.location):
            for kind, batch in by_kind.items():
                items = list(batch.values())
                for start in range(0, len(items), self._max_batch):
                    self._write(self._collections[kind], items[start:start + self._max_batch])
        return PutAck(count=len(ids), ids=ids)

    def _write(self, collection: Any, items: list[Record]) -> None:
        """Add what is new, rewrite what changed, and leave identical records alone.

        Never an upsert of an id that is already stored with the same content:
        a SIGKILL while Chroma applies such an upsert can leave its HNSW segment
        unable to apply its log ever again (chroma-core/chroma#7678), and a
        client's resend after re-election is exactly that write.  ``add`` of an
        id the index already holds is skipped when Chroma replays its log, so a
        resend, and a replay after a crash, touch nothing that is committed.
        """
        present = set(collection.get(ids=[r.id for r in items], include=[])["ids"])
        new = [r for r in items if r.id not in present]
        changed: list[Record] = []
        if present:
            stored = collection.get(ids=list(present), include=["documents"])
            docs = dict(zip(stored["ids"], stored["documents"] or [], strict=True))
            changed = [r for r in items if r.id in present
                       and docs.get(r.id) != r.model_dump_json()]
        if new:
            self._send(collection.add, new)
        if changed:  # a real update by id: rare, and repaired on open if it is interrupted
            self._send(collection.upsert, changed)

    def _send(self, method: Any, items: list[Record]) -> None:
        vectors = self.embedder.embed([r.embedding_text() for r in items])
        method(ids=[r.id for r in items], embeddings=vectors,
               documents=[r.model_dump_json() for r in items],
               metadatas=[flat_metadata(r) for r in items])

    def probe(self) -> None:
        """Make Chroma apply its pending log to every collection now; :class:`StoreWedged` if not.

        Chroma applies a collection's log on the first read in a process and on
        every write; a wedged index fails there, so counting each collection
        once is enough to find it without touching any record.
        """
        with self._write_lock, _wedge_guard(self.location):
            self.collection(schema.META).count()
            for collection in self._collections.values():
                if collection.count():
                    collection.query(query_embeddings=self.embedder.embed(["probe"]),
                                     n_results=1, include=[])

    def check(self) -> Any:
        """Probe the index and count records (a server store: no SQLite file to read here)."""
        from clnrm.memory._repair import StoreHealth

        error: StoreWedged | None = None
        try:
            self.probe()
        except StoreWedged as exc:
            error = exc
        stats = None if error is not None else self.stats()
        return StoreHealth(location=self.location, mode=self.mode, healthy=error is None,
                           wedged=error is not None,
                           probe_error=None if error is None else str(error),
                           total=stats.total if stats else 0,
                           by_kind=stats.by_kind if stats else {},
                           by_namespace={f"swarm/{a}": n for a, n in stats.by_agent.items()}
                           if stats else {})

    @_guarded
    def get(self, ids: Sequence[str]) -> list[Record]:
        found: dict[str, Record] = {}
        for kind, wanted in _ids_by_kind(ids).items():
            result = self._collections[kind].get(ids=wanted, include=["documents"])
            for doc in result["documents"] or []:
                record = parse_record(doc)
                found[record.id] = record
        return [found[i] for i in ids if i in found]

    @_guarded
    def query(self, text: str, *, kind: Kind | str | None = None,
              agent: Agent | str | None = None, k: int = 10,
              where: Mapping[str, Any] | None = None) -> list[Hit]:
        kinds = [as_kind(kind)] if kind is not None else list(Kind)
        clauses = where_clauses(as_agent(agent), where)
        vector = self.embedder.embed([text])
        hits: list[Hit] = []
        for each in kinds:
            collection = self._collections[each]  # type: ignore[index]
            found = self._post_filtered(collection, vector, k, clauses) if clauses else None
            if found is None:
                found = self._filtered(collection, vector, k, clauses)
            hits.extend(found)
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    def _filtered(self, collection: Any, vector: Any, k: int,
                  clauses: list[dict[str, Any]]) -> list[Hit]:
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        result = collection.query(query_embeddings=vector, n_results=k, where=where,
                                  include=["documents", "distances"])
        return [Hit(record=parse_record(doc), score=1.0 - float(distance))
                for doc, distance in zip(result["documents"][0], result["distances"][0],
                                         strict=True)]

    def _post_filtered(self, collection: Any, vector: Any, k: int,
                       clauses: list[dict[str, Any]]) -> list[Hit] | None:
        """Equality filters applied to an over-fetched unfiltered top-N, or None to fall back.

        Measured at 100k records: Chroma's own ``where`` on a selective field
        (one agent of six) took p95 ~80 ms; the unfiltered top-200 plus a check
        in Python ~26 ms p95 on a loaded machine (bench/memory.py).  If at least
        ``k`` of the top N match, they are the filtered top k as far as the HNSW
        index ranks (anything better would rank inside N too); Chroma answers a
        selective ``where`` by exact search, so the two can differ on near-ties.
        """
        wanted: dict[str, Any] = {}
        for clause in clauses:
            (key, value), = clause.items()
            if key.startswith("$") or isinstance(value, dict | list):
                return None  # operators: leave them to Chroma
            wanted[key] = value
        fetch = max(_OVERFETCH * k, 200)
        result = collection.query(query_embeddings=vector, n_results=fetch,
                                  include=["metadatas", "distances"])
        ids, metas, dists = result["ids"][0], result["metadatas"][0], result["distances"][0]
        chosen = [(i, d) for i, m, d in zip(ids, metas, dists, strict=True)
                  if all(m.get(key) == value for key, value in wanted.items())][:k]
        if len(chosen) < k and len(ids) == fetch:
            return None  # too few in the top N: the filtered top k may lie beyond it
        if not chosen:  # nothing matches (Chroma refuses get(ids=[]))
            return []
        docs = collection.get(ids=[i for i, _ in chosen], include=["documents"])
        by_id = {i: doc for i, doc in zip(docs["ids"], docs["documents"], strict=True)}
        return [Hit(record=parse_record(by_id[i]), score=1.0 - float(d)) for i, d in chosen]

    def records(self, kind: Kind | str | None = None) -> Iterator[Record]:
        for each in [as_kind(kind)] if kind is not None else list(Kind):
            yield from self.page_all(self._collections[each])  # type: ignore[index]

    @_guarded
    def page(self, kind: Kind | str, offset: int, limit: int = PAGE) -> list[Record]:
        """One page of a kind's records, for callers that page over a connection."""
        collection = self._collections[as_kind(kind)]  # type: ignore[index]
        docs = collection.get(limit=limit, offset=offset, include=["documents"])["documents"]
        return [parse_record(doc) for doc in docs or []]

    @staticmethod
    def page_all(collection: Any) -> Iterator[Record]:
        offset = 0
        while True:
            docs = collection.get(limit=PAGE, offset=offset, include=["documents"])["documents"]
            for doc in docs or []:
                yield parse_record(doc)
            if not docs or len(docs) < PAGE:
                return
            offset += len(docs)

    @_guarded
    def delete(self, ids: Sequence[str]) -> int:
        removed = 0
        with self._write_lock:
            for kind, wanted in _ids_by_kind(ids).items():
                collection = self._collections[kind]
                present = collection.get(ids=wanted, include=[])["ids"]
                if present:
                    collection.delete(ids=present)
                    removed += len(present)
        return removed

    @_guarded
    def forget(self, before: datetime | date, *, kind: Kind | str | None = None) -> int:
        cutoff = as_instant(before).timestamp()
        removed = 0
        with self._write_lock:
            for each in [as_kind(kind)] if kind is not None else list(Kind):
                collection = self._collections[each]  # type: ignore[index]
                old = collection.get(where={"created_at": {"$lt": cutoff}}, include=[])["ids"]
                for start in range(0, len(old), self._max_batch):
                    collection.delete(ids=old[start:start + self._max_batch])
                removed += len(old)
        return removed

    @_guarded
    def stats(self) -> MemoryStats:
        by_kind = {kind.value: int(self._collections[kind].count()) for kind in Kind}
        by_agent: dict[str, int] = {}
        for agent in Agent:
            by_agent[agent.value] = sum(
                len(self._collections[kind].get(where={"agent": agent.value}, include=[])["ids"])
                for kind in Kind if by_kind[kind.value])
        return MemoryStats(location=self.location, mode=self.mode,
                           schema_version=self.schema_version, embedding=self.embedder.name,
                           total=sum(by_kind.values()), by_kind=by_kind, by_agent=by_agent)

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()


def _ids_by_kind(ids: Sequence[str]) -> dict[Kind, list[str]]:
    """Route ids to collections by their ``kind:`` prefix; other ids cannot exist."""
    grouped: dict[Kind, list[str]] = defaultdict(list)
    for record_id in dict.fromkeys(ids):
        prefix = record_id.split(":", 1)[0]
        if prefix in Kind.__members__:
            grouped[Kind(prefix)].append(record_id)
    return grouped
