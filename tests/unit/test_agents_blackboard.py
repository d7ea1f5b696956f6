"""The blackboard's rules on a real embedded memory: claims, waits, results, resumption."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from clnrm.agents import Blackboard, Layer, SwarmAgent, Task, TaskOutcome, TaskStatus
from clnrm.agents.architect import Architect
from clnrm.agents.blackboard import Award, Claim
from clnrm.agents.healer import Healer
from clnrm.agents.intelligence import IntelligenceAgent
from clnrm.agents.negotiation import LocalHandle, Swarm, SwarmReport, intake_tasks
from clnrm.agents.performance import PerformanceAgent
from clnrm.memory import Agent, BlackboardEntry, MemoryStore, open_memory

from tests.unit.test_agents import BASE, EVERY_LAYER

_runs = itertools.count(1)


class ScriptedOrchestrator(SwarmAgent):
    """Stands in for the Runner: the verdict is in the scenario name, no Docker needed."""

    agent = Agent.orchestration
    layer = Layer.orchestration
    calls: ClassVar[list[str]] = []

    def act(self, task: Task) -> TaskOutcome:
        self.calls.append(task.id)
        failed = "failing" in task.text
        return TaskOutcome(task_id=task.id, agent=self.agent,
                           status=TaskStatus.failed if failed else TaskStatus.done,
                           exit_code=1 if failed else 0,
                           reason=f"scripted run of {task.scenario}: "
                                  f"{'failed' if failed else 'passed'}")


class ScriptedChaos(SwarmAgent):
    """Stands in for the chaos agent (whose experiments need Docker): always holds up."""

    agent = Agent.chaos
    layer = Layer.chaos

    def act(self, task: Task) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                           exit_code=0, reason=f"scripted experiment on {task.scenario}: held")


class ScriptedPerformance(SwarmAgent):
    """Stands in for the performance agent (whose runs need Docker): nothing regressed."""

    agent = Agent.performance
    layer = Layer.performance

    def act(self, task: Task) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                           exit_code=0, reason=f"scripted measurement of {task.scenario}: "
                                               "no regression", facts={"regressions": 0})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryStore]:
    with open_memory(tmp_path_factory.mktemp("memory")) as opened:
        yield opened


@pytest.fixture
def board(store: MemoryStore) -> Blackboard:
    return Blackboard(store)


def planned(board: Blackboard, text: str = EVERY_LAYER) -> dict[Layer, Task]:
    """A posted intake and plan under a fresh run id, as the swarm would leave them."""
    run_id = f"swarm-unit{next(_runs)}"
    (intake,) = intake_tasks(run_id, [("planned.clnrm.toml", text)])
    board.post_intake(run_id, [intake])
    assert Architect(board).act(intake).status is TaskStatus.done
    return {t.layer: t for t in board.plan_tasks(intake.id)}


def claim(board: Blackboard, task: Task, claimer: str, incarnation: str = "i1",
          agent: Agent | None = None) -> Claim:
    return board.claim(task, claimer=claimer, incarnation=incarnation,
                       agent=agent or task.layer.agent)


def done(task: Task, reason: str = "ok") -> TaskOutcome:
    return TaskOutcome(task_id=task.id, agent=task.layer.agent, status=TaskStatus.done,
                       reason=reason, exit_code=0)


def test_plan_is_posted_and_read_back_in_order(board: Blackboard) -> None:
    tasks = planned(board)
    run_id = next(iter(tasks.values())).run_id
    assert [t.layer for t in board.tasks(run_id)] == [
        Layer.architecture, Layer.orchestration, Layer.performance, Layer.chaos,
        Layer.self_healing, Layer.intelligence]


def test_first_claim_wins_and_another_claimer_is_refused(board: Blackboard) -> None:
    run = planned(board)[Layer.orchestration]
    first = claim(board, run, "orchestration@a")
    assert first.won and first.attempt == 1
    second = claim(board, run, "orchestration@b", incarnation="i2")
    assert not second.won
    assert second.reason == "claimed by orchestration@a"


def test_same_claimer_after_a_restart_resumes_with_the_next_attempt(board: Blackboard) -> None:
    run = planned(board)[Layer.orchestration]
    assert claim(board, run, "orchestration@a").won
    again = claim(board, run, "orchestration@a", incarnation="i2")
    assert again.won and again.attempt == 2
    resumed = board.store.get([f"blackboard:{run.id}:resume:2"])
    assert resumed and "resumes its unfinished claim" in resumed[0].reason  # type: ignore[union-attr]


def test_only_the_awarded_agent_may_claim(board: Blackboard) -> None:
    run = planned(board)[Layer.orchestration]
    board.record_award(run, Award(task_id=run.id, winner=Agent.orchestration, reason="test"))
    refused = claim(board, run, "intelligence@a", agent=Agent.intelligence)
    assert not refused.won and refused.reason == "awarded to orchestration, not intelligence"


def test_claims_wait_for_dependencies_then_for_the_conflict_rule(board: Blackboard) -> None:
    tasks = planned(board)
    chaos, perf, run = tasks[Layer.chaos], tasks[Layer.performance], tasks[Layer.orchestration]
    waiting = claim(board, chaos, "chaos@a")
    assert not waiting.won and waiting.reason.endswith(f"waits for {run.id} to finish")
    board.finish(run, done(run))
    assert claim(board, chaos, "chaos@a").reason.endswith(f"waits for {perf.id} to finish")
    # A plan without the edge still may not let chaos perturb before the baseline.
    unchained = chaos.model_copy(update={"after": (run.id,)})
    refused = claim(board, unchained, "chaos@a")
    assert not refused.won and "measurement before perturbation" in refused.reason
    wait = board.store.get([f"blackboard:{chaos.id}:wait"])[0]
    assert isinstance(wait, BlackboardEntry) and "measurement before" in wait.reason
    board.finish(perf, done(perf, "baseline measured"))
    assert claim(board, unchained, "chaos@a").won


def test_a_result_is_recorded_once_and_the_first_one_counts(board: Blackboard) -> None:
    run = planned(board)[Layer.orchestration]
    first = board.finish(run, done(run, "first"))
    second = board.finish(run, done(run, "second").model_copy(update={"attempt": 2}))
    assert second == first
    assert board.outcome(run.id).reason == "first"  # type: ignore[union-attr]
    assert claim(board, run, "orchestration@x").outcome == first


def test_restarted_agent_finishes_its_claimed_task_exactly_once(board: Blackboard) -> None:
    run = planned(board, BASE)[Layer.orchestration]
    ScriptedOrchestrator.calls.clear()
    crashed = ScriptedOrchestrator(board, name="orchestration@r")
    assert claim(board, run, crashed.name, crashed.incarnation).won  # ...and then it died
    assert board.unfinished_claims(run.run_id, "orchestration@r") == [run]
    restarted = ScriptedOrchestrator(board, name="orchestration@r")
    (outcome,) = restarted.resume(run.run_id)
    assert outcome.status is TaskStatus.done and outcome.attempt == 2
    assert restarted.resume(run.run_id) == []
    assert restarted.work(run) == outcome  # a resent call gets the recorded outcome
    assert ScriptedOrchestrator.calls == [run.id]


def test_swarm_of_plain_agents_negotiates_and_leaves_an_explanation(
        board: Blackboard, tmp_path: Path) -> None:
    ScriptedOrchestrator.calls.clear()
    agents = [Architect(board), ScriptedOrchestrator(board), ScriptedPerformance(board),
              ScriptedChaos(board), Healer(board), IntelligenceAgent(board)]
    handles = [LocalHandle(a) for a in agents]
    try:
        report = Swarm(board, handles).run([("every.clnrm.toml", EVERY_LAYER),
                                            ("failing.clnrm.toml", BASE.replace(
                                                '"planned"', '"failing"'))])
    finally:
        for handle in handles:
            handle.close()
    status = {o.task_id.split("/", 1)[1]: o.status.value for o in report.outcomes}
    assert status == {"every/architecture": "done", "failing/architecture": "done",
                      "every/orchestration": "done", "failing/orchestration": "failed",
                      "every/performance": "done", "every/chaos": "done",
                      "every/self_healing": "done", "every/intelligence": "declined"}
    assert report.exit_code == 1
    assert sorted(ScriptedOrchestrator.calls) == [f"{report.run_id}/every/orchestration",
                                                  f"{report.run_id}/failing/orchestration"]
    actions = {(d.agent.value, d.action) for d in report.decisions}
    assert {("architect", "post"), ("orchestration", "bid"), ("orchestration", "claim"),
            ("chaos", "bid"), ("architect", "decision")} <= actions
    assert report.summary.startswith(f"swarm run {report.run_id} failed: ")
    healed = next(o for o in report.outcomes if o.task_id.endswith("every/self_healing"))
    assert healed.reason.endswith("passed: nothing to heal")  # no rerun of a passing run
    history = board.history(report.run_id)
    perf_done = next(e for e in history if e.id.endswith("/every/performance:result"))
    chaos_done = next(e for e in history if e.id.endswith("/every/chaos:result"))
    assert perf_done.created_at <= chaos_done.created_at


@pytest.mark.parametrize(("statuses", "codes", "expected"), [
    (["done", "done"], [0, None], 0),
    (["failed", "declined"], [1, None], 1),
    (["failed", "done"], [2, 0], 2),
    (["lost", "done"], [None, 0], 2),
])
def test_swarm_exit_code_follows_clnrm_run(statuses: list[str], codes: list[int | None],
                                           expected: int) -> None:
    outcomes = [TaskOutcome(task_id=f"r/s/{i}", agent=Agent.orchestration,
                            status=TaskStatus(s), reason="", exit_code=c)
                for i, (s, c) in enumerate(zip(statuses, codes, strict=True))]
    assert SwarmReport(run_id="r", memory="m", outcomes=outcomes).exit_code == expected


@pytest.mark.parametrize(("orchestration", "healer", "expected"), [
    ((TaskStatus.failed, 2, {}), (TaskStatus.done, 0, {"healed": True}), 0),
    ((TaskStatus.failed, 1, {}), (TaskStatus.failed, 1, {"healed": False}), 1),  # defect
    ((TaskStatus.done, 0, {}), (TaskStatus.done, 0, {"healed": False}), 0),
])
def test_a_healed_scenario_counts_as_passed_as_with_run_heal(
        orchestration: tuple[TaskStatus, int, dict[str, bool]],
        healer: tuple[TaskStatus, int, dict[str, bool]], expected: int) -> None:
    def outcome(agent: Agent, layer: str, scenario: str,
                said: tuple[TaskStatus, int, dict[str, bool]]) -> TaskOutcome:
        return TaskOutcome(task_id=f"r/{scenario}/{layer}", agent=agent, status=said[0],
                           reason="", exit_code=said[1], facts=dict(said[2]))

    outcomes = [outcome(Agent.orchestration, "orchestration", "s", orchestration),
                outcome(Agent.self_healing, "self_healing", "s", healer)]
    assert SwarmReport(run_id="r", memory="m", outcomes=outcomes).exit_code == expected
    # healing one scenario never hides another's failure
    other = outcome(Agent.orchestration, "orchestration", "t", (TaskStatus.failed, 1, {}))
    assert SwarmReport(run_id="r", memory="m",
                       outcomes=[*outcomes, other]).exit_code == max(expected, 1)


def test_observe_lists_only_my_layers_open_tasks(board: Blackboard) -> None:
    tasks = planned(board)
    chaos = ScriptedChaos(board)
    run_id = tasks[Layer.chaos].run_id
    assert chaos.observe(run_id) == [tasks[Layer.chaos]]
    board.finish(tasks[Layer.chaos], chaos.act(tasks[Layer.chaos]))
    assert chaos.observe(run_id) == []


def test_the_performance_agent_measures_and_records_in_its_own_memory(
        board: Blackboard) -> None:
    """The real agent on the local backend: a steps-only file measures no spans, so it is
    judged (nothing regressed) but not recorded, and the memory says why."""
    from clnrm.agents.base import RunSettings

    text = BASE.replace('"planned"', '"measured"') + "\n[performance]\nstats = false\n"
    tasks = planned(board, text)
    agent = PerformanceAgent(board, name="performance@unit",
                             settings=RunSettings(backend="local"))
    outcome = agent.act(tasks[Layer.performance])
    assert outcome.status is TaskStatus.done, outcome.reason
    assert outcome.facts["regressions"] == 0 and outcome.facts["verdicts"] == 0
    assert "performance: no baseline for measured on local-none/" in outcome.reason
    assert "this run is not recorded (it measured nothing" in outcome.reason
    hits = board.store.query("measured performance", kind="run", agent="performance", k=5)
    assert any(h.record.run_id == outcome.facts["clnrm_run"] for h in hits)



def test_the_orchestrator_agent_runs_the_scenario_and_remembers_each_failure(
        board: Blackboard) -> None:
    """The one orchestrator: in the swarm it runs the file on the Runner (local backend
    here) with the verdict unchanged, and files the run, the test and its failure."""
    from clnrm.agents.base import RunSettings
    from clnrm.agents.orchestrator import OrchestratorAgent

    text = BASE.replace('"planned"', '"broken"').replace('["true"]', '["false"]')
    tasks = planned(board, text)
    agent = OrchestratorAgent(board, name="orchestration@unit",
                              settings=RunSettings(backend="local"))
    outcome = agent.act(tasks[Layer.orchestration])
    assert (outcome.status, outcome.exit_code) == (TaskStatus.failed, 1), outcome.reason
    assert outcome.reason.startswith("orchestration ran broken (planned.clnrm.toml) failed "
                                     "as clnrm run ")
    assert ": 1 failed in " in outcome.reason and "step 's': exit code 1" in outcome.reason
    assert list(outcome.facts) == ["clnrm_run", "passed", "failed", "error", "skipped",
                                   "duration_s"]
    assert outcome.facts["failed"] == 1
    run = outcome.facts["clnrm_run"]
    kinds = {h.record.kind for kind in ("run", "test_result", "failure")
             for h in board.store.query("broken run failed", kind=kind, k=20)
             if h.record.run_id == run}
    assert kinds == {"run", "test_result", "failure"}


def test_a_file_that_cannot_be_loaded_is_a_failed_task_with_exit_code_2(
        board: Blackboard) -> None:
    from clnrm.agents.chaos import ChaosAgent

    tasks = planned(board)
    bad = tasks[Layer.chaos].model_copy(update={"text": "[meta\n"})
    outcome = ChaosAgent(board, name="chaos@unit").act(bad)
    assert (outcome.status, outcome.exit_code) == (TaskStatus.failed, 2)
    assert outcome.reason.startswith("chaos could not run planned (planned.clnrm.toml): ")


def test_a_scenario_agent_declines_on_the_record_when_its_table_is_absent(
        board: Blackboard) -> None:
    from clnrm.agents.chaos import ChaosAgent

    tasks = planned(board)
    plain = tasks[Layer.chaos].model_copy(update={"text": BASE})
    outcome = ChaosAgent(board, name="chaos@unit").act(plain)
    assert outcome.status is TaskStatus.declined
    assert outcome.reason == ("chaos@unit did not act on planned: it has no [[chaos.faults]] "
                              "to inject")


def test_the_orchestrator_plans_without_a_board_but_cannot_negotiate_without_one() -> None:
    from clnrm.agents.orchestrator import OrchestratorAgent

    from clnrm.errors import ClnrmError
    from clnrm.scenario import loads_scenario

    agent = OrchestratorAgent()
    assert agent.plan(loads_scenario(EVERY_LAYER, source="p.clnrm.toml")).graph.levels == (("db",),)
    with pytest.raises(ClnrmError, match="has no blackboard"):
        agent.observe("swarm-x")
