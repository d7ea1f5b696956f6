"""Agents as plain classes: plans, bids, declines and the conflict rule, without Ray."""

from __future__ import annotations

import pytest
from clnrm.agents import Bid, Layer, Task, TaskStatus, award, conflicts, precedence
from clnrm.agents.architect import Architect
from clnrm.agents.chaos import ChaosAgent
from clnrm.agents.healer import Healer
from clnrm.agents.performance import PerformanceAgent
from clnrm.memory import Agent

from clnrm.scenario import loads_scenario

BASE = """\
[meta]
name = "planned"
version = "1.0"

[[steps]]
name = "s"
command = ["true"]
"""

EVERY_LAYER = BASE + """
[services.db]
image = "clnrm/busybox:latest"

[chaos]
[[chaos.faults]]
type = "pause"
target = "db"

[performance]
iterations = 3

[self_healing]
strategies = ["restart_service"]

[intelligence]
"""


def arch_task(text: str) -> Task:
    return Task(id="swarm-t/planned/architecture", run_id="swarm-t", layer=Layer.architecture,
                scenario="planned", source="planned.clnrm.toml", text=text)


def plan(text: str) -> tuple[dict[Layer, Task], str]:
    architect = Architect(board=None)  # type: ignore[arg-type]  # plan() writes nothing
    task = arch_task(text)
    tasks, reason = architect.plan(task, loads_scenario(text, source=task.source))
    return {t.layer: t for t in tasks}, reason


def test_plan_without_layer_tables_only_runs_the_scenario() -> None:
    tasks, reason = plan(BASE)
    assert list(tasks) == [Layer.orchestration]
    assert tasks[Layer.orchestration].after == ()
    assert "chaos (no [chaos] table)" in reason
    assert "intelligence (no [intelligence] table)" in reason


def test_plan_orders_every_layer_and_chains_the_conflicting_pair() -> None:
    tasks, reason = plan(EVERY_LAYER)
    assert list(tasks) == [Layer.orchestration, Layer.performance, Layer.chaos,
                           Layer.self_healing, Layer.intelligence]
    ids = {layer: t.id for layer, t in tasks.items()}
    assert ids[Layer.chaos] == "swarm-t/planned/chaos"
    assert tasks[Layer.performance].after == (ids[Layer.orchestration],)
    assert tasks[Layer.chaos].after == (ids[Layer.orchestration], ids[Layer.performance])
    assert set(tasks[Layer.intelligence].after) == {ids[x] for x in tasks if x is not
                                                    Layer.intelligence}
    assert all(t.plan_id == "swarm-t/planned/architecture" for t in tasks.values())
    assert "measurement before perturbation" in reason
    assert reason.startswith("plan for planned (planned.clnrm.toml): orchestration -> "
                             "performance -> chaos -> self_healing -> intelligence.")


def test_plan_honours_layer_switches_and_disabled_tables() -> None:
    text = EVERY_LAYER.replace("[performance]\n", "[performance]\nenabled = false\n") + \
        "\n[layers]\nchaos = false\n"
    tasks, reason = plan(text)
    assert Layer.chaos not in tasks and Layer.performance not in tasks
    assert "chaos (switched off in [layers])" in reason
    assert "performance ([performance] has enabled = false)" in reason


@pytest.mark.parametrize(("a", "b"), [(Layer.chaos, Layer.performance),
                                      (Layer.performance, Layer.chaos)])
def test_conflict_rule_puts_measurement_before_perturbation(a: Layer, b: Layer) -> None:
    assert conflicts(a, b)
    first, second, reason = precedence(a, b)
    assert (first, second) == (Layer.performance, Layer.chaos)
    assert "baseline measured under injected faults" in reason


def test_conflict_rule_puts_healing_before_re_measuring() -> None:
    first, second, reason = precedence(Layer.performance, Layer.self_healing)
    assert (first, second) == (Layer.self_healing, Layer.performance)
    assert reason.startswith("conflict rule 'healing before re-measuring'")


def test_only_measurement_perturbation_and_healing_conflict() -> None:
    assert conflicts(Layer.self_healing, Layer.performance)
    assert not conflicts(Layer.orchestration, Layer.chaos)
    assert not conflicts(Layer.self_healing, Layer.chaos)
    assert not conflicts(Layer.self_healing, Layer.intelligence)


def test_award_goes_to_best_value_per_cost_then_own_layer_then_name() -> None:
    task = arch_task(BASE).model_copy(update={"layer": Layer.orchestration,
                                              "id": "swarm-t/planned/orchestration"})
    bids = [Bid(task_id=task.id, agent=Agent.chaos, value=0.5, cost_s=10, reason="could"),
            Bid(task_id=task.id, agent=Agent.intelligence, value=0.9, cost_s=30, reason="keen"),
            Bid(task_id=task.id, agent=Agent.orchestration, value=0.6, cost_s=20, reason="mine")]
    decided = award(task, bids)  # 0.05/s, 0.03/s, 0.03/s: the cheap bid wins
    assert decided.winner is Agent.chaos and decided.first == "swarm-t/planned/chaos-first"
    decided = award(task, bids[1:])  # a tie in value per cost goes to the task's own layer
    assert decided.winner is Agent.orchestration and decided.first is None
    assert "competing bids: intelligence value 0.90 / cost 30.0 s = 0.0300/s (keen)" \
        in decided.reason
    bids[2] = bids[2].model_copy(update={"agent": Agent.performance})
    assert award(task, bids[1:]).winner is Agent.intelligence  # then the smaller name


def test_award_with_only_declines_quotes_every_decline() -> None:
    task = arch_task(BASE).model_copy(update={"layer": Layer.chaos, "id": "swarm-t/planned/chaos"})
    decided = award(task, [Bid(task_id=task.id, agent=Agent.chaos, reason="no faults yet"),
                           Bid(task_id="other", agent=Agent.chaos, value=1.0, reason="x")])
    assert decided.winner is None
    assert decided.reason == "chaos for planned declined: no faults yet"


def test_healer_bids_to_heal_a_scenario_and_has_no_opinion_on_other_layers() -> None:
    agent = Healer(board=None, name="self_healing@t")
    task = arch_task(EVERY_LAYER).model_copy(update={"layer": Layer.self_healing,
                                                     "id": "swarm-t/planned/self_healing"})
    bid = agent.propose(task)
    assert bid is not None and not bid.declined and bid.value == 0.2
    assert "heal it if it fails" in bid.reason
    assert agent.propose(arch_task(BASE)) is None  # no opinion on other layers' work


def test_the_healer_asks_the_self_healing_layer_and_declines_when_it_is_off() -> None:
    agent = Healer(board=None, name="self_healing@t")
    task = arch_task(BASE + "\n[self_healing]\nenabled = false\n").model_copy(
        update={"layer": Layer.self_healing, "id": "swarm-t/planned/self_healing"})
    outcome = agent.act(task)
    assert outcome.status is TaskStatus.declined
    assert outcome.reason.endswith("its [self_healing] is absent or switched off")


def test_the_performance_agent_declines_a_scenario_whose_layer_is_off() -> None:
    agent = PerformanceAgent(board=None, name="performance@t")  # type: ignore[arg-type]
    task = arch_task(BASE + "\n[performance]\nenabled = false\n").model_copy(
        update={"layer": Layer.performance, "id": "swarm-t/planned/performance"})
    outcome = agent.act(task)
    assert outcome.status is TaskStatus.declined
    assert outcome.reason.endswith("its [performance] table is absent or switched off")


def test_the_chaos_agent_declines_a_scenario_with_nothing_to_inject() -> None:
    agent = ChaosAgent(board=None, name="chaos@t")
    task = arch_task(BASE + "\n[chaos]\nseed = 1\n").model_copy(
        update={"layer": Layer.chaos, "id": "swarm-t/planned/chaos"})
    outcome = agent.act(task)
    assert outcome.status is TaskStatus.declined
    assert outcome.reason.endswith("it has no [[chaos.faults]] to inject")
