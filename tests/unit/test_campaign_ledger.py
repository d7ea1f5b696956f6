"""The campaign ledger records each unit once, replays its plan, dedups findings and stays
consistent when its writer is SIGKILLed mid-transaction (real SQLite, real processes)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from clnrm.swarm.campaign.ledger import Ledger, LedgerError, list_campaigns
from clnrm.swarm.campaign.model import (
    CampaignSpec,
    CampaignState,
    FaultChoice,
    Finding,
    UnitResult,
    UnitSpec,
    finding_key,
    unit_id,
)


def spec(cid: str = "c1") -> CampaignSpec:
    return CampaignSpec(id=cid, paths=["a.clnrm.toml"], files=[("a.clnrm.toml", "x = 1\n")],
                        budget_units=3, memory="/tmp/mem", seed=7,
                        created_at="2026-12-07T00:00:00Z")


def unit(i: int, cid: str = "c1", fault: FaultChoice | None = None) -> UnitSpec:
    return UnitSpec(campaign_id=cid, index=i, id=unit_id(cid, i), scenario="a.clnrm.toml",
                    kinds=["run", "chaos"], fault=fault, seed=100 + i)


def result(i: int, outcome: str = "passed", finding: str | None = None) -> UnitResult:
    return UnitResult(unit=unit_id("c1", i), index=i, outcome=outcome,  # type: ignore[arg-type]
                      finding=finding, duration_s=0.5, worker="w0")


def finding(unit_name: str, service: str = "api") -> Finding:
    key = finding_key("timeout", service, "latency", "span api.get status ok")
    return Finding(key=key, failure_class="timeout", service=service, fault="latency",
                   expectation="span api.get status ok", message="deadline exceeded",
                   first_unit=unit_name)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger.create(spec(), home=tmp_path) as led:
        yield led


def test_record_is_exactly_once(ledger: Ledger) -> None:
    ledger.plan(unit(0))
    assert ledger.record(result(0)) is True
    assert ledger.record(result(0, outcome="failed")) is False  # second record: no-op
    assert [r.outcome for r in ledger.results()] == ["passed"]
    assert ledger.counts() == (1, 1)


def test_plan_is_idempotent_and_replays_the_first_plan(ledger: Ledger) -> None:
    first = ledger.plan(unit(0))
    other = unit(0, fault=FaultChoice(fault="kill", target="db", explore=True, reason="new"))
    assert ledger.plan(other) == first  # the stored plan wins: a resume replays it
    assert ledger.planned() == [first]


def test_pending_is_planned_minus_recorded_in_order(ledger: Ledger) -> None:
    for i in (2, 0, 1):
        ledger.plan(unit(i))
    ledger.record(result(1))
    assert [u.index for u in ledger.pending()] == [0, 2]
    assert ledger.start_attempt(unit_id("c1", 0)) == 1
    assert ledger.start_attempt(unit_id("c1", 0)) == 2
    assert ledger.attempts()[unit_id("c1", 0)] == 2


def test_findings_are_deduplicated_once_per_unit(ledger: Ledger) -> None:
    for i in range(3):
        ledger.plan(unit(i))
    f0, f1 = finding(unit_id("c1", 0)), finding(unit_id("c1", 1))
    assert ledger.record(result(0, "failed"), f0)
    assert ledger.record(result(1, "failed"), f1)
    assert not ledger.record(result(1, "failed"), f1)  # a replayed record counts nothing
    ledger.add_finding(f1)  # the same unit again: no new occurrence
    other = finding(unit_id("c1", 2), service="db")
    ledger.record(result(2, "failed"), other)
    found = {f.service: f for f in ledger.findings()}
    assert found["api"].occurrences == 2
    assert found["api"].units == [unit_id("c1", 0), unit_id("c1", 1)]
    assert found["api"].first_unit == unit_id("c1", 0)
    assert found["db"].occurrences == 1
    assert [r.get("finding") for r in ledger.status().results] == [f0.key, f0.key, other.key]
    updated = ledger.update_finding(f0.key, reproducer="r.clnrm.toml", verified_runs=10,
                                    verified_failures=10)
    assert updated.reproducer == "r.clnrm.toml" and updated.occurrences == 2
    assert ledger.integrity() == []


def test_status_has_the_issue_shape(ledger: Ledger) -> None:
    assert ledger.status().state is CampaignState.stopped  # nobody drives it yet
    ledger.claim()
    ledger.plan(unit(0))
    ledger.plan(unit(1))
    ledger.record(result(0))
    doc = ledger.status().model_dump(mode="json")
    assert set(doc) == {"id", "state", "reason", "units_planned", "units_done", "results",
                        "findings"}
    assert doc["state"] == "running" and doc["units_planned"] == 2 and doc["units_done"] == 1
    (item,) = doc["results"]
    assert item["unit"] == "c1/u00000" and item["outcome"] == "passed" and "finding" not in item
    assert item["attempt"] == 1 and item["worker"] == "w0" and item["recorded_at"] > 0


def test_create_twice_and_open_unknown_are_clear_errors(tmp_path: Path) -> None:
    Ledger.create(spec("dup"), home=tmp_path).close()
    with pytest.raises(LedgerError, match="exists already"):
        Ledger.create(spec("dup"), home=tmp_path)
    with pytest.raises(LedgerError, match="no campaign 'nope'"):
        Ledger.open("nope", home=tmp_path)
    assert list_campaigns(tmp_path) == ["dup"]


def test_state_stop_request_and_dead_owner(ledger: Ledger, tmp_path: Path) -> None:
    ledger.claim()
    assert ledger.owner_alive() and ledger.shown_state() == "running"
    ledger.request_stop()
    with Ledger.open("c1", home=tmp_path) as other:  # another process's view
        assert other.stop_requested()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledger.claim(pid=dead.pid)
    assert not ledger.stop_requested()  # a new owner forgets the old request
    assert ledger.shown_state() == "stopped (driver gone)"
    assert (ledger.status().state, ledger.status().reason) == ("stopped", "driver gone")
    ledger.set_state(CampaignState.stopped, "interrupted")
    assert ledger.shown_state() == "stopped" and ledger.reason() == "interrupted"


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from clnrm.swarm.campaign.ledger import Ledger
    from clnrm.swarm.campaign.model import Finding, UnitResult, UnitSpec, finding_key, unit_id
    led = Ledger.open("c1", home=Path(sys.argv[1]))
    key = finding_key("timeout", "api", "latency", "e")
    for i in range(100000):
        led.plan(UnitSpec(campaign_id="c1", index=i, id=unit_id("c1", i), scenario="a",
                          kinds=["run"], seed=i))
        led.start_attempt(unit_id("c1", i))
        f = None
        if i % 3 == 0:
            f = Finding(key=key, failure_class="timeout", service="api", fault="latency",
                        expectation="e", message="m", first_unit=unit_id("c1", i))
        led.record(UnitResult(unit=unit_id("c1", i), index=i,
                              outcome="failed" if f else "passed", duration_s=0.0,
                              worker="w", facts={"pad": "x" * 2000}), f)
        print(i, flush=True)
""")


def test_sigkilled_writer_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    Ledger.create(spec(), home=tmp_path).close()
    rng = random.Random(16)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it writes; now kill it at a seeded moment
        assert first.strip()
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        confirmed = [int(line) for line in [first, *proc.stdout.read().split()] if line.strip()]
        proc.wait()
        with Ledger.open("c1", home=tmp_path) as led:
            assert led.integrity() == []
            recorded = {r.index for r in led.results()}
            # every record the writer saw committed survived the kill
            assert set(confirmed) <= recorded
            assert len(led.pending()) <= 1  # at most the one unit it was writing
            (found,) = led.findings()
            assert found.occurrences == len([r for r in led.results() if r.finding])
            assert found.occurrences == len([i for i in recorded if i % 3 == 0])
            for u in led.pending():  # what a resume does: redo the pending unit
                redo = (finding(u.id).model_copy(update={"key": found.key})
                        if u.index % 3 == 0 else None)
                led.record(UnitResult(unit=u.id, index=u.index, outcome="failed",
                                      duration_s=0.0, worker="w"), redo)
        # the next writer starts over at 0: plan and record must be no-ops for done units


# -- the CLI and the planner (no Ray: nothing here starts a driver) ---------------------------

SERVICE_FILE = """\
[meta]
name = "planned"
version = "1.0"

[services.web]
plugin = "generic_container"
image = "clnrm/busybox:latest"
command = ["sleep", "300"]
ports = [8080]

[[steps]]
name = "s"
command = ["echo", "hi"]
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from clnrm.swarm.campaign.cli import campaign_app
    from typer.testing import CliRunner

    monkeypatch.setenv("CLNRM_CAMPAIGNS", str(tmp_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(campaign_app, list(args))


@pytest.mark.parametrize(("args", "message"), [
    (["start", "x.clnrm.toml"], "give exactly one of --budget N or --duration D"),
    (["start", "x.clnrm.toml", "--budget", "2", "--duration", "1h"], "give exactly one"),
    (["start", "x.clnrm.toml", "--duration", "soon"], "--duration 'soon'"),
    (["start", "x.clnrm.toml", "--budget", "2", "--id", "no spaces"], "--id 'no spaces'"),
    (["status", "missing"], "no campaign 'missing'"),
    (["resume", "../etc"], "is not valid"),
])
def test_bad_arguments_are_one_error_line_and_exit_2(cli: Any, args: list[str],
                                                     message: str) -> None:
    res = cli(*args)
    assert res.exit_code == 2
    assert res.output.startswith("error: ") and message in res.output
    assert "Traceback" not in res.output


def test_status_json_stop_and_resume_refusal(cli: Any, tmp_path: Path) -> None:
    import json

    with Ledger.create(spec(), home=tmp_path) as led:
        led.claim()  # this process is the "driver": alive
        led.plan(unit(0))
        led.record(result(0))
        res = cli("status", "c1", "--format", "json")
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        assert doc["command"] == "campaign status" and doc["error"] is None
        assert (doc["id"], doc["state"], doc["units_planned"], doc["units_done"]) == (
            "c1", "running", 1, 1)
        assert doc["results"][0]["unit"] == "c1/u00000" and doc["findings"] == []
        refused = cli("resume", "c1")
        assert refused.exit_code == 2 and "is running (driver pid" in refused.output
        assert cli("stop", "c1").exit_code == 0
        assert led.stop_requested()
        listed = json.loads(cli("list", "--format", "json").output)
        assert [c["id"] for c in listed["campaigns"]] == ["c1"]


def test_plan_is_deterministic_and_adds_a_fault_after_the_first_round(tmp_path: Path) -> None:
    from clnrm.swarm.campaign.driver import load_scenarios, plan_unit, unit_text

    files = [("planned.clnrm.toml", SERVICE_FILE)]
    made = CampaignSpec(id="p", paths=["planned.clnrm.toml"], files=files, budget_units=4,
                        memory="/tmp/m", seed=3, created_at="2026-12-07T00:00:00Z")
    scenarios = load_scenarios(files)
    plans = []
    for home in (tmp_path / "a", tmp_path / "b"):  # two campaigns, same seed: same plan
        with Ledger.create(made, home=home) as led:
            plans.append([plan_unit(led, i, scenarios=scenarios) for i in range(3)])
            assert plan_unit(led, 1, scenarios=scenarios) == plans[-1][1]  # replayed
    assert plans[0] == plans[1]
    first, second, _ = plans[0]
    assert first.fault is None and "chaos" not in first.kinds  # the file as written
    assert first.kinds == ["run", "generate", "heal"]
    if second.fault is not None:  # with the explorer: its fault is in the unit's TOML
        assert "chaos" in second.kinds
        assert "[[chaos.faults]]" in unit_text(second, dict(files))


def test_a_resume_ends_what_a_dead_drivers_process_tree_left(tmp_path: Path) -> None:
    from clnrm.swarm.campaign.driver import end_orphans

    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Ledger.create(spec(), home=tmp_path) as led:
            led.claim()
            led.set_processes({leftover.pid})
            assert led.orphaned_processes() == []  # the owner (this process) lives
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            led.claim(pid=dead.pid)  # as if that driver had recorded the tree and died
            led.set_processes({leftover.pid, dead.pid})
            assert led.orphaned_processes() == [leftover.pid]
            end_orphans(led)
            assert leftover.wait(timeout=10) == -signal.SIGKILL
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_file_with_its_own_faults_runs_as_written_every_third_round(tmp_path: Path) -> None:
    from clnrm.swarm.campaign.driver import AS_WRITTEN_EVERY, load_scenarios, plan_unit

    text = SERVICE_FILE + '\n[[chaos.faults]]\nname = "p"\ntype = "pause"\ntarget = "web"\n'
    files = [("own.clnrm.toml", text)]
    made = CampaignSpec(id="o", paths=["own.clnrm.toml"], files=files, budget_units=9,
                        memory="/tmp/m", seed=1, created_at="2026-12-07T00:00:00Z")
    with Ledger.create(made, home=tmp_path) as led:
        plans = [plan_unit(led, i, scenarios=load_scenarios(files)) for i in range(7)]
    as_written = [u.index for u in plans if u.fault is None]
    assert as_written[:3] == [0, AS_WRITTEN_EVERY, 2 * AS_WRITTEN_EVERY]
    assert all("chaos" in u.kinds for u in plans)  # its own faults, or the explored one


def test_a_unit_broken_by_a_dead_memory_or_engine_is_not_a_result(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from clnrm.agents.base import RunSettings
    from clnrm.swarm.campaign.worker import CampaignWorker, EngineLost, MemoryLost

    class DeadStore:
        def get(self, ids: list[str]) -> list[object]:
            raise ConnectionRefusedError(111, "Connection refused")

    class LiveStore:
        def get(self, ids: list[str]) -> list[object]:
            return []

    worker = CampaignWorker.__new__(CampaignWorker)  # its collaborators, not a memory
    worker.memory, worker.settings = "http://127.0.0.1:1", RunSettings()
    worker.store = DeadStore()
    with pytest.raises(MemoryLost, match="stopped answering"):
        worker._probe()
    worker.store = LiveStore()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(EngineLost, match="Docker engine stopped answering"):
        worker._probe()
