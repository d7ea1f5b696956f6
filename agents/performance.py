"""The performance agent: measures a scenario and judges it against its baseline.

It runs the file as ``clnrm run`` would, with the performance layer on and the chaos
layer off (a baseline measured under injected faults would hide the very regressions
it is for; the conflict rule in :mod:`agents.base` already orders performance before
chaos on one scenario).  The layer itself keeps the measurements in the agent's own
memory (``swarm/performance``: the baseline and history records); the agent adds the
run in words and one failure record per regression, so ``clnrm memory query "why is
the demo slower"`` finds the verdict with its effect size and confidence.

Its outcome is about performance, not the rest of the file: ``done`` when the run was
measured and nothing regressed (beyond what the file allows), ``failed`` when a
regression fails, the steps failed (nothing worth measuring) or the run could not be
set up.  Facts: regressions, the worst effect, baseline runs, the clnrm run id.

A plain class: no Ray import; ``ray_cluster.actors`` wraps it like every agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.base import Layer, SwarmAgent, Task, TaskOutcome, TaskStatus, run_options
from memory import Agent, FailureRecord, RunRecord

if TYPE_CHECKING:
    from agents.blackboard import Blackboard
    from clnrm.results import RunResult
    from clnrm.scenario.model import Scenario

MESSAGE_LIMIT = 600


class PerformanceAgent(SwarmAgent):
    """One performance task = one measured run of the scenario, judged by the layer."""

    agent = Agent.performance
    layer = Layer.performance

    def __init__(self, board: Blackboard, *, name: str | None = None,
                 settings: Any = None) -> None:
        super().__init__(board, name=name)
        self.settings = settings  # ray_cluster.orchestration.RunSettings, or None

    def act(self, task: Task) -> TaskOutcome:
        from clnrm.errors import ClnrmError
        from clnrm.perf.options import PerfOptions
        from clnrm.perf.session import performance_on
        from clnrm.runner import Runner, make_backend, new_run_id
        from clnrm.scenario import loads_scenario

        clnrm_run = new_run_id()
        try:
            scenario = loads_scenario(task.text, source=task.source)
            if not performance_on(scenario):
                return TaskOutcome(task_id=task.id, agent=self.agent,
                                   status=TaskStatus.declined,
                                   reason=f"{self.name} did not act on {task.scenario}: its "
                                          "[performance] table is absent or switched off")
            scenario = scenario.model_copy(update={"chaos": None})  # measure, never perturb
            options = run_options(self.settings, perf=PerfOptions(memory=self.board.store))
            runner = Runner(options, backend=make_backend(options.backend, clnrm_run))
            result = runner.run([scenario])
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, facts={"clnrm_run": clnrm_run},
                               reason=f"performance could not run {task.scenario} "
                                      f"({task.source}): {exc}")
        return self._judged(task, scenario, result)

    def _judged(self, task: Task, scenario: Scenario, result: RunResult) -> TaskOutcome:
        verdicts = [v for t in result.tests if t.performance for v in t.performance.verdicts]
        regressed = [v for v in verdicts if v.get("regressed")]
        failing = [v for t in result.tests for v in t.failed_validations
                   if v.validator == "performance"]
        broken = [t for t in result.tests
                  if t.outcome.value == "error"
                  or any(s.outcome.value == "failed" for s in t.steps)]
        summary = measurement_summary(scenario.name, task, result)
        self._remember(task, scenario.name, result, summary)
        worst = max((float(v.get("effect_pct", 0.0)) for v in regressed or verdicts),
                    default=0.0)
        facts: dict[str, str | int | float | bool] = {
            "clnrm_run": result.run_id, "regressions": len(regressed),
            "failing_regressions": len(failing), "verdicts": len(verdicts),
            "worst_effect_pct": round(worst, 1), "duration_s": round(result.duration_s, 3)}
        ok = not failing and not broken
        return TaskOutcome(task_id=task.id, agent=self.agent,
                           status=TaskStatus.done if ok else TaskStatus.failed,
                           exit_code=0 if ok else (2 if result.exit_code == 2 else 1),
                           reason=f"performance measured {summary}"[:2000], facts=facts)

    def _remember(self, task: Task, name: str, result: RunResult, summary: str) -> None:
        tag: dict[str, str | int | float | bool] = {"swarm_run": task.run_id, "task": task.id}
        status = {0: "passed", 1: "failed"}.get(result.exit_code, "error")
        records: list[RunRecord | FailureRecord] = [RunRecord(
            agent=self.agent, run_id=result.run_id, scenario=name, status=status,
            duration_s=result.duration_s, summary=summary, metadata=tag)]
        for t in result.tests:
            for v in t.failed_validations:
                if v.validator != "performance":
                    continue
                records.append(FailureRecord(
                    agent=self.agent, run_id=result.run_id, test=t.name,
                    message=f"performance of {name}: {v.expectation}: "
                            f"{v.seen or v.message}"[:MESSAGE_LIMIT],
                    signature=f"performance:{v.expectation.split(' vs ')[0]}", metadata=tag))
        self.board.store.put(records)


def measurement_summary(name: str, task: Task, result: RunResult) -> str:
    """The run in words: verdict, the baseline note, each regression, the critical path."""
    from clnrm.perf.text import summary_lines

    status = {0: "passed", 1: "failed"}.get(result.exit_code, "error")
    parts = [f"{name} ({task.source}) {status} as clnrm run {result.run_id}"]
    for t in result.tests:
        if t.message and t.outcome.value != "passed":
            parts.append(f"{t.name} {t.outcome.value}: {t.message[:MESSAGE_LIMIT]}")
        lines = summary_lines(t)
        parts.extend(line for line in lines if not line.startswith(("✓", "-", "advice:")))
    return "; ".join(parts)
