"""The chaos agent: runs a scenario's ``[chaos]`` experiment and remembers what it proved.

It runs the file exactly as ``clnrm chaos run`` would (steady state, faults on their
schedule, rollback, resilience verdicts) and leaves the experiment in memory: the
run, the fault timeline in words, and each resilience expectation that failed, so
``clnrm memory query "did the api survive the db pause"`` finds the answer later.
The plan's conflict rule still holds: the architect orders performance before
chaos on one scenario (measurement before perturbation).

A plain class: no Ray import; ``clnrm.swarm.actors`` wraps it like every agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clnrm.agents.base import (
    MESSAGE_LIMIT,
    Layer,
    Scalar,
    ScenarioRunningAgent,
    Task,
    failure_record,
)
from clnrm.memory import Agent, Record

if TYPE_CHECKING:
    from clnrm.results import RunResult, TestResult
    from clnrm.scenario.model import Scenario


class ChaosAgent(ScenarioRunningAgent):
    """One chaos task = one experiment run; the verdict is the Runner's, unchanged."""

    agent = Agent.chaos
    layer = Layer.chaos
    verb = "chaos ran"

    def declines(self, scenario: Scenario) -> str | None:
        if scenario.chaos is None or not scenario.chaos.faults:
            return "it has no [[chaos.faults]] to inject"
        from clnrm.layers import layer_active

        if not layer_active(scenario, "chaos"):
            return "its chaos layer is switched off ([layers] chaos or [chaos] enabled)"
        return None

    def value(self, task: Task, scenario: Scenario) -> tuple[float, str]:
        """Faults never tried on the scenario's services, or that found weaknesses before;
        a scenario whose verdict run failed is worth less: faults mostly re-find it."""
        from clnrm.agents.evidence import FAILED_VERDICT_FACTOR, chaos_value

        value, why = chaos_value(self.memory, scenario)
        if self.verdict_failed(task) is not None:
            value = round(value * FAILED_VERDICT_FACTOR, 3)
            why += (f"; its verdict run failed, so faults would mostly re-find that failure "
                    f"(value x{FAILED_VERDICT_FACTOR})")
        return value, why

    def run_tags(self, result: RunResult) -> dict[str, Scalar]:
        """The faults injected (``pause:db``), so a later bid knows what was tried."""
        from clnrm.agents.evidence import fault_key

        return {"faults": ",".join(sorted({fault_key(e.type, e.target) for t in result.tests
                                           if t.chaos for e in t.chaos.timeline
                                           if e.injected_s is not None}))}

    def test_lines(self, test: TestResult) -> list[str]:
        """The fault timeline, one line per occurrence."""
        from clnrm.chaos.report import timeline_lines

        return [line.strip() for line in timeline_lines(test.chaos)] if test.chaos else []

    def test_records(self, task: Task, name: str, result: RunResult, test: TestResult,
                     tag: dict[str, Scalar]) -> list[Record]:
        """One failure per resilience expectation that did not hold."""
        return [failure_record(self.agent, result, test,
                               f"chaos experiment {name}: {v.expectation}: expected "
                               f"{v.expected}; saw {v.seen}"[:MESSAGE_LIMIT],
                               f"chaos:{v.validator}", tag)
                for v in test.failed_validations]

    def facts(self, result: RunResult) -> dict[str, Scalar]:
        return {"faults_applied": sum(1 for t in result.tests if t.chaos
                                      for e in t.chaos.timeline if e.injected_s is not None)}
