"""What a run produced, as plain data.

Reports (human, JSON, JUnit, HTML) render these models; they never compute
verdicts themselves, so every output format agrees by construction.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from clnrm.healing.model import EnvironmentRecord, HealingReport
from clnrm.otel.span import Span
from clnrm.perf.result import PerformanceResult


class Outcome(StrEnum):
    """Verdict of a step or test. ERROR means the test could not be judged
    (bad set-up, missing image, readiness failure), FAILED means it was judged
    and an expectation did not hold."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class ValidationStatus(StrEnum):
    """Verdict of one expectation (OTel ``SpanExportResult`` style, not a bool)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # the expectation could not be evaluated (e.g. bad glob)
    SKIP = "skip"


class ValidationResult(BaseModel):
    """One ``[[expect.*]]`` entry judged against the spans of a test.

    ``expected`` and ``seen`` are short human sentences; ``declared_at`` is
    ``file:line [key]`` of the expectation so a failure can be found in the TOML.
    """

    validator: str  # span, graph, counts, window, order, status, hermeticity
    expectation: str  # e.g. "span 'http.request' kind=server"
    status: ValidationStatus
    message: str = ""
    expected: str = ""
    seen: str = ""
    declared_at: str | None = None


class ExecResult(BaseModel):
    """One command's result, as captured by a backend."""

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    timed_out: bool = False


class StepResult(BaseModel):
    name: str
    service: str | None = None
    command: list[str]
    outcome: Outcome
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    message: str | None = None  # why it failed, in words a user can act on


class ServiceTimeline(BaseModel):
    """When one service was started and became ready, in seconds since its test began.

    ``None`` means the moment never came (the start failed or was skipped);
    temporal constraints (``[[orchestration.temporal]]``) are judged on these.
    """

    service: str
    depends_on: list[str] = Field(default_factory=list)
    readiness: list[str] = Field(default_factory=list)  # the probes, in words
    start_s: float | None = None
    ready_s: float | None = None


class ChaosEvent(BaseModel):
    """One fault occurrence on the chaos timeline (seconds from the experiment's start)."""

    fault: str  # the entry's name, else its type
    type: str
    target: str | None = None
    occurrence: int = 1
    planned_s: float = 0.0
    injected_s: float | None = None
    rolled_back_s: float | None = None
    injected_unix_ns: int | None = None
    rolled_back_unix_ns: int | None = None
    detail: str = ""
    rollback_detail: str = ""
    error: str | None = None  # inject or rollback failed: the run says so loudly
    skipped: str | None = None  # not injected (probability draw, cancelled run)


class ProbeSample(BaseModel):
    """One probe result: when (s from the experiment start), ok or not, how long it took."""

    t: float
    ok: bool
    ms: float
    detail: str = ""


class ProbeSeries(BaseModel):
    name: str
    target: str  # what it checks, in words ("GET http://gateway:8080/items")
    samples: list[ProbeSample] = Field(default_factory=list)


class SteadyStateCheck(BaseModel):
    """The steady-state hypothesis at one moment (before the faults, after the rollback)."""

    phase: str  # "before" | "after"
    ok: bool
    at_s: float = 0.0
    waited_s: float = 0.0  # after: time from the last rollback until it held again
    detail: str = ""


class ChaosReport(BaseModel):
    """What the chaos layer did in one test and what the probes saw."""

    seed: int = 0
    started_unix_ns: int = 0
    duration_s: float = 0.0
    timeline: list[ChaosEvent] = Field(default_factory=list)
    probes: list[ProbeSeries] = Field(default_factory=list)
    steady_state: list[SteadyStateCheck] = Field(default_factory=list)
    aborted: str | None = None  # why the experiment stopped early (steady state not met...)


class TestResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    file: str
    outcome: Outcome
    duration_s: float = 0.0
    steps: list[StepResult] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    message: str | None = None
    warnings: list[str] = Field(default_factory=list)
    validations: list[ValidationResult] = Field(default_factory=list)
    spans: list[Span] = Field(default_factory=list)
    digest: str | None = None  # sha256 over normalised spans, see clnrm.otel.digest
    services_timeline: list[ServiceTimeline] = Field(default_factory=list)
    chaos: ChaosReport | None = None
    performance: PerformanceResult | None = None  # clnrm.perf: measured, judged, explained
    healing: HealingReport | None = None  # clnrm run --heal: class, what was tried, healed
    # the self_healing layer's snapshot of a failed test's services (classifier evidence;
    # not in reports: its figures reach them quoted in healing.evidence)
    environment: EnvironmentRecord | None = Field(default=None, exclude=True)

    @property
    def failed_validations(self) -> list[ValidationResult]:
        """Expectations that failed or could not be evaluated: either one fails the test."""
        return [v for v in self.validations
                if v.status in (ValidationStatus.FAIL, ValidationStatus.ERROR)]


class RunResult(BaseModel):
    run_id: str
    backend: str
    started_at: str
    duration_s: float = 0.0
    seed: int | None = None
    tests: list[TestResult] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for t in self.tests if t.outcome is outcome)

    @property
    def exit_code(self) -> int:
        """0 all passed, 2 any test could not be set up, else 1 if any failed."""
        if any(t.outcome is Outcome.ERROR for t in self.tests):
            return 2
        if any(t.outcome is Outcome.FAILED for t in self.tests):
            return 1
        return 0
