"""Negotiation on evidence (issue 16, part 1), on a real embedded memory (offline embedding).

Bids read value and cost from what the memory holds (chaos and failure records, perf
baselines, pattern records, past run durations); the award rule weighs value per
cost; a non-owner that wins goes first with its own work and the task is negotiated
again; every decision says why, so a later question in plain words finds it.  The
agents that would run Docker keep their real ``propose`` and script only ``act``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clnrm.agents import Bid, Blackboard, Layer, Task, TaskOutcome, TaskStatus, award
from clnrm.agents.architect import Architect
from clnrm.agents.blackboard import Award
from clnrm.agents.chaos import ChaosAgent
from clnrm.agents.evidence import STALE_AFTER
from clnrm.agents.healer import Healer
from clnrm.agents.intelligence import IntelligenceAgent
from clnrm.agents.negotiation import LocalHandle, Swarm, intake_tasks
from clnrm.agents.performance import PerformanceAgent
from clnrm.memory import (
    Agent,
    BlackboardEntry,
    FailureRecord,
    MemoryStore,
    PatternRecord,
    RunRecord,
    open_memory,
)

from tests.conftest import REPO
from tests.unit.test_agents import BASE
from tests.unit.test_agents_blackboard import ScriptedOrchestrator

_runs = itertools.count(1)
NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)

HEALABLE = BASE + """
[services.db]
image = "clnrm/busybox:latest"

[chaos]
[[chaos.faults]]
type = "pause"
target = "db"

[[chaos.faults]]
type = "kill"
target = "db"

[performance]
iterations = 3
baseline_runs = 4

[self_healing]
strategies = ["restart_service"]
"""


def named(name: str, text: str = HEALABLE) -> str:
    return text.replace('"planned"', f'"{name}"')


class OfflineChaos(ChaosAgent):
    """The real chaos agent's bids; its experiment is scripted (no Docker)."""

    def act(self, task: Task) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                           exit_code=0, reason=f"scripted experiment on {task.scenario}")


class OfflinePerformance(PerformanceAgent):
    def act(self, task: Task) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                           exit_code=0, reason=f"scripted measurement of {task.scenario}")


class OfflineHealer(Healer):
    def act(self, task: Task) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                           exit_code=0, reason=f"scripted: {task.scenario} healed by "
                                               "restart_service", facts={"healed": True})


@pytest.fixture(scope="module")
def memory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memory")


@pytest.fixture(scope="module")
def store(memory_dir: Path) -> Iterator[MemoryStore]:
    with open_memory(memory_dir) as opened:
        yield opened


@pytest.fixture
def board(store: MemoryStore) -> Blackboard:
    return Blackboard(store)


def planned(board: Blackboard, text: str) -> dict[Layer, Task]:
    run_id = f"swarm-ev{next(_runs)}"
    name = text.split('name = "', 1)[1].split('"', 1)[0]  # the file is named as its scenario
    (intake,) = intake_tasks(run_id, [(f"{name}.clnrm.toml", text)])
    board.post_intake(run_id, [intake])
    assert Architect(board).act(intake).status is TaskStatus.done
    return {t.layer: t for t in board.plan_tasks(intake.id)}


def finish(board: Blackboard, task: Task, status: TaskStatus, reason: str) -> None:
    board.finish(task, TaskOutcome(task_id=task.id, agent=task.layer.agent, status=status,
                                   exit_code=0 if status is TaskStatus.done else 1,
                                   reason=reason))


def past_run(agent: Agent, scenario: str, n: int, duration_s: float, **meta: str) -> RunRecord:
    return RunRecord(agent=agent, run_id=f"clnrm-{scenario}-{agent.value}-{n}",
                     scenario=scenario, status="passed", duration_s=duration_s,
                     summary=f"{scenario} ran", metadata={"scenario": scenario, **meta})


# -- bids come from the memory --------------------------------------------------------


def test_the_chaos_bid_values_untried_faults_and_known_weaknesses_at_measured_cost(
        board: Blackboard) -> None:
    agent = ChaosAgent(board, name="chaos@unit")
    fresh = planned(board, named("chaos_fresh"))[Layer.chaos]
    bid = agent.propose(fresh)
    assert bid is not None and bid.value == 0.7  # 0.2 + 0.5 x 2 of 2 never tried
    assert bid.cost_s == 60.0
    assert "2 of 2 fault(s) never tried on chaos_fresh (kill:db, pause:db)" in bid.evidence
    assert "cost 60 s: the chaos default (no past chaos run of chaos_fresh" in bid.evidence

    board.store.put([past_run(Agent.chaos, "chaos_tried", n, d, faults="kill:db,pause:db")
                     for n, d in enumerate([20.0, 40.0, 300.0])])
    tried = agent.propose(planned(board, named("chaos_tried"))[Layer.chaos])
    assert tried is not None and tried.value == 0.2
    assert tried.cost_s == 40.0  # the median: one run that hung does not set the price
    assert "0 of 2 fault(s) never tried" in tried.evidence
    assert "cost 40.0 s: median of 3 past chaos run(s) of chaos_tried" in tried.evidence

    board.store.put([FailureRecord(agent=Agent.chaos, run_id="clnrm-chaos_tried-chaos-0",
                                   test="chaos_tried", message="api did not survive the pause",
                                   signature="chaos:resilience",
                                   metadata={"scenario": "chaos_tried", "faults": "pause:db"})])
    weak = agent.propose(planned(board, named("chaos_tried"))[Layer.chaos])
    assert weak is not None and weak.value == 0.5
    assert "pause:db found a weakness before" in weak.evidence


def test_the_performance_bid_wants_a_missing_thin_stale_or_shifting_baseline(
        board: Blackboard) -> None:
    from clnrm.perf.baseline import BaselineStore, MetricRun, RunMeasurement
    from clnrm.perf.fingerprint import Fingerprint

    fp = Fingerprint(backend="docker", cpus=2, engine="27.3.1", kernel="6.8")

    def measured(scenario: str, n: int, value: float, at: datetime) -> RunMeasurement:
        return RunMeasurement(
            scenario=scenario, run_id=f"clnrm-{scenario}-{n}", fingerprint=fp, at=at,
            baseline=True, metrics={"latency:GET /": MetricRun(
                metric="latency:GET /", unit="ms", direction="higher_is_worse",
                statistic="p95", value=value, count=10, samples=[value] * 10)})

    agent = PerformanceAgent(board, name="performance@unit")
    agent.clock = lambda: NOW
    bid = agent.propose(planned(board, named("perf_new"))[Layer.performance])
    assert bid is not None and bid.value == 0.9
    assert "no baseline of perf_new in memory" in bid.evidence

    baselines = BaselineStore(board.store)
    for n in range(2):
        baselines.record(measured("perf_thin", n, 10.0, NOW - timedelta(hours=n + 1)))
    thin = agent.propose(planned(board, named("perf_thin"))[Layer.performance])
    assert thin is not None and thin.value == 0.75  # 0.6 + 0.3 x (1 - 2/4)
    assert "thin baseline of perf_thin: 2 of the 4 run(s) needed" in thin.evidence

    for n in range(4):
        baselines.record(measured("perf_old", n, 10.0, NOW - STALE_AFTER - timedelta(days=n + 1)))
    stale = agent.propose(planned(board, named("perf_old"))[Layer.performance])
    assert stale is not None and stale.value == 0.7
    assert "stale baseline of perf_old: its newest run is 8 day(s) old" in stale.evidence
    agent.clock = lambda: NOW - STALE_AFTER - timedelta(hours=1)  # frozen earlier: fresh
    fresh = agent.propose(planned(board, named("perf_old"))[Layer.performance])
    assert fresh is not None and fresh.value == 0.3 and "fresh and steady" in fresh.evidence

    agent.clock = lambda: NOW
    for n, value in enumerate([10.0] * 17 + [30.0] * 3):
        baselines.record(measured("perf_shift", n, value, NOW - timedelta(hours=30 - n)))
    shift = agent.propose(planned(board, named("perf_shift"))[Layer.performance])
    assert shift is not None and shift.value == 0.8
    assert "recent change point in perf_shift: latency:GET / changed at run clnrm-perf_shift-17" \
        in shift.evidence


def test_the_intelligence_bid_wants_request_types_without_a_generated_test(
        board: Blackboard) -> None:
    text = named("mined", BASE + "\n[intelligence]\n")
    agent = IntelligenceAgent(board, name="intelligence@unit")
    task = planned(board, text)[Layer.intelligence]
    first = agent.propose(task)
    assert first is not None and first.value == 0.8
    assert "no patterns or generated tests of mined in memory yet" in first.evidence
    assert "cost 5 s: the intelligence default" in first.evidence

    def pattern(name: str, **meta: str) -> PatternRecord:
        return PatternRecord(agent=Agent.intelligence, name=f"mined: {name}", description=name,
                             confidence=0.75, support=3, metadata={"scenario": "mined", **meta})

    board.store.put([pattern(f"{rt}: api calls db", pattern="call", request_type=rt)
                     for rt in ("GET /items", "POST /items", "GET /health")]
                    + [pattern("generated test GET /items", pattern="generated_test")])
    some = agent.propose(task)
    assert some is not None and some.value == round(0.4 + 0.4 * 2 / 3, 3)
    assert "2 of 3 request type(s) of mined without a generated test: GET /health, " \
           "POST /items" in some.evidence
    board.store.put([pattern("generated test", pattern="generated_test")])
    covered = agent.propose(task)
    assert covered is not None and covered.value == 0.3


def test_the_same_memory_gives_the_same_bids_and_award(board: Blackboard) -> None:
    tasks = planned(board, named("steady"))
    finish(board, tasks[Layer.orchestration], TaskStatus.failed,
           "scripted run of steady: failed: container exited with code 137 (OOMKilled)")
    finish(board, tasks[Layer.performance], TaskStatus.done, "measured")

    def round_of_bids() -> list[Bid]:
        agents = [ChaosAgent(board, name="chaos@a"), Healer(board, name="self_healing@a")]
        return [b for a in agents if (b := a.propose(tasks[Layer.chaos])) is not None]

    first, again = round_of_bids(), round_of_bids()
    assert first == again and len(first) == 2
    assert award(tasks[Layer.chaos], first) == award(tasks[Layer.chaos], list(reversed(again)))


# -- two agents bid on one task; the rule picks one -----------------------------------


def test_healer_and_chaos_bid_on_a_failing_scenario_and_the_healer_goes_first(
        board: Blackboard) -> None:
    tasks = planned(board, named("failing_db"))
    chaos_task = tasks[Layer.chaos]
    finish(board, tasks[Layer.orchestration], TaskStatus.failed,
           "scripted run of failing_db: failed: db exited with code 1 on start")
    finish(board, tasks[Layer.performance], TaskStatus.done, "measured")
    chaos = ChaosAgent(board, name="chaos@unit").propose(chaos_task)
    healer = Healer(board, name="self_healing@unit").propose(chaos_task)
    assert chaos is not None and healer is not None
    assert chaos.value == 0.175 and "its verdict run failed" in chaos.evidence  # 0.7 x 0.25
    assert healer.value == 0.5 and "heal first, then perturb" in healer.reason
    decided = award(chaos_task, [chaos, healer])
    assert decided.winner is Agent.self_healing  # 0.5 / 90 s beats 0.175 / 60 s
    assert decided.first == chaos_task.id.rsplit("/", 1)[0] + "/self_healing-first"
    for words in ("value 0.50 / cost 90.0 s = 0.0056/s", "competing bids: chaos value 0.1",
                  "/ cost 60.0 s = 0.0029/s",
                  "rule: highest value per second of cost wins",
                  "it goes first with its own self_healing work on failing_db",
                  "chaos is run after performance on failing_db, never before it "
                  "(conflict rule 'measurement before perturbation')"):
        assert words in decided.reason, words

    # it went first: its bid no longer counts, and it makes none
    again = award(chaos_task, [chaos, healer], gone_first={decided.first})
    assert again.winner is Agent.chaos and "not counted (went first already): self_healing" \
        in again.reason
    board.post_first(chaos_task, decided)
    assert Healer(board, name="self_healing@unit").propose(chaos_task) is None


def test_the_healer_has_no_opinion_on_a_passing_or_unhealed_scenario(board: Blackboard) -> None:
    passing = planned(board, named("passing_db"))
    finish(board, passing[Layer.orchestration], TaskStatus.done, "passed")
    finish(board, passing[Layer.performance], TaskStatus.done, "measured")
    assert Healer(board).propose(passing[Layer.chaos]) is None
    off = planned(board, named("healing_off", HEALABLE + "enabled = false\n"))
    finish(board, off[Layer.orchestration], TaskStatus.failed, "db exited with code 1")
    assert Healer(board).propose(off[Layer.performance]) is None


def test_a_first_task_goes_before_the_task_and_healing_before_re_measuring(
        board: Blackboard) -> None:
    tasks = planned(board, named("first_order"))
    perf = tasks[Layer.performance]
    decided = Award(task_id=perf.id, winner=Agent.self_healing, reason="test", value=0.5,
                    cost_s=90.0, first=perf.id.rsplit("/", 1)[0] + "/self_healing-first")
    first, later = board.post_first(perf, decided)
    assert first.layer is Layer.self_healing and first.after == perf.after
    assert later.after == (*perf.after, first.id)
    ids = [t.id for t in board.tasks(perf.run_id)]
    assert ids.index(first.id) == ids.index(perf.id) - 1  # in the plan, before the task
    finish(board, tasks[Layer.orchestration], TaskStatus.failed, "crashed")
    # the measurement waits for the healing, by the edge and, without it, by the rule
    unchained = later.model_copy(update={"after": perf.after})
    assert board.blocked_by(later) == f"{later.id} waits for {first.id} to finish"
    assert "healing before re-measuring" in (board.blocked_by(unchained) or "")
    # the healer planned after the measurement waits for it, and does not block it
    assert board.blocked_by(tasks[Layer.self_healing]) is not None
    finish(board, first, TaskStatus.done, "healed")
    assert board.blocked_by(later) is None


def test_the_swarm_hands_a_non_owner_win_to_its_first_task_then_renegotiates(
        board: Blackboard) -> None:
    agents = [Architect(board), ScriptedOrchestrator(board), OfflinePerformance(board),
              OfflineChaos(board), OfflineHealer(board)]
    handles = [LocalHandle(a) for a in agents]
    try:
        report = Swarm(board, handles).run([("failing.clnrm.toml", named("failing"))])
    finally:
        for handle in handles:
            handle.close()
    status = {o.task_id.split("/", 1)[1]: (o.agent.value, o.status.value)
              for o in report.outcomes}
    assert status == {"failing/architecture": ("architect", "done"),
                      "failing/orchestration": ("orchestration", "failed"),
                      "failing/self_healing-first": ("self_healing", "done"),
                      "failing/performance": ("performance", "done"),
                      "failing/chaos": ("chaos", "done"),
                      "failing/self_healing": ("self_healing", "done")}
    assert report.exit_code == 0  # healed, as clnrm run --heal
    history = board.history(report.run_id)
    done_at = {e.topic.split("/", 1)[1]: e.created_at for e in history
               if e.id.endswith(":result")}
    assert done_at["failing/self_healing-first"] <= done_at["failing/performance"] \
        <= done_at["failing/chaos"]
    decisions = {e.topic.split("/", 1)[1]: e.reason for e in history
                 if e.id.endswith(":assign")}
    assert "heal first, then re-measure" in decisions["failing/self_healing-first"]
    assert decisions["failing/performance"].startswith(
        "performance for failing awarded to performance: ")
    (bid,) = board.store.get([f"blackboard:{report.run_id}/failing/chaos:bid:chaos"])
    assert isinstance(bid, BlackboardEntry) and bid.metadata["cost_s"] == 60.0
    assert [t.id.split("/", 1)[1] for t in report.tasks] == [
        "failing/architecture", "failing/orchestration", "failing/self_healing-first",
        "failing/performance", "failing/chaos", "failing/self_healing"]


# -- decisions are explained, and found by a question in plain words ------------------


def test_why_was_chaos_run_before_performance_finds_the_decision(
        board: Blackboard, memory_dir: Path) -> None:
    """Two scenarios ready in one round: chaos of one (never tried, cheap) goes out
    before performance of the other (a steady baseline); `clnrm memory query` finds why."""
    chaos_side = planned(board, named("orders", HEALABLE.split("[performance]")[0]))
    perf_side = planned(board, named("billing", BASE + "\n[performance]\niterations = 2\n"))
    for side in (chaos_side, perf_side):
        finish(board, side[Layer.orchestration], TaskStatus.done, "passed")
    board.store.put([past_run(Agent.chaos, "orders", 0, 12.0, faults="kill:db"),
                     past_run(Agent.performance, "billing", 0, 45.0)])
    swarm = Swarm(board, [LocalHandle(OfflineChaos(board)), LocalHandle(OfflinePerformance(board))],
                  run_id=chaos_side[Layer.chaos].run_id)
    try:
        awarded: dict[str, Agent] = {}
        assert swarm._negotiate([perf_side[Layer.performance], chaos_side[Layer.chaos]],
                                awarded, {}) == []
    finally:
        for handle in swarm.handles.values():
            handle.close()  # type: ignore[attr-defined]
    chaos_id = f"blackboard:{chaos_side[Layer.chaos].id}:assign"
    (entry,) = board.store.get([chaos_id])
    assert isinstance(entry, BlackboardEntry)
    order = ("chaos for orders was run before performance for billing because its value per "
             "cost is higher (0.0375/s against 0.0200/s)")
    assert order in entry.reason and "value 0.45 / cost 12.0 s" in entry.reason
    assert entry.metadata["cost_s"] == 12.0 and entry.bid == 0.45
    assert "competing bids" not in entry.reason  # one bid each: the round compares them

    env = {**os.environ, "CLNRM_MEMORY": str(memory_dir)}
    found = subprocess.run([sys.executable, "-m", "clnrm", "memory", "query",
                            "why was chaos run before performance", "--format", "json"],
                           capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert found.returncode == 0, found.stderr[-2000:]
    hits = json.loads(found.stdout.strip().splitlines()[-1])["hits"]
    ids = [h["record"]["id"] for h in hits]
    # among the first hits of the default ten, beside other runs' decisions on the same
    # words (a lexical embedding ranks "performance ... run before" in any of them)
    chaos_order = f"blackboard:{chaos_side[Layer.chaos].id}:order"
    assert chaos_order in ids[:5], ids
    assert hits[ids.index(chaos_order)]["record"]["reason"] == order
