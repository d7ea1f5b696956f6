"""Many writer processes and SIGKILL, against real Chroma (embedded and server).

Each worker is a separate interpreter (subprocess), as agents would be.  No
Docker is needed (this folder's conftest marks every test ``docker`` anyway).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clnrm.memory import FailureRecord, open_memory

PROCESSES = 8
PER_PROCESS = 2000
BATCH = 100

WORKER = r"""
import sys
from clnrm.memory import FailureRecord, open_memory
location, who, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def record(i):
    return FailureRecord(agent="chaos", run_id=who, test=f"t{i}", message=f"boom {i} in {who}")
with open_memory(location) as store:
    for start in range(0, count, batch):
        store.put([record(i) for i in range(start, min(count, start + batch))])
    # A retry of an already acknowledged batch must not add anything.
    store.put([record(i) for i in range(min(batch, count))])
print("done", who, flush=True)
"""

STREAMER = r"""
import sys
from clnrm.memory import FailureRecord, open_memory
location, who = sys.argv[1], sys.argv[2]
store = open_memory(location)
print("open", "writer" if getattr(store, "is_writer", False) else "client", flush=True)
i = 0
while True:
    ack = store.put([FailureRecord(agent="chaos", run_id=who, test=f"t{j}", message=f"m{j}")
                     for j in range(i, i + 50)])
    print(" ".join(ack.ids), flush=True)
    i += 50
"""

HOLDER = r"""
import sys, time
from clnrm.memory import open_memory
store = open_memory(sys.argv[1])
print("open", "writer" if store.is_writer else "client", flush=True)
time.sleep(3600)
"""


def expected_ids(processes: int = PROCESSES, count: int = PER_PROCESS) -> set[str]:
    return {FailureRecord(agent="chaos", run_id=f"p{p}", test=f"t{i}",
                          message=f"boom {i} in p{p}").id
            for p in range(processes) for i in range(count)}


def run_writers(location: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, location, f"p{p}",
                               str(PER_PROCESS), str(BATCH)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(PROCESSES)]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        assert out.startswith("done")


def assert_exactly_all_written(location: str) -> None:
    with open_memory(location) as store:
        ids = [r.id for r in store.records()]
        assert store.stats().total == PROCESSES * PER_PROCESS
    assert len(ids) == len(set(ids)), "a record was stored twice"
    assert set(ids) == expected_ids(), "records were lost or invented"


@pytest.mark.slow
def test_eight_processes_through_the_elected_writer_lose_and_duplicate_nothing(
        tmp_path: Path) -> None:
    run_writers(str(tmp_path / "mem"))
    assert_exactly_all_written(str(tmp_path / "mem"))


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    """A fresh ``chroma run`` server per test (~1.5 s to start), always stopped."""
    from clnrm.memory.chroma_server import chroma_server

    with chroma_server(tmp_path / "chroma-server") as url:
        yield url


@pytest.mark.slow
def test_eight_processes_against_a_chroma_server_lose_and_duplicate_nothing(
        chroma_url: str) -> None:
    run_writers(chroma_url)
    assert_exactly_all_written(chroma_url)


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def read_acks(proc: subprocess.Popen[str], at_least: int, timeout: float = 60) -> list[str]:
    """Acknowledged ids printed by a streamer, until ``at_least`` have been seen."""
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + timeout
    while len(acked) < at_least:
        assert time.monotonic() < deadline, "the streamer stopped acknowledging writes"
        line = proc.stdout.readline()
        assert line, f"streamer exited: {proc.stderr.read() if proc.stderr else ''}"
        acked.extend(line.split())
    return acked


def sigkill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkill_of_the_writer_mid_stream_keeps_every_acknowledged_record(
        tmp_path: Path) -> None:
    root = tmp_path / "mem"
    streamer = start(STREAMER, str(root), "k")
    try:
        assert streamer.stdout is not None
        assert streamer.stdout.readline().strip() == "open writer"
        acked = read_acks(streamer, at_least=1500)
    finally:
        sigkill(streamer)
    assert streamer.stdout is not None
    acked += streamer.stdout.read().split()  # acks printed just before the kill
    with open_memory(root) as store:
        found = store.get(acked)
        assert len(found) == len(acked)
        assert store.query("m7", kind="failure", k=3), "the index answers after the kill"


def test_client_takes_over_when_the_writer_is_killed_and_loses_no_ack(tmp_path: Path) -> None:
    root = tmp_path / "mem"
    holder = start(HOLDER, str(root))
    streamer = None
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open writer"
        streamer = start(STREAMER, str(root), "c")
        assert streamer.stdout is not None
        assert streamer.stdout.readline().strip() == "open client"
        acked = read_acks(streamer, at_least=500)
        sigkill(holder)  # the writer dies while the client is streaming through it
        acked += read_acks(streamer, at_least=1000)  # it carries on as the new writer
    finally:
        if holder.poll() is None:
            sigkill(holder)
        if streamer is not None:
            sigkill(streamer)  # and then the second writer dies too
    assert streamer.stdout is not None
    acked += streamer.stdout.read().split()
    with open_memory(root) as store:
        assert len(store.get(acked)) == len(acked)


def test_server_store_offers_the_same_api(chroma_url: str, tmp_path: Path) -> None:
    from datetime import date

    from clnrm.memory import BlackboardEntry, MemoryStore

    records = [FailureRecord(agent="healer", run_id="s", test="login", message="redis timeout"),
               BlackboardEntry(agent="orchestrator", topic="s", action="claim", reason="mine",
                               created_at="2020-01-01T00:00:00Z")]  # type: ignore[arg-type]
    with open_memory(chroma_url) as store:
        assert isinstance(store, MemoryStore)
        store.put(records)
        store.put(records)
        assert store.get([r.id for r in records]) == records
        hits = store.query("redis timed out", kind="failure", agent="self_healing")
        assert hits[0].record == records[0]
        assert store.stats().mode == "server"
        path = tmp_path / "dump.jsonl"
        assert store.export_jsonl(path) == 2
        assert store.forget(date(2021, 1, 1), kind="blackboard") == 1
        assert store.import_jsonl(path) == 2
        assert store.get([records[1].id]) == [records[1]]
