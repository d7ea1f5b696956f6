"""The embedded memory under repeated SIGKILL: does it lose, duplicate or wedge?

    .venv/bin/python bench/memory_kill.py [--writers 8] [--kills 100] [--repeats 5]

Each repeat starts ``--writers`` real processes on one fresh embedded store
(the user's code path: ``open_memory`` with its defaults, so one of them is the
flock-elected writer and the others its clients).  Each writes failure records
in batches and, like an at-least-once producer, resends its previous (already
acknowledged) batch with every new one, so ids the store already holds arrive
again all the time, the pattern that wedges Chroma under SIGKILL
(chroma-core/chroma#7678).  A writer appends the ids of every acknowledged
batch to its own log file (flushed per batch, so a SIGKILL loses none).

A killer sends ``--kills`` SIGKILLs, at least ``--writer-share`` of them to the
elected writer (its pid is in ``writer.lock``), the rest to a random process,
each after the store has acknowledged something new since the last kill plus a
seeded random delay; every killed process is started again.  Then all stop, and
the store is checked: first as the storm left it (``check`` without repair:
wedged or not), then opened as users open it (``open_memory``: the writer
proves its index and rebuilds it from SQLite if needed), and every acknowledged
id must be there exactly once.  Query latency (p50/p95) is measured on the
recovered store.

``--legacy-upsert`` makes every writer upsert whole batches as clnrm did before
(to show the trigger); the default is the shipped code path.  Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKER = r"""
import os, sys, time
from pathlib import Path
location, log_path, who, batch = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if os.environ.get("CLNRM_BENCH_LEGACY_UPSERT") == "1":
    import clnrm.memory._chroma as chroma
    chroma.ChromaStore._write = lambda self, coll, items: self._send(coll.upsert, items)
from clnrm.memory import FailureRecord, open_memory
from clnrm.memory.errors import MemoryStoreError
stop = Path(location).parent / "stop"
def record(i):
    return FailureRecord(agent="chaos", run_id=who, test=f"t{i}",
                         message=f"boom {i} in {who} at step {i % 97}")
start = 0
if log_path.exists():
    for line in log_path.read_text().splitlines():
        if line.startswith("ack "):
            start = max(start, int(line.split()[1]) + batch)
out = log_path.open("a", buffering=1)
store = open_memory(location)
previous = []
i = start
while not stop.exists():
    new = [record(j) for j in range(i, i + batch)]
    try:
        store.put(previous + new)
    except MemoryStoreError as exc:
        out.write(f"err {type(exc).__name__} {str(exc).splitlines()[0]}\n")
        time.sleep(0.2)
        continue
    out.write(f"ack {i} " + " ".join(r.id for r in new) + "\n")
    previous = new
    i += batch
store.close()
out.write("closed\n")
"""


def _spawn(store: Path, logs: Path, who: str, batch: int, legacy: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if legacy:
        env["CLNRM_BENCH_LEGACY_UPSERT"] = "1"
    err = (logs / f"{who}.stderr").open("ab")
    return subprocess.Popen([sys.executable, "-c", WORKER, str(store), str(logs / f"{who}.log"),
                             who, str(batch)], env=env, stdout=subprocess.DEVNULL, stderr=err,
                            cwd=str(ROOT))


def _writer_pid(store: Path) -> int | None:
    try:
        return int((store / "writer.lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _acks(logs: Path) -> tuple[int, int]:
    lines = errors = 0
    for path in logs.glob("*.log"):
        for line in path.read_text().splitlines():
            lines += line.startswith("ack ")
            errors += line.startswith("err ")
    return lines, errors


def _acked_ids(logs: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text().splitlines():
            if line.startswith("ack "):
                ids.extend(line.split()[2:])
    return ids


def one_repeat(base: Path, index: int, args: argparse.Namespace, rng: random.Random
               ) -> dict[str, Any]:
    from clnrm.memory import open_memory
    from clnrm.memory._repair import health, repairs_logged
    from clnrm.memory.errors import StoreWedged

    run = base / f"run{index}"
    store, logs = run / "store", run / "logs"
    logs.mkdir(parents=True)
    started = time.monotonic()
    procs = {f"w{i}": _spawn(store, logs, f"w{i}", args.batch, args.legacy_upsert)
             for i in range(args.writers)}
    writer_kills = other_kills = stalls = 0
    last_acks = 0
    for kill in range(args.kills):
        deadline = time.monotonic() + args.stall
        while time.monotonic() < deadline:  # kill only after the store made progress
            acks, _ = _acks(logs)
            if acks > last_acks:
                break
            time.sleep(0.05)
        else:
            stalls += 1
        time.sleep(rng.uniform(args.min_delay, args.max_delay))
        last_acks, _ = _acks(logs)
        by_pid = {p.pid: who for who, p in procs.items()}
        pid = _writer_pid(store)
        # A deterministic share of writer kills (every k-th), the others random.
        want_writer = kill % round(1 / args.writer_share) == 0
        if want_writer and pid in by_pid and procs[by_pid[pid]].poll() is None:
            who = by_pid[pid]
            writer_kills += 1
        else:
            who = rng.choice(sorted(procs))
            if procs[who].pid == pid:
                writer_kills += 1
            else:
                other_kills += 1
        victim = procs[who]
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        procs[who] = _spawn(store, logs, who, args.batch, args.legacy_upsert)
        for other, proc in procs.items():  # one that exited on its own starts again
            if proc.poll() is not None and other != who:
                procs[other] = _spawn(store, logs, other, args.batch, args.legacy_upsert)
    (run / "stop").write_text("stop\n")
    for proc in procs.values():
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    storm_s = time.monotonic() - started
    rebuilds_during_run = repairs_logged(store)

    # 1. As the storm left it: would a user see a wedged store?
    left_wedged = False
    try:
        with open_memory(store, repair=False) as plain:
            left_wedged = not plain.check().healthy  # type: ignore[attr-defined]
    except StoreWedged:
        left_wedged = True
    # 2. Opened as users open it (rebuilds if needed), then verified.
    t0 = time.monotonic()
    acked = _acked_ids(logs)
    wedged_after_open = False
    lost = duplicated = listed = 0
    latencies: list[float] = []
    try:
        with open_memory(store) as opened:
            recover_s = time.monotonic() - t0
            report = opened.check()  # type: ignore[attr-defined]
            wedged_after_open = not report.healthy
            found: set[str] = set()
            unique_acked = list(dict.fromkeys(acked))
            for start in range(0, len(unique_acked), 1000):
                found.update(r.id for r in opened.get(unique_acked[start:start + 1000]))
            lost = len(set(unique_acked) - found)
            ids = [r.id for r in opened.records()]
            listed = len(ids)
            duplicated = listed - len(set(ids))
            sqlite_total = health(store, error=None).total
            duplicated += abs(sqlite_total - len(set(ids)))
            for _ in range(args.queries):
                text = f"boom {rng.randrange(0, 2000)} in w{rng.randrange(args.writers)}"
                q0 = time.perf_counter()
                hits = opened.query(text, kind="failure", k=10)
                latencies.append((time.perf_counter() - q0) * 1000)
                hit_ids = [h.record.id for h in hits]
                duplicated += len(hit_ids) - len(set(hit_ids))
    except Exception as exc:  # noqa: BLE001 - a store that cannot even open counts as wedged
        print(f"repeat {index}: store unusable after the run: {exc}", file=sys.stderr)
        wedged_after_open = True
        recover_s = time.monotonic() - t0
    _, put_errors = _acks(logs)
    latencies.sort()
    row = {
        "repeat": index, "kills": args.kills, "writer_kills": writer_kills,
        "other_kills": other_kills, "stalled_kills": stalls, "acked": len(set(acked)),
        "lost": lost, "duplicated": duplicated, "records_in_store": listed,
        "left_wedged_by_storm": left_wedged, "wedged_after_open": wedged_after_open,
        "rebuilds_during_run": rebuilds_during_run,
        "rebuilds_total": repairs_logged(store), "put_errors_seen_by_writers": put_errors,
        "storm_s": round(storm_s, 1), "recover_s": round(recover_s, 2),
        "query_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "query_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2)
        if latencies else None,
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--writer-share", type=float, default=1 / 3,
                        help="at least this share of kills hit the elected writer")
    parser.add_argument("--batch", type=int, default=25, help="new records per put")
    parser.add_argument("--min-delay", type=float, default=0.05)
    parser.add_argument("--max-delay", type=float, default=0.6)
    parser.add_argument("--stall", type=float, default=30.0,
                        help="longest wait for progress before a kill")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="keep the stores here")
    parser.add_argument("--legacy-upsert", action="store_true",
                        help="upsert whole batches (clnrm before this fix) to show the wedge")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="clnrm-memkill-", dir=args.dir))
    rows = [one_repeat(base, i, args, rng) for i in range(args.repeats)]
    p95s = [r["query_p95_ms"] for r in rows if r["query_p95_ms"] is not None]
    result = {
        "bench": "memory_kill", "writers": args.writers, "kills_per_repeat": args.kills,
        "repeats": args.repeats, "legacy_upsert": args.legacy_upsert,
        "kills": sum(r["writer_kills"] + r["other_kills"] for r in rows),
        "writer_kills": sum(r["writer_kills"] for r in rows),
        "acked": sum(r["acked"] for r in rows), "lost": sum(r["lost"] for r in rows),
        "duplicated": sum(r["duplicated"] for r in rows),
        "wedged_stores": sum(r["wedged_after_open"] for r in rows),
        "left_wedged_by_storm": sum(r["left_wedged_by_storm"] for r in rows),
        "rebuilds": sum(r["rebuilds_total"] for r in rows),
        "put_errors_seen_by_writers": sum(r["put_errors_seen_by_writers"] for r in rows),
        "recover_s_max": max(r["recover_s"] for r in rows),
        "query_p95_ms": max(p95s) if p95s else None,
        "query_p50_ms": statistics.median(r["query_p50_ms"] for r in rows
                                          if r["query_p50_ms"] is not None) if p95s else None,
        "store_dir": str(base),
        "target": "0 wedged stores, 0 acknowledged records lost or duplicated",
    }
    result["met"] = (result["wedged_stores"] == 0 and result["lost"] == 0
                     and result["duplicated"] == 0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
