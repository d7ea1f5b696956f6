"""The orchestration layer as a :class:`~clnrm.layers.TestLayer`.

Starting services in dependency order and waiting for readiness is the core's job and
happens for every test (:mod:`clnrm.execution`); what this layer adds, when
``[orchestration]`` is on, is judging: temporal constraints against the recorded
service timeline and the topology against the span graph
(:func:`clnrm.orchestration.judge_orchestration`).  Its table's ``timeout`` also bounds
the test (:func:`clnrm.execution.time_limit`) and its topology shapes the networks
(:func:`clnrm.orchestration.plan_orchestration`), both asking :meth:`active` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clnrm.hookspecs import hookimpl
from clnrm.layers.base import LayerContext, Session, switched_on

if TYPE_CHECKING:
    from clnrm.layers.base import TestLayer
    from clnrm.orchestration import OrchestrationPlan
    from clnrm.results import TestResult, ValidationResult
    from clnrm.scenario.model import Scenario


class OrchestrationLayer:
    """On when ``[orchestration]`` is (see :func:`clnrm.layers.switched_on`)."""

    name = "orchestration"
    order = 100

    def active(self, scenario: Scenario) -> bool:
        return switched_on(scenario, self.name)

    def session(self, ctx: LayerContext) -> OrchestrationSession:
        return OrchestrationSession(ctx.plan)


class OrchestrationSession(Session):
    """Nothing to do while the test runs; judges the plan's constraints afterwards."""

    def __init__(self, plan: OrchestrationPlan) -> None:
        self.plan = plan
        self.needs_spans = plan.needs_spans

    def judge(self, test: TestResult) -> list[ValidationResult]:
        from clnrm.orchestration import judge_orchestration

        return judge_orchestration(self.plan, test.spans, test.services_timeline)


@hookimpl
def clnrm_test_layers() -> list[TestLayer]:
    return [OrchestrationLayer()]
