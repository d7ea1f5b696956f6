"""The chaos layer as a :class:`~clnrm.layers.TestLayer`: the hooks of one test mapped
onto :class:`clnrm.chaos.engine.ChaosSession`, and ``[[expect.resilience]]`` judged by
:func:`clnrm.chaos.resilience.judge_chaos`.

This module is what the ``clnrm`` entry point loads for every run, so it imports the
engine only inside :meth:`ChaosLayer.session`: a test without ``[chaos]`` never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clnrm.hookspecs import hookimpl
from clnrm.layers.base import LayerContext, LiveSystem, Session, StepsRun, switched_on

if TYPE_CHECKING:
    from clnrm.chaos.engine import ChaosSession
    from clnrm.layers.base import TestLayer
    from clnrm.results import StepResult, TestResult, ValidationResult
    from clnrm.scenario.model import Scenario


class ChaosLayer:
    """On when ``[chaos]`` is present and switched on: without faults or probes there is
    no experiment to run, so ``[layers] chaos = true`` alone does not turn it on."""

    name = "chaos"
    order = 200

    def active(self, scenario: Scenario) -> bool:
        return scenario.chaos is not None and switched_on(scenario, self.name)

    def session(self, ctx: LayerContext) -> ChaosLayerSession:
        from clnrm.chaos.engine import ChaosSession

        return ChaosLayerSession(ctx, ChaosSession(
            ctx.scenario, ctx.box, specs=ctx.specs, run_id=ctx.run_id, seed=ctx.seed,
            traceparent=ctx.traceparent, proxied=ctx.proxied, cancelled=ctx.cancelled,
            on_event=ctx.on_event))


class ChaosLayerSession(Session):
    """Proxies installed at launch, the experiment started once services are ready (the
    steady-state hypothesis first: if it fails, no fault and no step runs), faults
    anchored to steps planned as they start, the schedule finished and every fault
    rolled back at the end (and again, structurally, on exit)."""

    def __init__(self, ctx: LayerContext, engine: ChaosSession) -> None:
        self.ctx = ctx
        self.engine = engine

    def close(self) -> None:
        self.engine.close()

    def on_launch(self, service: str) -> None:
        self.engine.on_launch(service)

    def on_ready(self, live: LiveSystem) -> None:
        live.test.chaos = self.engine.report  # filled in as the experiment goes
        self.engine.begin(live.telemetry.receiver if live.telemetry else None)

    def run_steps(self, run: StepsRun) -> list[StepResult]:
        if self.engine.report.aborted:
            return []  # the hypothesis failed first: no fault, no steps
        return run()

    def on_step(self, name: str) -> None:
        self.engine.on_step(name)

    def on_end(self) -> None:
        self.engine.end()

    def judge(self, test: TestResult) -> list[ValidationResult]:
        if test.chaos is None:
            return []
        from clnrm.chaos.resilience import judge_chaos

        return judge_chaos(self.ctx.scenario, test.chaos, test.spans)


@hookimpl
def clnrm_test_layers() -> list[TestLayer]:
    return [ChaosLayer()]
