"""What a run produced, as plain data.

Reports (human, JSON, JUnit, HTML) render these models; they never compute
verdicts themselves, so every output format agrees by construction.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field


class Outcome(str, Enum):
    """Verdict of a step or test. ERROR means the test could not be judged
    (bad set-up, missing image, readiness failure), FAILED means it was judged
    and an expectation did not hold."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


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


class TestResult(BaseModel):
    name: str
    file: str
    outcome: Outcome
    duration_s: float = 0.0
    steps: list[StepResult] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    message: str | None = None
    warnings: list[str] = Field(default_factory=list)


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
