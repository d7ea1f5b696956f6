"""The performance layer as a :class:`~clnrm.layers.TestLayer`: the hooks of one test
mapped onto :class:`clnrm.perf.session.PerfSession` (sample once ready, measure the
steps, judge against the baseline once the sandbox is gone).

This module is what the ``clnrm`` entry point loads for every run, so it imports the
session (and through it the load driver, sampler, numpy and scipy) only inside
:meth:`PerformanceLayer.session`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clnrm.hookspecs import hookimpl
from clnrm.layers.base import LayerContext, LiveSystem, Session, StepsRun, switched_on

if TYPE_CHECKING:
    from clnrm.layers.base import TestLayer
    from clnrm.perf.session import PerfSession
    from clnrm.results import StepResult, TestResult, ValidationResult
    from clnrm.scenario.model import Scenario


class PerformanceLayer:
    """On when ``[performance]`` is, or when ``[[expect.performance]]`` is written without
    the table (the expectations need a measured run)."""

    name = "performance"
    order = 300

    def active(self, scenario: Scenario) -> bool:
        return switched_on(scenario, self.name, implied=bool(scenario.expect.performance))

    def session(self, ctx: LayerContext) -> PerformanceLayerSession:
        from clnrm.perf.session import PerfSession

        return PerformanceLayerSession(PerfSession(
            ctx.scenario, ctx.box, run_id=ctx.run_id, seed=ctx.seed,
            traceparent=ctx.traceparent, options=ctx.options.get(self.name),
            cancelled=ctx.cancelled, on_event=ctx.on_event))


class PerformanceLayerSession(Session):
    """The window's spans are what it judges, so the executor settles them first."""

    needs_spans = True

    def __init__(self, engine: PerfSession) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.end()

    def on_ready(self, live: LiveSystem) -> None:
        self.engine.begin()

    def run_steps(self, run: StepsRun) -> list[StepResult]:
        return self.engine.measure(run)

    def on_end(self) -> None:
        self.engine.end()

    def judge(self, test: TestResult) -> list[ValidationResult]:
        return self.engine.judge(test)


@hookimpl
def clnrm_test_layers() -> list[TestLayer]:
    return [PerformanceLayer()]
