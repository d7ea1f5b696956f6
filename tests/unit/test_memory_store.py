"""The embedded store against real Chroma: the MemoryStore contract, schema, offline-ness."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clnrm.memory import (
    BaselineRecord,
    BlackboardEntry,
    EmbeddingMismatch,
    FailureRecord,
    Kind,
    MemoryStore,
    MemoryStoreError,
    RecordImportError,
    RemediationOutcome,
    RemediationRecord,
    SchemaVersionError,
    open_memory,
)

OLD = datetime(2020, 1, 1, tzinfo=UTC)


def failure(test: str, message: str, agent: str = "chaos", **over: object) -> FailureRecord:
    return FailureRecord(agent=agent, run_id="r1", test=test, message=message,
                         **over)  # type: ignore[arg-type]


SAMPLE = [
    failure("checkout", "connection refused by postgres on port 5432"),
    failure("login", "timeout waiting for redis after 30s", agent="healer", service="redis"),
    failure("search", "elasticsearch cluster health red", created_at=OLD),
    BlackboardEntry(agent="orchestrator", topic="run r1", action="bid",
                    reason="I can restart redis quickly", bid=0.7),
    BaselineRecord(agent="performance", scenario="checkout", metric="p95_ms", value=120.0,
                   run_id="r1"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MemoryStore]:
    with open_memory(tmp_path / "mem") as opened:
        opened.put(SAMPLE)
        yield opened


def test_open_memory_returns_a_memory_store(store: MemoryStore) -> None:
    assert isinstance(store, MemoryStore)


def test_put_get_round_trip_in_requested_order(store: MemoryStore) -> None:
    ids = [SAMPLE[3].id, "failure:unknown", SAMPLE[0].id]
    assert store.get(ids) == [SAMPLE[3], SAMPLE[0]]


def test_query_finds_similar_text_best_first(store: MemoryStore) -> None:
    hits = store.query("redis timed out", k=3)
    assert hits[0].record.id == SAMPLE[1].id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert 0.0 < hits[0].score <= 1.0


def test_query_filters_by_kind_agent_and_field(store: MemoryStore) -> None:
    assert {h.record.kind for h in store.query("redis", kind="failure", k=10)} == {Kind.failure}
    only_healer = store.query("redis", kind=Kind.failure, agent="swarm/self_healing")
    assert [h.record.id for h in only_healer] == [SAMPLE[1].id]
    by_field = store.query("anything", kind="failure", where={"test": "checkout"})
    assert [h.record.id for h in by_field] == [SAMPLE[0].id]
    assert store.query("redis", kind="pattern") == []


def test_unknown_kind_is_a_clear_value_error(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="unknown kind 'failures'"):
        store.query("x", kind="failures")


def test_re_put_is_idempotent_and_updates_by_id(store: MemoryStore) -> None:
    before = store.stats().total
    fix = RemediationRecord(agent="healer", failure_id=SAMPLE[1].id, action="restart redis")
    store.put([fix])
    store.put([fix.model_copy(update={"outcome": RemediationOutcome.succeeded})])
    store.put(SAMPLE)
    assert store.stats().total == before + 1
    assert store.get([fix.id])[0].outcome is RemediationOutcome.succeeded  # type: ignore[union-attr]


def test_duplicate_ids_within_one_batch_keep_the_last(store: MemoryStore) -> None:
    a = failure("dup", "first", metadata={"n": 1})
    b = failure("dup", "first", metadata={"n": 2})
    assert store.put([a, b]).count == 2
    assert store.get([a.id])[0].metadata == {"n": 2}


def test_forget_removes_only_records_older_than_the_date(store: MemoryStore) -> None:
    assert store.forget(date(2021, 1, 1)) == 1
    assert store.get([SAMPLE[2].id]) == []
    assert store.forget(datetime.now(UTC) + timedelta(days=1), kind="blackboard") == 1
    assert store.stats().by_kind == {"run": 0, "test_result": 0, "failure": 2, "remediation": 0,
                                     "baseline": 1, "pattern": 0, "blackboard": 0}


def test_delete_counts_what_existed(store: MemoryStore) -> None:
    assert store.delete([SAMPLE[0].id, SAMPLE[0].id, "failure:nope", "weird"]) == 1
    assert store.get([SAMPLE[0].id]) == []


def test_stats_counts_by_kind_and_agent(store: MemoryStore) -> None:
    stats = store.stats()
    assert stats.total == 5 and stats.schema_version == 1 and stats.mode == "embedded"
    assert stats.by_agent["chaos"] == 2 and stats.by_agent["self_healing"] == 1
    assert stats.embedding == "hashing-384-v1"


def test_export_import_round_trip_into_a_new_store(store: MemoryStore, tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl"
    assert store.export_jsonl(path) == 5
    with open_memory(tmp_path / "other") as other:
        assert other.import_jsonl(path) == 5
        assert sorted(r.id for r in other.records()) == sorted(r.id for r in SAMPLE)


def test_import_with_a_bad_line_writes_nothing(store: MemoryStore, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(failure("new", "fresh").model_dump_json() + "\n{not json}\n")
    with pytest.raises(RecordImportError, match=r"bad.jsonl:2:"):
        store.import_jsonl(path)
    assert store.stats().total == 5


def test_records_survive_close_and_reopen(tmp_path: Path) -> None:
    with open_memory(tmp_path / "mem") as first:
        first.put(SAMPLE)
    with open_memory(tmp_path / "mem") as again:
        assert again.get([r.id for r in SAMPLE]) == SAMPLE
        assert again.query("postgres refused", kind="failure")[0].record.id == SAMPLE[0].id


def _raw_client(root: Path) -> Any:  # chromadb's ClientAPI, imported lazily
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(str(root / "chroma"),
                                     settings=Settings(anonymized_telemetry=False))


def test_v0_store_is_migrated_to_per_kind_collections(tmp_path: Path) -> None:
    from clnrm.memory._chroma import ClnrmEmbeddingFunction
    from clnrm.memory.embedding import HashingEmbedder

    root = tmp_path / "old"
    client = _raw_client(root)
    legacy = client.get_or_create_collection("clnrm_memory",
                                             embedding_function=ClnrmEmbeddingFunction())
    legacy.upsert(ids=[r.id for r in SAMPLE],
                  embeddings=HashingEmbedder().embed([r.embedding_text() for r in SAMPLE]),
                  documents=[r.model_dump_json() for r in SAMPLE],
                  metadatas=[{"kind": r.kind.value} for r in SAMPLE])
    client.close()

    with open_memory(root) as store:
        stats = store.stats()
        assert stats.schema_version == 1 and stats.total == 5
        assert store.query("redis", kind="failure", agent="healer")[0].record.id == SAMPLE[1].id
    client = _raw_client(root)
    assert "clnrm_memory" not in {c.name for c in client.list_collections()}
    client.close()


def _set_meta(root: Path, version: int, embedding: str = "hashing-384-v1") -> None:
    client = _raw_client(root)
    client.get_collection("clnrm_meta").update(
        ids=["schema"], metadatas=[{"schema_version": version, "embedding": embedding}])
    client.close()


def test_newer_schema_is_refused_with_version_and_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "new"
    open_memory(root).close()
    _set_meta(root, 99)
    with pytest.raises(SchemaVersionError) as info:
        open_memory(root)
    message = str(info.value)
    assert "schema version 99" in message and "versions up to 1" in message
    assert "Hint: upgrade clnrm" in message
    assert info.value.found == 99 and info.value.supported == 1


def test_store_built_with_another_embedding_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "emb"
    open_memory(root).close()
    _set_meta(root, 1, embedding="hashing-384-v0")
    with pytest.raises(EmbeddingMismatch, match="hashing-384-v0"):
        open_memory(root)


def test_unknown_embedding_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError, match="unknown embedding 'word2vec'"):
        open_memory(tmp_path / "m", embedding="word2vec")


OFFLINE_CHECK = r"""
import socket, sys
import chromadb.api.types as types
from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2 as onnx

def refuse(self, *a, **k):
    raise AssertionError("Chroma's default embedding function was used")
def refuse_call(self, input):
    raise AssertionError("Chroma's default embedding function was called")
types.DefaultEmbeddingFunction.__init__ = refuse
types.DefaultEmbeddingFunction.__call__ = refuse_call
onnx.ONNXMiniLM_L6_V2.__init__ = refuse
onnx.ONNXMiniLM_L6_V2.__call__ = refuse_call
onnx.ONNXMiniLM_L6_V2._download_model_if_not_exists = refuse

real_connect = socket.socket.connect
def guarded(self, address):
    if self.family != socket.AF_UNIX:
        raise AssertionError(f"network access attempted: {address!r}")
    return real_connect(self, address)
socket.socket.connect = guarded
socket.create_connection = lambda *a, **k: guarded(socket.socket(), a[0])

from clnrm.memory import FailureRecord, open_memory
with open_memory(sys.argv[1]) as store:
    store.put([FailureRecord(agent="chaos", test="t", message="disk full")])
    assert store.query("disk", kind="failure")[0].record.test == "t"
    store.stats(); store.forget(__import__("datetime").date(2000, 1, 1))
print("offline-ok")
"""


def test_no_model_download_or_network_and_no_default_embedding(tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", OFFLINE_CHECK, str(tmp_path / "m")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "offline-ok"
    assert not (tmp_path / ".cache" / "chroma").exists()


def test_agent_filter_fast_path_gives_the_same_hits_as_chromas_where(tmp_path: Path) -> None:
    from clnrm.memory._chroma import ChromaStore, connect_embedded

    agents = ["architect", "orchestration", "intelligence", "chaos", "performance",
              "self_healing"]
    words = "redis postgres kafka timeout refused reset oom disk dns tls latency".split()
    records = [failure(f"t{i}", f"{words[i % 11]} {words[(i * 7) % 11]} {words[(i * 3) % 11]} {i}",
                       agent=agents[i % 6]) for i in range(600)]
    store = ChromaStore(connect_embedded(tmp_path / "c"), location="t", mode="embedded")
    try:
        store.put(records)
        collection = store._collections[Kind.failure]
        for text in ["redis timeout", "disk oom 17", "tls reset kafka"]:
            vector = store.embedder.embed([text])
            for k in (1, 10, 150):
                clauses = [{"agent": "chaos"}]
                fast = store._post_filtered(collection, vector, k, clauses)
                slow = store._filtered(collection, vector, k, clauses)
                if fast is not None:
                    # the fast path ranks by HNSW (approximate); Chroma filters a selective
                    # `where` exactly. So: only matching records, best first, and (nearly)
                    # the same records: a near-tie may swap under a differently built index.
                    assert all(h.record.agent.value == "chaos" for h in fast)
                    scores = [h.score for h in fast]
                    assert scores == sorted(scores, reverse=True) and len(fast) == len(slow)
                    same = {h.record.id for h in fast} & {h.record.id for h in slow}
                    assert len(same) >= 0.8 * len(slow) - 1, (text, k)
                    assert abs(fast[0].score - slow[0].score) < 0.02
        assert store._post_filtered(collection, vector, 10, [{"created_at": {"$lt": 1.0}}]) is None
    finally:
        store.close()


# -- crash safety: never re-upsert committed ids; find and rebuild a wedged index ----------
def _queue_rows(root: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{root / 'chroma' / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT coalesce(max(seq_id), 0) FROM embeddings_queue")
                   .fetchone()[0])


def test_resending_committed_records_writes_nothing_to_chromas_log(tmp_path: Path) -> None:
    records = [failure(f"t{i}", f"boom {i}") for i in range(50)]
    with open_memory(tmp_path / "mem") as store:
        store.put(records)
        before = _queue_rows(tmp_path / "mem")
        ack = store.put(records[:30])  # what a client resends after re-election
        assert ack.count == 30
        assert _queue_rows(tmp_path / "mem") == before  # no upsert of a present id
        store.put([*records[30:], failure("t-new", "a new one")])
        assert _queue_rows(tmp_path / "mem") == before + 1  # only the new id was added
        assert store.stats().total == 51


def _wedge(root: Path, records: int = 1200) -> list[FailureRecord]:
    """A store whose persisted HNSW id map is torn, as a SIGKILL inside Chroma's persist leaves it.

    Chroma truncates ``index_metadata.pickle`` before rewriting it every 1000 writes;
    reopening such a store fails in every read and write with a compaction error.
    """
    batch = [failure(f"t{i}", f"boom {i} in the wedge") for i in range(records)]
    with open_memory(root) as store:
        store.put(batch)
    pickles = list((root / "chroma").glob("*/index_metadata.pickle"))
    assert pickles, "Chroma persisted no index (fewer than 1000 writes?)"
    for pickle in pickles:
        pickle.write_bytes(b"")
    return batch


def test_wedged_index_is_rebuilt_from_sqlite_when_a_writer_opens_it(tmp_path: Path) -> None:
    from clnrm.memory._repair import REPAIR_LOG, RepairReport

    batch = _wedge(tmp_path / "mem")
    with open_memory(tmp_path / "mem") as store:
        assert store.repaired_on_open is not None  # type: ignore[attr-defined]
        assert store.get([r.id for r in batch[:5]]) == batch[:5]
        assert store.query("boom 7 in the wedge", kind="failure", k=1)[0].record.id == batch[7].id
        assert store.stats().total == len(batch)
        assert store.check().healthy  # type: ignore[attr-defined]
    lines = (tmp_path / "mem" / REPAIR_LOG).read_text().splitlines()
    assert len(lines) == 1
    report = RepairReport.model_validate_json(lines[0])
    assert report.records == len(batch) and "cannot apply its log" in report.reason
    assert sorted(p.name for p in (tmp_path / "mem").iterdir() if p.is_dir()) == ["chroma"]


def test_open_without_repair_reports_the_wedge_with_what_to_do(tmp_path: Path) -> None:
    from clnrm.memory.errors import StoreWedged

    _wedge(tmp_path / "mem")
    with pytest.raises(StoreWedged) as caught:
        open_memory(tmp_path / "mem", repair=False)
    assert "clnrm memory repair" in str(caught.value)
    assert not (tmp_path / "mem" / "repair.log").exists()  # nothing was changed


def test_repair_of_a_healthy_store_keeps_every_record_exactly_once(tmp_path: Path) -> None:
    records = [failure(f"t{i}", f"boom {i}") for i in range(40)]
    with open_memory(tmp_path / "mem") as store:
        store.put([*records, *SAMPLE])
        report = store.repair()  # type: ignore[attr-defined]
        assert report.records == len(records) + len(SAMPLE)
        ids = [r.id for r in store.records()]
        assert len(ids) == len(set(ids)) == len(records) + len(SAMPLE)
        assert store.get([SAMPLE[3].id]) == [SAMPLE[3]]
        store.put([failure("after", "writes go on after a repair")])
        assert store.stats().total == len(ids) + 1


def test_interrupted_swap_is_finished_or_undone_on_the_next_open(tmp_path: Path) -> None:
    from clnrm.memory._repair import DONE_MARK, REBUILD_DIR, recover_swap

    root = tmp_path / "mem"
    with open_memory(root) as store:
        store.put(SAMPLE)
    # Killed after the old store moved away but before the complete rebuild moved in.
    (root / "chroma").rename(root / REBUILD_DIR)
    (root / REBUILD_DIR / DONE_MARK).write_text("complete\n")
    assert recover_swap(root) == "finished an interrupted swap"
    # Killed mid-rebuild after the old one moved away: the old one comes back.
    (root / "chroma").rename(root / "chroma.backup-20240101T000000Z")
    (root / REBUILD_DIR).mkdir()
    assert recover_swap(root) == "removed an unfinished rebuild"
    assert not (root / REBUILD_DIR).exists()
    with open_memory(root) as store:
        assert store.get([r.id for r in SAMPLE]) == SAMPLE


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clnrm", "memory", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_check_says_wedged_exit_1_and_repair_makes_it_healthy(tmp_path: Path) -> None:
    import json

    batch = _wedge(tmp_path / "mem")
    checked = _cli("check", "--memory", str(tmp_path / "mem"), "--format", "json")
    assert checked.returncode == 1, checked.stderr
    health = json.loads(checked.stdout)
    assert health["wedged"] is True and health["total"] == len(batch)
    assert health["by_namespace"] == {"swarm/chaos": len(batch)}
    failure_row = next(c for c in health["collections"] if c["name"] == "clnrm_failure")
    assert failure_row["records"] == len(batch)
    repaired = _cli("repair", "--memory", str(tmp_path / "mem"), "--format", "json")
    assert repaired.returncode == 0, repaired.stderr
    out = json.loads(repaired.stdout)
    assert out["repair"]["records"] == len(batch) and out["health"]["healthy"] is True
    again = _cli("check", "--memory", str(tmp_path / "mem"))
    assert again.returncode == 0 and "healthy" in again.stdout


def test_cli_stats_on_a_store_that_cannot_be_rebuilt_is_one_error_line_exit_2(
        tmp_path: Path) -> None:
    _wedge(tmp_path / "mem")
    (tmp_path / "mem" / "chroma.rebuild").write_text("in the way\n")  # not a directory
    result = _cli("stats", "--memory", str(tmp_path / "mem"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "clnrm memory repair" in result.stderr
    assert result.stderr.startswith("error: ")


def test_writer_rebuilds_an_index_that_wedges_mid_session_and_acks_the_put(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clnrm.memory._chroma import ChromaStore
    from clnrm.memory.errors import StoreWedged

    real_write = ChromaStore._write
    calls = {"n": 0}

    def wedge_once(self: ChromaStore, collection: object, items: list) -> None:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 2:  # the second write finds Chroma wedged, as in #7678
            raise StoreWedged("Error in compaction: Failed to apply logs to the hnsw segment "
                              "writer", location=str(tmp_path))
        real_write(self, collection, items)

    monkeypatch.setattr(ChromaStore, "_write", wedge_once)
    with open_memory(tmp_path / "mem") as store:
        store.put(SAMPLE[:2])
        ack = store.put([failure("after", "the put that met the wedge")])
        assert ack.count == 1
        assert store.stats().total == 3
        server = store._server  # type: ignore[attr-defined]
        assert len(server.repairs) == 1 and server.repairs[0].records == 2


def test_cli_export_write_error_is_exit_2_and_leaves_no_file(tmp_path: Path) -> None:
    """ENOSPC (a full disk) is an error, not "exported N records"; nothing partial stays."""
    from tests.conftest import run_cli

    with open_memory(tmp_path / "mem") as opened:
        opened.put([failure(f"t{i}", "no space " * 120) for i in range(40)])  # ~40 KB of JSON
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(tiny)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a 16 KiB tmpfs needs root")
    try:
        res = run_cli("memory", "export", str(tiny / "dump.jsonl"), "--memory",
                      str(tmp_path / "mem"), timeout=300)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "Traceback" not in res.stderr and "exported" not in res.stdout
        assert res.stderr.strip() == (f"error: {tiny / 'dump.jsonl'}: cannot write the export: "
                                      "No space left on device")
        assert list(tiny.iterdir()) == []  # neither the target nor the temporary file
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
