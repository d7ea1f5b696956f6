"""Campaigns end to end: real Ray (embedded), real Chroma, real Docker, real SIGKILL.

Busybox steps and budgets of a few units keep the file near a minute: one campaign runs
to ``done`` untouched; another has its driver SIGKILLed at a seeded random moment and is
resumed, and its ledger must come out exact (nothing lost, nothing twice, at most one unit
redone per worker slot) with nothing leaked.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clnrm.procs import cmdline, descendants, pid_alive, proc
from tests.conftest import NO_CLUSTER, REPO

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.slow]

SCENARIO = """\
[meta]
name = "campaign_{tag}"
version = "1.0"

[[steps]]
name = "works_a_moment"
command = ["sh", "-c", "sleep {sleep}; echo ok"]
expected_output_regex = "ok"
"""


def campaign_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **NO_CLUSTER, "CLNRM_CAMPAIGNS": str(tmp_path / "campaigns"),
            "CLNRM_MEMORY": str(tmp_path / "memory")}


def campaign(env: dict[str, str], *args: str, timeout: float = 180,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clnrm", "campaign", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def status(env: dict[str, str], cid: str) -> dict[str, Any]:
    proc = campaign(env, "status", cid, "--format", "json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def scenario(tmp_path: Path, tag: str, sleep: float) -> Path:
    path = tmp_path / f"{tag}.clnrm.toml"
    path.write_text(SCENARIO.format(tag=tag, sleep=sleep))
    return path


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if pid_alive(pid)}


def test_three_unit_campaign_runs_to_done_with_an_exact_ledger(
        tmp_path: Path, local_images: None, no_leaks: None) -> None:
    env = campaign_env(tmp_path)
    path = scenario(tmp_path, "three", 0)

    proc = campaign(env, "start", str(path), "--budget", "3", "--workers", "2", "--id", "three")

    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = status(env, "three")
    assert doc["command"] == "campaign status"
    assert {k: doc[k] for k in ("id", "state", "units_planned", "units_done")} == {
        "id": "three", "state": "done", "units_planned": 3, "units_done": 3}
    assert [r["unit"] for r in doc["results"]] == [f"three/u{i:05d}" for i in range(3)]
    assert [r["outcome"] for r in doc["results"]] == ["passed"] * 3
    assert [r["attempt"] for r in doc["results"]] == [1, 1, 1]
    assert doc["findings"] == []
    from clnrm.swarm.campaign.ledger import Ledger

    with Ledger.open("three", home=tmp_path / "campaigns") as ledger:
        assert ledger.integrity() == []
        assert set(ledger.attempts().values()) == {1}  # every unit handed out once
        assert not ledger.owner_alive()
        facts = [r.facts for r in ledger.results()]
        assert all(f["exit_code"] == 0 and f["clnrm_runs"] for f in facts)


def test_sigkilled_driver_resumes_with_nothing_lost_or_twice(
        tmp_path: Path, local_images: None, no_leaks: None) -> None:
    from clnrm.swarm.campaign.ledger import Ledger

    env = campaign_env(tmp_path)
    home = tmp_path / "campaigns"
    workers, budget = 2, 4
    path = scenario(tmp_path, "killed", 1)
    rng = random.Random(1616)
    driver = subprocess.Popen(
        [sys.executable, "-m", "clnrm", "campaign", "start", str(path), "--budget", str(budget),
         "--workers", str(workers), "--id", "killed"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # wait until a unit is handed out, then kill at a seeded moment inside the campaign
        while time.monotonic() < deadline and driver.poll() is None:
            if (home / "killed" / "ledger.sqlite3").exists():
                with Ledger.open("killed", home=home) as ledger:
                    if sum(ledger.attempts().values()) >= 1:
                        break
            time.sleep(0.2)
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        time.sleep(rng.uniform(0.5, 4.0))
        ray_tree = descendants(driver.pid)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()

    with Ledger.open("killed", home=home) as ledger:
        assert ledger.integrity() == []
        before = {r.unit: r for r in ledger.results()}
        handed_out = sum(ledger.attempts().values())
    doc = status(env, "killed")
    assert (doc["state"], doc["reason"]) == ("stopped", "driver gone")

    started = time.monotonic()
    resumed = subprocess.Popen([sys.executable, "-m", "clnrm", "campaign", "resume", "killed"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    resumed_after = None
    while resumed.poll() is None and time.monotonic() - started < 180:
        if resumed_after is None:
            with Ledger.open("killed", home=home) as ledger:
                if sum(ledger.attempts().values()) > handed_out:
                    resumed_after = time.monotonic() - started  # the first unit handed out
        time.sleep(0.2)
    if resumed.poll() is None:
        resumed.kill()
    _, err = resumed.communicate(timeout=30)
    assert resumed.returncode == 0, err[-3000:]

    # embedded Ray's tree dies with its driver, or the resume ends what outlived it
    left = {pid: (cmdline(pid)[:120], proc(pid)) for pid in alive(ray_tree)}
    assert not left, f"processes outlived the killed driver: {left}"
    doc = status(env, "killed")
    assert doc["state"] == "done" and doc["units_planned"] == budget
    units = [r["unit"] for r in doc["results"]]
    assert units == [f"killed/u{i:05d}" for i in range(budget)]  # 0 lost, 0 twice
    with Ledger.open("killed", home=home) as ledger:
        assert ledger.integrity() == []
        after = {r.unit: r for r in ledger.results()}
        attempts = ledger.attempts()
    assert all(after[u] == r for u, r in before.items())  # recorded results never rewritten
    redone = [u for u, n in attempts.items() if n > 1]
    assert len(redone) <= workers, attempts  # at most one unit per worker slot
    assert not set(redone) & set(before)  # only units that were never recorded
    assert resumed_after is not None and resumed_after < 30, resumed_after
    print(f"campaign resumed {resumed_after:.1f} s after `resume`; redone {redone}")
