"""The orchestrator agent: the orchestration layer as the swarm and other agents see it.

In the swarm it takes the orchestration task of every plan: it runs the scenario
exactly as ``clnrm run`` would (with the chaos layer off: the chaos agent runs the
experiment, once) and leaves the run, every test result and every failure in
memory, so "why did the demo run fail" finds them later by similarity.

Outside a swarm (no board needed) it answers two questions about one scenario:
*how* would its services be brought up (``plan``: dependency graph and levels,
readiness probes, temporal constraints, topology and the networks enforcing it;
nothing is started), and *did* a run keep to that (``check``: temporal
constraints against the recorded timeline, the declared topology against the
service graph in the spans).  ``run`` does both around a real run.

A plain class over :mod:`clnrm.orchestration` and the Runner: no Ray, no store;
``clnrm.swarm.actors`` wraps it like every agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clnrm.agents.base import (
    MESSAGE_LIMIT,
    Layer,
    RunSettings,
    Scalar,
    ScenarioRunningAgent,
    Task,
    failure_record,
    run_options,
)
from clnrm.memory import Agent, Record, TestResultRecord

from clnrm.errors import ClnrmError
from clnrm.orchestration import OrchestrationPlan, judge_orchestration
from clnrm.plugins.base import SpecContext
from clnrm.results import Outcome, RunResult, TestResult, ValidationResult

if TYPE_CHECKING:
    from clnrm.agents.blackboard import Blackboard

    from clnrm.runner import RunOptions
    from clnrm.scenario.model import Scenario


class OrchestratorAgent(ScenarioRunningAgent):
    """Runs one scenario per orchestration task; plans and checks orchestration on request.

    The verdict is the Runner's, unchanged.  ``settings`` resolve images exactly
    as ``clnrm run`` does, so a plan names the images a run would start; plans
    are remembered by test name for :meth:`check`.
    """

    agent = Agent.orchestration
    layer = Layer.orchestration
    verb = "orchestration ran"

    def __init__(self, board: Blackboard | None = None, *, name: str | None = None,
                 settings: RunSettings | None = None) -> None:
        super().__init__(board, name=name, settings=settings)
        self._ctx = SpecContext(default_image=self.settings.default_image,
                                image_map=dict(self.settings.image_map))
        self._plans: dict[str, OrchestrationPlan] = {}

    # -- the swarm's orchestration task -----------------------------------------
    def prepare(self, scenario: Scenario) -> Scenario:
        if scenario.chaos is not None:  # the chaos agent runs the experiment, once
            return scenario.model_copy(update={"chaos": None})
        return scenario

    def headline(self, result: RunResult) -> str:
        counts = ", ".join(f"{n} {o}" for o, n in _counts(result).items() if n)
        return f": {counts or 'no tests'} in {result.duration_s:.1f} s"

    def test_records(self, task: Task, name: str, result: RunResult, test: TestResult,
                     tag: dict[str, Scalar]) -> list[Record]:
        """Every test's result, and a failure for each test that failed or erred."""
        message = (test.message or "")[:MESSAGE_LIMIT]
        records: list[Record] = [TestResultRecord(
            agent=self.agent, run_id=result.run_id, test=test.name, status=test.outcome.value,
            duration_s=test.duration_s, message=message, metadata=tag)]
        if test.outcome in (Outcome.FAILED, Outcome.ERROR):
            failed = [s.name for s in test.steps if s.outcome in (Outcome.FAILED, Outcome.ERROR)]
            records.append(failure_record(
                self.agent, result, test,
                f"{task.scenario} run {test.outcome.value}: {message or 'no message'}",
                ",".join(failed), tag))
        return records

    def facts(self, result: RunResult) -> dict[str, Scalar]:
        return dict(_counts(result))

    # -- plan / check / run, for callers outside the swarm ----------------------
    def plan(self, scenario: Scenario) -> OrchestrationPlan:
        """The scenario's orchestration, checked; raises ScenarioError (a cycle, an unknown
        service in a constraint) exactly as ``clnrm run`` would, before anything starts."""
        from clnrm.runner import plan as plan_test

        planned = plan_test(scenario, self._ctx).orchestration
        assert planned is not None  # plan() always plans the orchestration
        self._plans[scenario.name] = planned
        return planned

    def check(self, result: TestResult,
              plan: OrchestrationPlan | None = None) -> list[ValidationResult]:
        """Temporal and topology verdicts for one test result (PASS/FAIL results, never raises
        for a violation).  Without ``plan``, the plan made earlier for ``result.name``."""
        chosen = plan or self._plans.get(result.name)
        if chosen is None:
            raise ClnrmError(f"no orchestration plan for test {result.name!r}",
                             hint="call plan(scenario) first, or pass plan=")
        return judge_orchestration(chosen, result.spans, result.services_timeline)

    def run(self, scenario: Scenario, options: RunOptions | None = None) -> TestResult:
        """Plan, run on the engine (the Runner judges steps, spans and orchestration), return
        the test's result; planning errors raise before any container starts."""
        from clnrm.runner import Runner

        self.plan(scenario)
        [test] = Runner(options or run_options(self.settings)).run([scenario]).tests
        return test


def _counts(result: RunResult) -> dict[str, int]:
    return {o.value: result.count(o) for o in Outcome}
