"""Campaigns through the CLI: units per minute at 1, 2 and 4 workers, per-unit overhead
against ``clnrm run``, and resume time after a driver SIGKILL.

    .venv/bin/python bench/campaign.py [--units 12] [--workers 1,2,4] [--rounds 6]

Everything runs as a user runs it: ``python -m clnrm campaign start`` (embedded Ray,
an embedded memory directory, a campaign home of its own) over the same set of busybox
scenarios, one campaign per worker count.  The bench process only watches the ledger
(read-only SQLite: the driver writes it in WAL mode) to see when each result was
recorded.

- Units per minute at K workers: steady state only, ``(N - K) / (t_N - t_K)`` over
  the completion times ``t_1 <= ... <= t_N`` (Ray start-up and the first K units,
  which all end at once, are left out; startup is reported on its own).  Target:
  2 workers >= 0.8x twice the 1-worker rate; 4 workers is reported (2 cores: the
  units wait on Docker, not on a CPU, but the engine itself shares them).
- Overhead per unit: the 1-worker steady-state seconds per unit against the median
  wall time of ``python -m clnrm run FILE`` over the same files (process start,
  imports and cleanup included, as a user runs it), half of its rounds measured
  before the campaigns and half after, to share drift in machine load.
  Target <= 1.15x.
- Resume: a 1-worker campaign whose driver is SIGKILLed at a seeded moment inside a
  unit (after at least two results), then ``clnrm campaign resume``: seconds from
  the resume command to its first recorded result (Ray start, reaping what the dead
  driver left, and the redone unit all included), and to the start of that first
  unit (its commit time less its own duration): the latter is "resumed", target
  <= 30 s.  The ledger is checked afterwards: 0 lost, 0 duplicated, at most one unit
  redone, nothing leaked (containers or processes of the killed driver).

The machine is shared: the 1-minute load average is in the JSON line.  Ends with one
JSON line ``{"bench": "campaign", ..., "target": ..., "met": bool}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clnrm.procs import descendants, pid_alive

REPO = Path(__file__).resolve().parents[1]
LINEAR_TARGET = 0.8
OVERHEAD_TARGET = 1.15
RESUME_TARGET_S = 30.0


def scenario_toml(i: int) -> str:
    """A small busybox scenario: what a unit of a busybox campaign runs."""
    return f"""\
[meta]
name = "bench_campaign_{i}"
version = "1.0"

[[steps]]
name = "greets"
command = ["sh", "-c", "echo hello {i}"]
expected_output_regex = "hello {i}"

[[steps]]
name = "counts"
command = ["sh", "-c", "seq 1 {10 + i} | tail -n 1"]
expected_output_regex = "^{10 + i}$"

[[steps]]
name = "works_a_second"
command = ["sh", "-c", "sleep 1; echo done"]
expected_output_regex = "done"
"""


# --- watching a campaign from outside (shared in spirit with test_campaign_kills) ------------


def ledger_path(home: Path, campaign_id: str) -> Path:
    return home / campaign_id / "ledger.sqlite3"


def recorded(home: Path, campaign_id: str) -> list[dict[str, Any]]:
    """Results in the ledger now, each with its ``recorded_at`` (time.time() of the
    commit) and the unit's hand-out count ``attempts``; [] before the ledger exists.  Plain
    SELECTs on the WAL file: they never block the driver's writes."""
    path = ledger_path(home, campaign_id)
    if not path.exists():
        return []
    try:
        con = sqlite3.connect(str(path), timeout=5)
        try:
            rows = con.execute(
                "SELECT r.result, r.recorded_at, u.attempts FROM results r "
                "LEFT JOIN units u ON u.id = r.unit ORDER BY r.idx").fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # created but no schema yet
        return []
    return [{**json.loads(body), "recorded_at": at, "attempts": attempts or 1}
            for body, at, attempts in rows]


class Watch:
    """Polls the ledger; keeps each recorded result (its commit time is in the ledger)."""

    def __init__(self, home: Path, campaign_id: str) -> None:
        self.home, self.id = home, campaign_id
        self.results: list[dict[str, Any]] = []

    def poll(self) -> int:
        self.results = recorded(self.home, self.id) or self.results
        return len(self.results)

    def times(self) -> list[float]:
        return sorted(float(r["recorded_at"]) for r in self.results)

    def redone(self) -> int:
        """Units handed out more than once (by a resumed driver) or retried by Ray."""
        return sum(max(int(r["attempts"]), int(r.get("attempt", 1))) - 1 for r in self.results)


def write_scenarios(folder: Path, count: int) -> list[Path]:
    """The bench's ``count`` busybox files in ``folder`` (the soak runs the same ones)."""
    folder.mkdir()
    files = [folder / f"bench_campaign_{i}.clnrm.toml" for i in range(count)]
    for i, path in enumerate(files):
        path.write_text(scenario_toml(i), encoding="utf-8")
    return files


def clnrm_containers() -> list[tuple[str, int | None, str]]:
    """``(container id, owner pid, test name)`` of every clnrm container on the engine."""
    out = subprocess.run(["docker", "ps", "-a", "--filter", "label=clnrm.run", "--format",
                          '{{.ID}} {{.Label "clnrm.owner"}} {{.Label "clnrm.test"}}'],
                         capture_output=True, text=True, timeout=60).stdout
    found: list[tuple[str, int | None, str]] = []
    for line in out.splitlines():
        ident, owner, test = [*line.split(" ", 2), "", ""][:3]
        parts = owner.split(":")
        found.append((ident, int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None,
                      test))
    return found


def unit_containers(owners: set[int]) -> list[str]:
    """clnrm containers whose owner process is one of ``owners`` (a unit in flight)."""
    return [ident for ident, pid, _ in clnrm_containers() if pid in owners]


def env_for(home: Path, tmp: Path) -> dict[str, str]:
    return {**os.environ, "CLNRM_CAMPAIGNS": str(home), "RAY_ADDRESS": "",
            "CLNRM_STATE_DIR": str(tmp / "state")}


def campaign(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "clnrm", "campaign", *args], cwd=REPO,
                            env=env, stdout=out, stderr=subprocess.STDOUT)


def status(campaign_id: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "clnrm", "campaign", "status", campaign_id,
                           "--format", "json"], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)
    if proc.returncode != 0:
        sys.exit(f"campaign status {campaign_id} failed ({proc.returncode}): "
                 f"{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def wait(proc: subprocess.Popen[bytes], watch: Watch, log: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        watch.poll()
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
            sys.exit(f"campaign did not finish within {timeout:.0f} s; log {log}")
        time.sleep(0.2)
    watch.poll()
    return proc.returncode


def exact(st: dict[str, Any], budget: int) -> dict[str, int]:
    """Lost and duplicated results against a budget of ``budget`` units."""
    units = [str(r["unit"]) for r in st["results"]]
    return {"lost": max(0, budget - len(set(units))),
            "duplicated": len(units) - len(set(units))}


# --- the three measurements ------------------------------------------------------------------


def throughput(files: list[Path], workers: int, units: int, seed: int, tmp: Path
               ) -> dict[str, Any]:
    home = tmp / f"home-{workers}"
    env = env_for(home, tmp)
    campaign_id = f"bench-w{workers}"
    log = tmp / f"{campaign_id}.log"
    watch = Watch(home, campaign_id)
    started = time.time()
    proc = campaign(["start", *map(str, files), "--budget", str(units), "--workers",
                     str(workers), "--id", campaign_id, "--memory", str(tmp / f"mem-{workers}"),
                     "--seed", str(seed)], env, log)
    code = wait(proc, watch, log, timeout=60 + 60 * units)
    st = status(campaign_id, env)
    if st["state"] != "done" or st["units_done"] != units:
        sys.exit(f"{campaign_id}: exit {code}, state {st['state']}, {st['units_done']}/"
                 f"{units} units; log {log}:\n{log.read_text(errors='replace')[-3000:]}")
    times = watch.times()
    k = min(workers, units - 1)
    rate = (units - k) / (times[-1] - times[k - 1]) * 60.0
    outcomes: dict[str, int] = {}
    for r in st["results"]:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    row = {"workers": workers, "units": units, "units_per_min": round(rate, 2),
           "s_per_unit": round(60.0 / rate, 2),
           "startup_s": round(times[0] - started, 1),
           "first_unit_start_s": round(first_unit_start(watch.results) - started, 1),
           "wall_s": round(time.time() - started, 1), "outcomes": outcomes,
           "redone": watch.redone(), **exact(st, units)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def first_unit_start(results: list[dict[str, Any]]) -> float:
    """When the first unit began: its commit time less its own duration."""
    return min(float(r["recorded_at"]) - float(r["duration_s"]) for r in results)


def clnrm_run_s(files: list[Path], rounds: int, tmp: Path) -> list[float]:
    env = {**os.environ, "CLNRM_STATE_DIR": str(tmp / "state")}
    took = []
    for i in range(rounds):
        f = files[i % len(files)]
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "clnrm", "run", str(f)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300)
        took.append(time.monotonic() - t0)
        if proc.returncode != 0:
            sys.exit(f"clnrm run {f} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                     f"{proc.stderr[-2000:]}")
        print(f"clnrm run {f.name}: {took[-1]:.2f} s", file=sys.stderr, flush=True)
    return took


def resume_after_driver_kill(files: list[Path], units: int, seed: int, tmp: Path
                             ) -> dict[str, Any]:
    rng = random.Random(seed)
    home = tmp / "home-resume"
    env = env_for(home, tmp)
    campaign_id = "bench-resume"
    log = tmp / f"{campaign_id}.log"
    watch = Watch(home, campaign_id)
    before = set(unit_containers_all())
    spawned = time.time()
    proc = campaign(["start", *map(str, files), "--budget", str(units), "--workers", "1",
                     "--id", campaign_id, "--memory", str(tmp / "mem-resume"),
                     "--seed", str(seed)], env, log)
    deadline = time.monotonic() + 60 + 60 * units
    # a seeded moment inside a unit: after >= 2 results, once the unit's containers are up
    while watch.poll() < 2 or not unit_containers(descendants(proc.pid) | {proc.pid}):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"campaign ended or stalled before the kill; log {log}")
        time.sleep(0.1)
    time.sleep(rng.uniform(0.0, 0.8))
    family = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    watch.poll()
    done_at_kill = {str(r["unit"]) for r in watch.results}
    start_s = first_unit_start(watch.results) - spawned  # the same campaign's own start
    time.sleep(1.0)  # what fate-shares with the driver (embedded Ray) goes with it
    t0 = time.time()
    resumed = campaign(["resume", campaign_id], env, log)
    code = wait(resumed, watch, log, timeout=60 + 60 * units)
    after = [r for r in watch.results if str(r["unit"]) not in done_at_kill]
    first = min(float(r["recorded_at"]) for r in after) - t0 if after else None
    # resumed = the first unit after the kill started (its commit less its own duration)
    started = (min(float(r["recorded_at"]) - float(r["duration_s"]) for r in after) - t0
               if after else None)
    st = status(campaign_id, env)
    left_processes = sorted(p for p in family if pid_alive(p))
    left_containers = sorted(set(unit_containers_all()) - before
                             - set(unit_containers_live()))
    row = {"units": units, "killed_after_results": len(done_at_kill), "resume_exit": code,
           "resume_to_first_unit_start_s": round(started, 2) if started is not None else None,
           "resume_to_first_result_s": round(first, 2) if first is not None else None,
           "start_to_first_unit_start_s": round(start_s, 2),
           "resume_wall_s": round(time.time() - t0, 1),
           "kill_to_resume_done_s": round(time.monotonic() - killed_at, 1),
           "state": st["state"], "units_done": st["units_done"], "redone": watch.redone(),
           **exact(st, units),
           "leaked_processes": len(left_processes), "leaked_containers": len(left_containers)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def unit_containers_all() -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", "label=clnrm.run"],
                         capture_output=True, text=True, timeout=60).stdout
    return out.split()


def unit_containers_live() -> list[str]:
    """clnrm containers of owners that are still alive (other users of a shared engine)."""
    return [ident for ident, pid, _ in clnrm_containers()
            if pid is not None and pid_alive(pid)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=12, help="budget of each campaign")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma separated")
    parser.add_argument("--scenarios", type=int, default=3, help="busybox files in the set")
    parser.add_argument("--rounds", type=int, default=6, help="`clnrm run` rounds (baseline)")
    parser.add_argument("--resume-units", type=int, default=5)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--skip-resume", action="store_true")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="clnrm-bench-campaign-") as name:
        tmp = Path(name)
        files = write_scenarios(tmp / "scenarios", args.scenarios)
        clnrm_run_s(files[:1], 1, tmp)  # warm page cache, bytecode, engine (untimed)
        run_s = clnrm_run_s(files, (args.rounds + 1) // 2, tmp)
        rows = []
        for k in counts:
            rows.append(throughput(files, k, args.units, args.seed, tmp))
            loads.append(os.getloadavg()[0])
        run_s += clnrm_run_s(files, args.rounds // 2, tmp)
        resume = None if args.skip_resume else resume_after_driver_kill(
            files, args.resume_units, args.seed, tmp)
        loads.append(os.getloadavg()[0])
    by_k = {r["workers"]: r for r in rows}
    base = by_k.get(1)
    run_median = statistics.median(run_s)
    linear = {str(k): round(r["units_per_min"] / (k * base["units_per_min"]), 3)
              for k, r in by_k.items()} if base else {}
    overhead = round(base["s_per_unit"] / run_median, 3) if base else None
    for k, r in by_k.items():
        print(f"{k} worker(s): {r['units_per_min']:.1f} units/min ({r['s_per_unit']:.2f} s per "
              f"unit, startup {r['startup_s']:.1f} s)"
              + (f", {linear[str(k)]:.2f}x linear" if str(k) in linear else ""))
    print(f"clnrm run median {run_median:.2f} s; swarm per unit (1 worker) "
          f"{base['s_per_unit'] if base else '-'} s: {overhead}x (target <= {OVERHEAD_TARGET}x)")
    if resume:
        print(f"resume after a driver SIGKILL: first unit started "
              f"{resume['resume_to_first_unit_start_s']} s, first result "
              f"{resume['resume_to_first_result_s']} s after `campaign resume` (target <= "
              f"{RESUME_TARGET_S:.0f} s; its `campaign start` took "
              f"{resume['start_to_first_unit_start_s']} s to its first unit); lost "
              f"{resume['lost']}, duplicated {resume['duplicated']}, leaked "
              f"{resume['leaked_processes']} processes, {resume['leaked_containers']} containers")
    print(f"load average (1 min) during the bench: {min(loads):.2f}..{max(loads):.2f}")
    met_linear = linear.get("2", 0.0) >= LINEAR_TARGET if "2" in linear else None
    met_overhead = overhead is not None and overhead <= OVERHEAD_TARGET
    first = resume["resume_to_first_unit_start_s"] if resume else None
    met_resume = None if resume is None else (
        first is not None and first <= RESUME_TARGET_S and resume["lost"] == 0
        and resume["duplicated"] == 0 and resume["redone"] <= 1
        and resume["leaked_processes"] == 0 and resume["leaked_containers"] == 0
        and resume["state"] == "done")
    print(json.dumps({
        "bench": "campaign", "units_per_campaign": args.units, "scenarios": args.scenarios,
        "units_per_min": {str(k): r["units_per_min"] for k, r in by_k.items()},
        "linear_efficiency": linear,
        "startup_s": {str(k): r["startup_s"] for k, r in by_k.items()},
        "clnrm_run_median_s": round(run_median, 2),
        "swarm_s_per_unit": base["s_per_unit"] if base else None,
        "overhead_vs_clnrm_run": overhead,
        "resume_s": first, "resume": resume,
        "lost": sum(r["lost"] for r in rows) + (resume["lost"] if resume else 0),
        "duplicated": sum(r["duplicated"] for r in rows)
        + (resume["duplicated"] if resume else 0),
        "load_avg_1m": [round(x, 2) for x in loads],
        "target": {"linear_at_2": LINEAR_TARGET, "overhead": OVERHEAD_TARGET,
                   "resume_s": RESUME_TARGET_S},
        "met": bool(met_linear is not False and met_overhead and met_resume is not False),
    }))


if __name__ == "__main__":
    main()
