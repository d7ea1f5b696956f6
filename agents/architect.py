"""The architect: reads a scenario and plans which layers work on it, in what order.

The plan is data (a list of :class:`~clnrm.agents.base.Task` with ``after`` edges)
posted on the blackboard, with a reason for every layer it includes or leaves
out, so a run can be explained from memory alone.  The architect decides
nothing about *how* a layer works; it asks each layer whether it is on
(:func:`clnrm.layers.layer_active`, the same rule the executor follows, so a layer
is planned exactly when a run would use it).
"""

from __future__ import annotations

from typing import Final

from clnrm.agents.base import (
    PRECEDENCE,
    Layer,
    SwarmAgent,
    Task,
    TaskOutcome,
    TaskStatus,
    conflicts,
    precedence,
)
from clnrm.memory import Agent

from clnrm.errors import ClnrmError
from clnrm.layers import layer_active, why_off
from clnrm.scenario import loads_scenario
from clnrm.scenario.model import Scenario

PURPOSE: Final[dict[Layer, str]] = {
    Layer.orchestration: "run the scenario and judge it",
    Layer.performance: "measure timings against a baseline",
    Layer.chaos: "run with injected faults",
    Layer.self_healing: "remediate failures",
    Layer.intelligence: "analyse the results",
}

WHY_AFTER: Final[dict[Layer, str]] = {
    Layer.orchestration: "always first: its verdict is what every other layer builds on",
    Layer.performance: "after the verdict run, on a system known to work",
    Layer.chaos: "after the verdict run",
    Layer.self_healing: "after the runs whose failures it would mend",
    Layer.intelligence: "last: it reads every other layer's results",
}

WAITS_FOR_ALL: Final = frozenset({Layer.self_healing, Layer.intelligence})
"""Layers that read what every layer before them produced."""

OPTIONAL_LAYERS: Final[tuple[Layer, ...]] = tuple(
    layer for layer in PRECEDENCE if layer not in (Layer.architecture, Layer.orchestration))


class Architect(SwarmAgent):
    """Turns each submitted scenario (an ``architecture`` task) into a posted plan."""

    agent = Agent.architect
    layer = Layer.architecture

    def plan(self, task: Task, scenario: Scenario) -> tuple[list[Task], str]:
        """The layer tasks for ``scenario`` and the plan's reason; pure, nothing is written.

        Order follows :data:`~clnrm.agents.base.PRECEDENCE`.  Each task waits for the
        orchestration run; a conflicting pair is chained by the conflict rule;
        self-healing and intelligence wait for every layer planned before them.
        """
        on = [Layer.orchestration] + [layer for layer in OPTIONAL_LAYERS
                                      if layer_active(scenario, layer.value)]
        prefix = task.id.rsplit("/", 1)[0]
        ids = {layer: f"{prefix}/{layer.value}" for layer in on}
        notes = [f"{Layer.orchestration.value}: {WHY_AFTER[Layer.orchestration]}"]
        tasks: list[Task] = []
        for layer in on:
            after: list[str] = []
            if layer is not Layer.orchestration:
                after.append(ids[Layer.orchestration])
                notes.append(f"{layer.value}: {WHY_AFTER[layer]}")
            for earlier in on[1:on.index(layer)]:  # optional layers planned before this one
                if conflicts(earlier, layer):
                    after.append(ids[earlier])
                    first, _, rule = precedence(earlier, layer)
                    if first is earlier:  # else the plan's order wins (see blocked_by)
                        notes.append(rule)
                elif layer in WAITS_FOR_ALL:
                    after.append(ids[earlier])
            tasks.append(Task(id=ids[layer], run_id=task.run_id, layer=layer,
                              scenario=task.scenario, source=task.source, text=task.text,
                              after=tuple(after), plan_id=task.id, purpose=PURPOSE[layer]))
        off = [why_off(scenario, layer.value) for layer in OPTIONAL_LAYERS if layer not in on]
        order = " -> ".join(layer.value for layer in on)
        reason = (f"plan for {scenario.name} ({task.source}): {order}. "
                  + "; ".join(notes) + (". Not planned: " + "; ".join(off) if off else ""))
        return tasks, reason

    def act(self, task: Task) -> TaskOutcome:
        try:
            scenario = loads_scenario(task.text, source=task.source)
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, reason=f"architect cannot plan {task.source}: {exc}")
        tasks, reason = self.plan(task, scenario)
        self.board.post_plan(task, tasks, reason)
        order = " -> ".join(t.layer.value for t in tasks)
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                           reason=f"architect planned {scenario.name}: {order}",
                           facts={"tasks": len(tasks), "name": scenario.name})

