"""The orchestrator agent: the orchestration layer behind a small typed interface.

Other agents ask it two things: *how* would this scenario's services be
brought up (``plan``: dependency graph and levels, readiness probes, temporal
constraints, topology and the networks enforcing it; nothing is started), and
*did* a run keep to that (``check``: temporal constraints against the
recorded timeline, the declared topology against the service graph in the
spans).  ``run`` does both around a real run, as ``clnrm run`` does.

It is a plain class over :mod:`clnrm.orchestration`; it knows neither Ray nor
the memory store (``ray_cluster/`` wraps agents, the swarm's adapter can
delegate here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clnrm.errors import ClnrmError
from clnrm.orchestration import OrchestrationPlan, judge_orchestration
from clnrm.plugins.base import SpecContext
from clnrm.results import TestResult, ValidationResult

if TYPE_CHECKING:
    from clnrm.runner import RunOptions
    from clnrm.scenario.model import Scenario


class OrchestratorAgent:
    """Plans and checks the orchestration of scenarios; remembers the plans it made by test name.

    ``default_image`` and ``image_map`` resolve images exactly as ``clnrm run``
    does, so a plan names the images a run would start.
    """

    name = "orchestrator"

    def __init__(self, *, default_image: str = "clnrm/busybox:latest",
                 image_map: dict[str, str] | None = None) -> None:
        self._ctx = SpecContext(default_image=default_image, image_map=dict(image_map or {}))
        self._plans: dict[str, OrchestrationPlan] = {}

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
        from clnrm.runner import Runner, RunOptions

        self.plan(scenario)
        opts = options or RunOptions(default_image=self._ctx.default_image,
                                     image_map=dict(self._ctx.image_map))
        [test] = Runner(opts).run([scenario]).tests
        return test
