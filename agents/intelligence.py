"""The intelligence agent: learns what the system always does from the orchestration run's
spans, stores it as patterns, and writes the test that asserts it (issue 15).

It runs nothing itself.  It is planned last (after every layer of the scenario), reads
the ``clnrm run`` id from the orchestration task's outcome and the spans that run
kept (``<artifacts_dir>/<run id>/*.spans.jsonl``), mines them with
:mod:`clnrm.intelligence`, and stores one :class:`~clnrm.memory.PatternRecord` per
asserted pattern in its own memory (``swarm/intelligence``), each with support and
confidence, so a later run or another swarm can ask "which calls does the api always
make".  The generated test (the scenario's services and steps plus the mined
expectations) is stored as one more pattern record, ``<scenario>: generated test``.

It declines, on the record, when the file switches the layer off or the orchestration
run kept no spans (the swarm ran without an artifacts folder).

A plain class: no Ray import; ``clnrm.swarm.actors`` wraps it like every agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clnrm.agents.base import (
    Bid,
    Layer,
    RunSettings,
    Scalar,
    SwarmAgent,
    Task,
    TaskOutcome,
    TaskStatus,
    scenario_name,
)
from clnrm.memory import Agent, PatternRecord

if TYPE_CHECKING:
    from clnrm.agents.blackboard import Blackboard

    from clnrm.intelligence.generate import Generation
    from clnrm.otel.span import Span

ONE_RUN_CONFIDENCE = 0.75
"""One orchestration run is one sample: patterns seen in it reach 0.75 at most."""


class IntelligenceAgent(SwarmAgent):
    """One intelligence task = the orchestration run's spans mined into patterns and a test."""

    agent = Agent.intelligence
    layer = Layer.intelligence

    def __init__(self, board: Blackboard | None = None, *, name: str | None = None,
                 settings: RunSettings | None = None) -> None:
        super().__init__(board, name=name)
        self.settings = settings or RunSettings()

    def propose(self, task: Task) -> Bid | None:
        """My own tasks: worth more when the memory has request types of the scenario
        without a generated test (its PatternRecords), at my past runs' cost."""
        from clnrm.agents.evidence import intelligence_value

        if task.layer is not self.layer:
            return None
        name = scenario_name(task)
        value, why = intelligence_value(self.memory, name)
        cost, cost_why = self.cost(name)
        return Bid(task_id=task.id, agent=self.agent, value=value, cost_s=cost,
                   evidence=f"{why}; {cost_why}", reason=f"{self.name}: {why}; {cost_why}")

    def act(self, task: Task) -> TaskOutcome:
        from clnrm.errors import ClnrmError
        from clnrm.intelligence.generate import generate_tests, scenario_body
        from clnrm.intelligence.patterns import MiningOptions
        from clnrm.scenario import loads_scenario

        try:
            scenario = loads_scenario(task.text, source=task.source)
            off = scenario.intelligence is not None and not scenario.intelligence.enabled
            spans, why_not = (None, "its [intelligence] table is switched off") if off else \
                self.spans_of(task)
            if spans is None:
                return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.declined,
                                   reason=f"{self.name} did not act on {task.scenario}: {why_not}")
            settings = {"confidence_threshold": ONE_RUN_CONFIDENCE}
            if scenario.intelligence is not None:  # [intelligence.generation] over defaults
                settings |= scenario.intelligence.mining_settings()
            generation = generate_tests(spans, MiningOptions(**settings),
                                        steps_toml=scenario_body(task.text))
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, reason=f"intelligence could not mine "
                                                   f"{task.scenario} ({task.source}): {exc}")
        records = pattern_records(task, scenario.name, generation)
        self.board.store.put(records)
        assertions = sum(t.assertions for t in generation.tests)
        facts: dict[str, Scalar] = {"patterns": len(records) - len(generation.tests),
                                    "request_types": len(generation.mined.request_types),
                                    "assertions": assertions, "spans": generation.mined.spans}
        return TaskOutcome(
            task_id=task.id, agent=self.agent, status=TaskStatus.done, exit_code=0, facts=facts,
            reason=(f"intelligence learned {facts['patterns']} patterns from "
                    f"{generation.mined.spans} spans of {task.scenario} and wrote a test with "
                    f"{assertions} assertions (memory: pattern '{scenario.name}: "
                    "generated test')"))

    def spans_of(self, task: Task) -> tuple[list[Span] | None, str]:
        """The orchestration run's spans, or None and why there are none."""
        from clnrm.otel.tracefile import load_trace_file

        orchestration = task.id.rsplit("/", 1)[0] + f"/{Layer.orchestration.value}"
        outcome = self.board.outcome(orchestration)
        run = outcome.facts.get("clnrm_run") if outcome is not None else None
        if not isinstance(run, str) or not run:
            return None, "the orchestration run left no clnrm run id to read spans from"
        if not self.settings.artifacts_dir:
            return None, ("the orchestration run kept no spans (run the swarm with an "
                          "artifacts folder)")
        files = sorted((Path(self.settings.artifacts_dir) / run).glob("*.spans.jsonl"))
        spans = [span for f in files for span in load_trace_file(f)]
        if not spans:
            return None, f"clnrm run {run} exported no spans"
        return spans, ""


def pattern_records(task: Task, scenario: str, generation: Generation) -> list[PatternRecord]:
    """One record per asserted pattern, then one per generated test.

    Names are the record identity, so the same pattern mined again (a later run) updates
    its record instead of piling up copies; the description is what a query matches.
    """
    keep = generation.mined.options.confidence_threshold
    tag: dict[str, Scalar] = {"swarm_run": task.run_id, "task": task.id, "scenario": scenario}
    out: list[PatternRecord] = []

    def add(name: str, description: str, confidence: float, support: int,
            **extra: Scalar) -> None:
        out.append(PatternRecord(agent=Agent.intelligence, name=f"{scenario}: {name}",
                                 description=description, confidence=confidence,
                                 support=support, metadata={**tag, **extra}))

    for rt in generation.mined.request_types:
        for s in rt.spans:
            if s.evidence.confidence < keep or s.parent is None:
                continue
            who = f"{s.parent!r}" + (f" ({s.service})" if s.service else "")
            add(f"{rt.key}: {s.parent} calls {s.name}",
                f"in {rt.key}, {who} always calls {s.name!r} ({s.kind}); "
                f"{s.evidence.comment()}", s.evidence.confidence, s.evidence.support,
                pattern="call", request_type=rt.key)
        for o in rt.order:
            if o.evidence.confidence >= keep:
                add(f"{rt.key}: {o.first} before {o.then}",
                    f"in {rt.key}, {o.first!r} ends before {o.then!r} starts (under "
                    f"{o.parent!r}); {o.evidence.comment()}", o.evidence.confidence,
                    o.evidence.support, pattern="order", request_type=rt.key)
        for st in rt.status:
            if st.evidence.confidence >= keep:
                add(f"status of {st.name}", f"every {st.name!r} span has status {st.status}; "
                    f"{st.evidence.comment()}", st.evidence.confidence, st.evidence.support,
                    pattern="status")
        for lat in rt.latency:
            add(f"latency of {lat.name}", f"{lat.name!r} takes p50 {lat.p50_ms} ms, p95 "
                f"{lat.p95_ms} ms over {lat.spans} spans; envelope {lat.max_ms} ms",
                lat.evidence.confidence, lat.spans, pattern="latency")
    for test in generation.tests:
        add("generated test" if len(generation.tests) == 1 else
            f"generated test {test.request_type}", test.text, 1.0, test.assertions,
            pattern="generated_test", filename=test.filename)
    unique: dict[str, PatternRecord] = {}
    for record in out:  # a status shared by request types is one pattern
        unique.setdefault(record.name, record)
    return list(unique.values())
