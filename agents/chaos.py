"""The chaos agent: runs a scenario's ``[chaos]`` experiment and remembers what it proved.

It runs the file exactly as ``clnrm chaos run`` would (steady state, faults on their
schedule, rollback, resilience verdicts) and leaves the experiment in memory: the
run, the fault timeline in words, and each resilience expectation that failed, so
``clnrm memory query "did the api survive the db pause"`` finds the answer later.
The plan's conflict rule still holds: the architect orders performance before
chaos on one scenario (measurement before perturbation).

A plain class: no Ray import; ``ray_cluster.actors`` wraps it like every agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.base import Layer, SwarmAgent, Task, TaskOutcome, TaskStatus, run_options
from memory import Agent, FailureRecord, RunRecord

if TYPE_CHECKING:
    from agents.blackboard import Blackboard
    from clnrm.results import RunResult

MESSAGE_LIMIT = 600


class ChaosAgent(SwarmAgent):
    """One chaos task = one experiment run; the verdict is the Runner's, unchanged."""

    agent = Agent.chaos
    layer = Layer.chaos

    def __init__(self, board: Blackboard, *, name: str | None = None,
                 settings: Any = None) -> None:
        super().__init__(board, name=name)
        self.settings = settings  # ray_cluster.orchestration.RunSettings, or None

    def act(self, task: Task) -> TaskOutcome:
        from clnrm.errors import ClnrmError
        from clnrm.runner import Runner, make_backend, new_run_id
        from clnrm.scenario import loads_scenario

        options = run_options(self.settings)
        clnrm_run = new_run_id()
        try:
            scenario = loads_scenario(task.text, source=task.source)
            if scenario.chaos is None or not scenario.chaos.faults:
                return TaskOutcome(task_id=task.id, agent=self.agent,
                                   status=TaskStatus.declined,
                                   reason=f"{self.name} did not act on {task.scenario}: it has "
                                          "no [[chaos.faults]] to inject")
            runner = Runner(options, backend=make_backend(options.backend, clnrm_run))
            result = runner.run([scenario])
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, facts={"clnrm_run": clnrm_run},
                               reason=f"chaos could not run {task.scenario} ({task.source}): "
                                      f"{exc}")
        summary = experiment_summary(scenario.name, task, result)
        self._remember(task, scenario.name, result, summary)
        applied = sum(1 for t in result.tests if t.chaos
                      for e in t.chaos.timeline if e.injected_s is not None)
        passed = result.exit_code == 0
        return TaskOutcome(task_id=task.id, agent=self.agent,
                           status=TaskStatus.done if passed else TaskStatus.failed,
                           exit_code=result.exit_code, reason=f"chaos ran {summary}"[:2000],
                           facts={"clnrm_run": result.run_id, "faults_applied": applied,
                                  "duration_s": round(result.duration_s, 3)})

    def _remember(self, task: Task, name: str, result: RunResult, summary: str) -> None:
        tag = {"swarm_run": task.run_id, "task": task.id}
        status = {0: "passed", 1: "failed"}.get(result.exit_code, "error")
        records: list[RunRecord | FailureRecord] = [RunRecord(
            agent=self.agent, run_id=result.run_id, scenario=name, status=status,
            duration_s=result.duration_s, summary=summary, metadata=tag)]
        for t in result.tests:
            for v in t.failed_validations:
                records.append(FailureRecord(
                    agent=self.agent, run_id=result.run_id, test=t.name,
                    message=f"chaos experiment {name}: {v.expectation}: expected {v.expected}; "
                            f"saw {v.seen}"[:MESSAGE_LIMIT],
                    signature=f"chaos:{v.validator}", metadata=tag))
        self.board.store.put(records)


def experiment_summary(name: str, task: Task, result: RunResult) -> str:
    """The experiment in words: verdict, then the timeline lines of each test."""
    from clnrm.chaos.report import timeline_lines

    status = {0: "passed", 1: "failed"}.get(result.exit_code, "error")
    parts = [f"{name} ({task.source}) {status} as clnrm run {result.run_id}"]
    for t in result.tests:
        if t.message and t.outcome.value != "passed":
            parts.append(f"{t.name} {t.outcome.value}: {t.message[:MESSAGE_LIMIT]}")
        if t.chaos is not None:
            parts.extend(line.strip() for line in timeline_lines(t.chaos))
    return "; ".join(parts)
