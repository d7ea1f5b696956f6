"""The performance agent: measures a scenario and judges it against its baseline.

It runs the file as ``clnrm run`` would, with the performance layer on and the chaos
layer off (a baseline measured under injected faults would hide the very regressions
it is for; the conflict rule in :mod:`clnrm.agents.base` already orders performance before
chaos on one scenario).  The layer itself keeps the measurements in the agent's own
memory (``swarm/performance``: the baseline and history records); the agent adds the
run in words and one failure record per regression, so ``clnrm memory query "why is
the demo slower"`` finds the verdict with its effect size and confidence.

Its outcome is about performance, not the rest of the file: ``done`` when the run was
measured and nothing regressed (beyond what the file allows), ``failed`` when a
regression fails, the steps failed (nothing worth measuring) or the run could not be
set up.  Facts: regressions, the worst effect, baseline runs, the clnrm run id.

A plain class: no Ray import; ``clnrm.swarm.actors`` wraps it like every agent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from clnrm.agents.base import (
    MESSAGE_LIMIT,
    Layer,
    Scalar,
    ScenarioRunningAgent,
    Task,
    failure_record,
    run_options,
)
from clnrm.agents.evidence import utc_now
from clnrm.memory import Agent, Record

if TYPE_CHECKING:
    from clnrm.perf.verdict import Verdict
    from clnrm.results import RunResult, TestResult, ValidationResult
    from clnrm.runner import RunOptions
    from clnrm.scenario.model import Scenario


class PerformanceAgent(ScenarioRunningAgent):
    """One performance task = one measured run of the scenario, judged by the layer."""

    agent = Agent.performance
    layer = Layer.performance
    verb = "performance measured"
    clock: Callable[[], datetime] = staticmethod(utc_now)
    """When "now" is for a stale baseline; tests freeze it."""

    def declines(self, scenario: Scenario) -> str | None:
        from clnrm.layers import layer_active

        if not layer_active(scenario, "performance"):
            return "its [performance] table is absent or switched off"
        return None

    def prepare(self, scenario: Scenario) -> Scenario:
        return scenario.model_copy(update={"chaos": None})  # measure, never perturb

    def value(self, task: Task, scenario: Scenario) -> tuple[float, str]:
        """A missing, thin or stale baseline or a recent change point makes a measurement
        worth more; a failed verdict run is not worth measuring (its run is not kept)."""
        from clnrm.agents.evidence import FAILED_VERDICT_FACTOR, perf_value

        value, why = perf_value(self.memory, scenario, clock=self.clock)
        if self.verdict_failed(task) is not None:
            value = round(value * FAILED_VERDICT_FACTOR, 3)
            why += (f"; its verdict run failed, and a run whose steps fail is not kept as a "
                    f"measurement (value x{FAILED_VERDICT_FACTOR})")
        return value, why

    def options(self) -> RunOptions:
        from clnrm.perf.options import PerfOptions

        return run_options(self.settings, perf=PerfOptions(memory=self.board.store))

    def test_lines(self, test: TestResult) -> list[str]:
        """The baseline note, each regression and the critical path (no ticks or advice)."""
        from clnrm.perf.text import summary_lines

        return [line for line in summary_lines(test)
                if not line.startswith(("✓", "-", "advice:"))]

    def test_records(self, task: Task, name: str, result: RunResult, test: TestResult,
                     tag: dict[str, Scalar]) -> list[Record]:
        """One failure per regression that fails the test."""
        return [failure_record(self.agent, result, test,
                               f"performance of {name}: {v.expectation}: "
                               f"{v.seen or v.message}"[:MESSAGE_LIMIT],
                               f"performance:{v.expectation.split(' vs ')[0]}", tag)
                for v in _failing(test)]

    def facts(self, result: RunResult) -> dict[str, Scalar]:
        verdicts = _verdicts(result)
        regressed = [v for v in verdicts if v.regressed]
        worst = max((v.effect_pct for v in regressed or verdicts),
                    default=0.0)
        return {"regressions": len(regressed),
                "failing_regressions": sum(len(_failing(t)) for t in result.tests),
                "verdicts": len(verdicts), "worst_effect_pct": round(worst, 1)}

    def exit_code(self, result: RunResult) -> int:
        """0 measured and nothing fails; else 1, or 2 when the run could not be judged.

        About performance, not the rest of the file: a failed step fails it too,
        because then there was nothing worth measuring.
        """
        broken = any(t.outcome.value == "error"
                     or any(s.outcome.value == "failed" for s in t.steps)
                     for t in result.tests)
        if not broken and not any(_failing(t) for t in result.tests):
            return 0
        return 2 if result.exit_code == 2 else 1


def _verdicts(result: RunResult) -> list[Verdict]:
    return [v for t in result.tests if t.performance for v in t.performance.verdicts]


def _failing(test: TestResult) -> list[ValidationResult]:
    return [v for v in test.failed_validations if v.validator == "performance"]
