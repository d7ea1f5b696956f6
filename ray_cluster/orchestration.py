"""The orchestration agent the swarm uses: "run the scenario" through clnrm's Runner.

``agents/orchestrator.py`` belongs to the orchestration layer; until it offers
an agent with this interface, this small adapter does the one job the swarm
needs from it today: run a scenario exactly as ``clnrm run`` would, and leave
the run, every test result and every failure in memory so they can be found
again by similarity ("why did the demo run fail").  It is a plain agent, not a
Ray class: ``ray_cluster.actors`` wraps it like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from agents.base import Layer, SwarmAgent, Task, TaskOutcome, TaskStatus, run_options
from memory import Agent, FailureRecord, RunRecord, TestResultRecord

if TYPE_CHECKING:
    from agents.blackboard import Blackboard
    from clnrm.results import RunResult

MESSAGE_LIMIT = 600


class RunSettings(BaseModel):
    """What ``clnrm swarm run`` passes through to every scenario run (as ``clnrm run`` options)."""

    backend: str = "docker"
    seed: int | None = None
    default_image: str = "clnrm/busybox:latest"
    image_map: dict[str, str] = Field(default_factory=dict)
    artifacts_dir: str | None = None


class RunnerOrchestrator(SwarmAgent):
    """Runs one scenario per orchestration task; the verdict is the Runner's, unchanged."""

    agent = Agent.orchestration
    layer = Layer.orchestration

    def __init__(self, board: Blackboard, *, name: str | None = None,
                 settings: RunSettings | None = None) -> None:
        super().__init__(board, name=name)
        self.settings = settings or RunSettings()

    def act(self, task: Task) -> TaskOutcome:
        from clnrm.errors import ClnrmError
        from clnrm.runner import Runner, make_backend, new_run_id
        from clnrm.scenario import loads_scenario

        options = run_options(self.settings)
        clnrm_run = new_run_id()
        try:
            scenario = loads_scenario(task.text, source=task.source)
            if scenario.chaos is not None:  # the chaos agent runs the experiment, once
                scenario = scenario.model_copy(update={"chaos": None})
            runner = Runner(options, backend=make_backend(options.backend, clnrm_run))
            result = runner.run([scenario])
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, facts={"clnrm_run": clnrm_run},
                               reason=f"orchestration could not run {task.scenario} "
                                      f"({task.source}): {exc}")
        self._remember(task, scenario.name, result)
        return _outcome(scenario.name, task, self.agent, result)

    def _remember(self, task: Task, name: str, result: RunResult) -> None:
        """The run in the shape the rest of memory uses, tagged with the swarm run."""
        tag = {"swarm_run": task.run_id, "task": task.id}
        records: list[RunRecord | TestResultRecord | FailureRecord] = [RunRecord(
            agent=self.agent, run_id=result.run_id, scenario=name,
            status=_status(result), duration_s=result.duration_s,
            summary=_summary(name, task, result), metadata=tag)]
        for t in result.tests:
            message = (t.message or "")[:MESSAGE_LIMIT]
            records.append(TestResultRecord(agent=self.agent, run_id=result.run_id, test=t.name,
                                            status=t.outcome.value, duration_s=t.duration_s,
                                            message=message, metadata=tag))
            if t.outcome.value in ("failed", "error"):
                failed = [s.name for s in t.steps if s.outcome.value in ("failed", "error")]
                records.append(FailureRecord(
                    agent=self.agent, run_id=result.run_id, test=t.name,
                    message=f"{task.scenario} run {t.outcome.value}: "
                            f"{message or 'no message'}",
                    signature=",".join(failed), metadata=tag))
        self.board.store.put(records)


def _status(result: RunResult) -> str:
    return {0: "passed", 1: "failed"}.get(result.exit_code, "error")


def _summary(name: str, task: Task, result: RunResult) -> str:
    counts = ", ".join(f"{n} {o}" for o, n in _counts(result).items() if n)
    lines = [f"{name} ({task.source}) {_status(result)} as clnrm run {result.run_id}: "
             f"{counts or 'no tests'} in {result.duration_s:.1f} s"]
    for t in result.tests:
        if t.outcome.value != "passed" and t.message:
            lines.append(f"{t.name} {t.outcome.value}: {t.message[:MESSAGE_LIMIT]}")
    return "; ".join(lines)


def _counts(result: RunResult) -> dict[str, int]:
    from clnrm.results import Outcome

    return {o.value: result.count(o) for o in Outcome}


def _outcome(name: str, task: Task, agent: Agent, result: RunResult) -> TaskOutcome:
    counts = _counts(result)
    passed = result.exit_code == 0
    return TaskOutcome(task_id=task.id, agent=agent,
                       status=TaskStatus.done if passed else TaskStatus.failed,
                       exit_code=result.exit_code,
                       reason=f"orchestration ran {_summary(name, task, result)}",
                       facts={"clnrm_run": result.run_id, **counts,
                              "duration_s": round(result.duration_s, 3)})
