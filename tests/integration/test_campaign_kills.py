"""SIGKILL of a campaign's worker actor and of its memory server, at seeded moments inside a
unit, then the campaign finishes (by itself or through ``campaign resume``) with an exact
ledger: 0 results lost, 0 duplicated, at most one unit redone, nothing leaked, resumed
within 30 s (issue 16).  The driver kill is tests/integration/test_campaign.py's.

Everything runs as a user runs it: ``python -m clnrm campaign start`` in its own process on
embedded Ray, a campaign home and a chaos state folder of the test's own.  The test only
reads the ledger and ``/proc``, and sends the SIGKILLs.  A unit's moment is found from the
engine: a container labelled with a worker actor's pid as its owner is a unit in flight.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm.procs import ancestor_running, cmdline, descendants, pid_alive
from tests.conftest import REPO, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SEED = 1616
BUDGET = 2  # the kill lands in the first unit (a seeded moment inside it), one unit follows
RESUMED_WITHIN_S = 30.0  # the bound


def resume_bound(startup_s: float) -> float:
    """The issue's 30 s, or 1.5x what this campaign's own start took to get its first unit
    going when the machine is so loaded that a plain start is slower than that: a resume
    starts Ray as a start does, and what the bound is meant to catch (waiting out a stale
    heartbeat, redoing recorded units) costs far more than the margin."""
    return max(RESUMED_WITHIN_S, 1.5 * startup_s)

SCENARIO = """\
[meta]
name = "campaign_kill"
version = "1.0"

[[steps]]
name = "greets"
command = ["sh", "-c", "echo hello"]
expected_output_regex = "hello"

[[steps]]
name = "works_three_seconds"
command = ["sh", "-c", "sleep 3; echo done"]
expected_output_regex = "done"
"""


# --- watching a campaign from outside ---------------------------------------------------------


def units_in_flight(client: Any, driver: int) -> dict[int, list[str]]:
    """Worker actor pid -> containers it owns now (a unit in flight), for this driver only
    (other campaigns may share the engine)."""
    family = descendants(driver)
    found: dict[int, list[str]] = {}
    for c in client.api.containers(all=True, filters={"label": "clnrm.run"}):
        owner = c["Labels"].get("clnrm.owner", "").split(":")
        if len(owner) > 1 and owner[1].isdigit():
            actor = ancestor_running(int(owner[1]), "ray::", family)
            if actor is not None:
                found.setdefault(actor, []).append(c["Id"][:12])
    return found


class Campaign:
    """One campaign run through the CLI, with its own home, state folder and log."""

    def __init__(self, tmp: Path, campaign_id: str) -> None:
        self.id = campaign_id
        self.home = tmp / "campaigns"
        self.state_dir = tmp / "state"
        self.log = tmp / f"{campaign_id}.log"
        self.env = {"CLNRM_CAMPAIGNS": str(self.home), "CLNRM_STATE_DIR": str(self.state_dir),
                    "RAY_ADDRESS": ""}

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "clnrm", "campaign", *args],
                                    cwd=REPO, env={**os.environ, **self.env}, stdout=out,
                                    stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def recorded(self) -> dict[str, dict[str, Any]]:
        """unit -> {"attempt", "attempts", "recorded_at", "started_at"} from the ledger (plain
        SELECTs; ``started_at`` is the commit time less the unit's own duration)."""
        import sqlite3

        path = self.home / self.id / "ledger.sqlite3"
        if not path.exists():
            return {}
        try:
            con = sqlite3.connect(str(path), timeout=10)
            try:
                rows = con.execute("SELECT r.unit, r.result, r.recorded_at, u.attempts "
                                   "FROM results r LEFT JOIN units u ON u.id = r.unit"
                                   ).fetchall()
            finally:
                con.close()
        except sqlite3.Error:  # created, schema not yet written
            return {}
        found = {}
        for unit, body, at, attempts in rows:
            result = json.loads(body)
            found[unit] = {"attempt": result.get("attempt", 1), "attempts": attempts or 1,
                           "recorded_at": at, "started_at": at - result["duration_s"]}
        return found

    def status(self) -> dict[str, Any]:
        proc = run_cli("campaign", "status", self.id, "--format", "json", env=self.env,
                       timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 150) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            pytest.fail(f"campaign {self.id} did not finish within {timeout:.0f} s:\n"
                        f"{self.tail()}")

    def wait_for_unit_in_flight(self, proc: subprocess.Popen[bytes], client: Any,
                                after_results: int, timeout: float = 150
                                ) -> dict[int, list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"campaign ended before the kill:\n{self.tail()}"
            if len(self.recorded()) >= after_results:
                busy = units_in_flight(client, proc.pid)
                if busy:
                    return busy
            time.sleep(0.1)
        pytest.fail(f"no unit in flight within {timeout:.0f} s:\n{self.tail()}")

    def assert_exact(self, status: dict[str, Any], *, redone_at_most: int) -> None:
        """Every budgeted unit recorded once, none twice, at most ``redone_at_most`` redone,
        and the ledger consistent (SQLite check, findings counted once per unit)."""
        from clnrm.swarm.campaign.ledger import Ledger

        expected = {f"{self.id}/u{i:05d}" for i in range(BUDGET)}
        units = [r["unit"] for r in status["results"]]
        assert status["state"] == "done", (status, self.tail())
        assert sorted(units) == sorted(expected), f"lost or duplicated: {units}"
        assert status["units_done"] == BUDGET
        recorded = self.recorded()
        redone = sum(max(r["attempt"], r["attempts"]) - 1 for r in recorded.values())
        assert redone <= redone_at_most, recorded
        with Ledger.open(self.id, self.home) as ledger:
            assert ledger.integrity() == []
            assert len(ledger.results()) == BUDGET

    def assert_nothing_left(self, family: set[int]) -> None:
        """No process of the campaign's (embedded Ray, its workers) outlives it, and no
        chaos fault is left to undo (the journal folder is empty)."""
        deadline = time.monotonic() + 15
        while any(pid_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {p: cmdline(p)[:80] for p in family if pid_alive(p)}
        assert not left, f"processes left behind: {left}"
        journals = list((self.state_dir / "chaos").glob("*.jsonl"))
        assert not journals, f"faults left to undo: {journals}"


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "campaign_kill.clnrm.toml"
    path.write_text(SCENARIO)
    return path


# --- the kills --------------------------------------------------------------------------------


def test_sigkilled_worker_actor_mid_unit_redoes_only_that_unit(
        tmp_path: Path, scenario: Path, local_images: None, docker_client: Any,
        no_leaks: None) -> None:
    rng = random.Random(SEED)
    camp = Campaign(tmp_path, "kill-worker")
    spawned = time.monotonic()
    proc = camp.spawn("start", str(scenario), "--budget", str(BUDGET), "--workers", "1",
                      "--id", camp.id, "--memory", str(tmp_path / "memory"), "--seed", "7")
    # a seeded moment: inside unit k (so a unit follows), once its containers are up
    k = rng.randrange(BUDGET - 1)
    busy = camp.wait_for_unit_in_flight(proc, docker_client, after_results=k)
    startup_s = time.monotonic() - spawned
    time.sleep(rng.uniform(0.2, 1.5))  # inside the 3 s step
    worker = next(iter(busy))
    before = camp.recorded()
    in_flight = f"{camp.id}/u{len(before):05d}"  # one worker: units run in plan order
    family = descendants(proc.pid)
    assert units_in_flight(docker_client, proc.pid).get(worker), "the unit ended before the kill"
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()

    # resumed: another incarnation has a unit in flight, or a new result is recorded
    resumed_s = None
    while proc.poll() is None and time.monotonic() - killed_at < 120:
        others = {w for w in units_in_flight(docker_client, proc.pid) if w != worker}
        if others or len(camp.recorded()) > len(before):
            resumed_s = time.monotonic() - killed_at
            break
        time.sleep(0.1)
    code = camp.finish(proc)
    status = camp.status()
    if status["state"] != "done":  # the driver gave up on the worker: resume finishes it
        assert code != 0, camp.tail()
        t0 = time.monotonic()
        code = camp.finish(camp.spawn("resume", camp.id))
        resumed_s = resumed_s if resumed_s is not None else time.monotonic() - t0
        status = camp.status()
    assert code == 0, camp.tail()
    assert resumed_s is not None and resumed_s <= resume_bound(startup_s), (
        resumed_s, startup_s, camp.tail())
    camp.assert_exact(status, redone_at_most=1)
    redo = camp.recorded()[in_flight]
    assert max(redo["attempt"], redo["attempts"]) == 2, "the interrupted unit was not redone"
    camp.assert_nothing_left(family)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Chroma server the test can SIGKILL and start again on the same port and data."""
    from clnrm.memory.chroma_server import chroma_server, free_port

    state: dict[str, Any] = {"path": tmp_path / "chroma", "port": free_port()}
    with chroma_server(state["path"], port=state["port"]) as url:
        state["url"] = url
        state["pid"] = next(p for p in descendants(os.getpid())
                            if f"--port {state['port']}" in cmdline(p)
                            and "chroma" in cmdline(p))
        yield state
    # the SIGKILLed server's context ends at once; a restarted one is stopped by its own


def test_sigkilled_memory_server_mid_campaign_then_resume_loses_nothing(
        tmp_path: Path, scenario: Path, chroma: dict[str, Any], local_images: None,
        docker_client: Any, no_leaks: None) -> None:
    from clnrm.memory.chroma_server import chroma_server

    rng = random.Random(SEED + 1)
    camp = Campaign(tmp_path, "kill-memory")
    spawned = time.monotonic()
    proc = camp.spawn("start", str(scenario), "--budget", str(BUDGET), "--workers", "1",
                      "--id", camp.id, "--memory", chroma["url"], "--seed", "7")
    k = rng.randrange(BUDGET - 1)
    camp.wait_for_unit_in_flight(proc, docker_client, after_results=k)
    startup_s = time.monotonic() - spawned
    time.sleep(rng.uniform(0.2, 1.5))
    recorded_at_kill = set(camp.recorded())
    family = descendants(proc.pid)
    os.killpg(chroma["pid"], signal.SIGKILL)  # chroma_server gives it its own session

    # The driver cannot go on without its memory: it ends "failed" (resumable) and records
    # nothing for the unit in flight; or it waits for the memory to come back.
    try:
        code: int | None = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        code = None
    after_kill = set(camp.recorded())
    assert len(after_kill - recorded_at_kill) <= 1, "units recorded without their memory"
    with chroma_server(chroma["path"], port=chroma["port"]):
        t0 = time.time()
        if code is None:  # it waited: it must carry on by itself now
            code = camp.finish(proc)
        else:
            assert code != 0, camp.tail()
            shown = camp.status()["state"]
            assert shown in ("failed", "stopped"), (shown, camp.tail())
            t0 = time.time()
            code = camp.finish(camp.spawn("resume", camp.id))
        assert code == 0, camp.tail()
        new = [r for u, r in camp.recorded().items() if u not in after_kill]
        assert new, "nothing was recorded after the memory came back"
        # resumed: the first unit after the restart started within the bound
        resumed_s = min(r["started_at"] for r in new) - t0
        assert resumed_s <= resume_bound(startup_s), (resumed_s, startup_s, camp.tail())
        status = camp.status()
    camp.assert_exact(status, redone_at_most=1)
    camp.assert_nothing_left(family)
