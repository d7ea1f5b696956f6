"""``clnrm self-test``: clnrm checks that its own span validation works.

The Rosetta Stone suite in ``clnrm/selftest_suite`` (``scenarios/self-test`` in the
checkout) has a ``positive`` folder (every validator must hold) and a ``negative``
folder (each file breaks one expectation and must fail *on that expectation*, not on a
step). A validator that passes everything, or fails everything, is caught either way.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from clnrm.errors import ClnrmError
from clnrm.results import Outcome, RunResult, TestResult, ValidationStatus

SUITE_ENV = "CLNRM_SELF_TEST_DIR"


class SelfTestCheck(BaseModel):
    """Whether one suite file behaved as its folder says it must."""

    file: str
    expected: str  # "pass" or "fail on a span expectation"
    ok: bool
    detail: str = ""


def find_suite(explicit: Path | None = None) -> Path:
    """The suite: ``--suite``, then ``./scenarios/self-test``, then the one shipped with clnrm.

    The suite is package data (``clnrm/selftest_suite``; the checkout's
    ``scenarios/self-test`` links to it), so ``clnrm self-test`` works from any folder
    of an installed wheel.
    """
    import os

    candidates = [explicit] if explicit else []
    if os.environ.get(SUITE_ENV):
        candidates.append(Path(os.environ[SUITE_ENV]))
    candidates += [Path("scenarios/self-test"), Path(__file__).resolve().parent / "selftest_suite"]
    for path in candidates:
        if path is not None and (path / "positive").is_dir() and (path / "negative").is_dir():
            return path
    raise ClnrmError("the self-test suite was not found",
                     hint="pass --suite DIR (a folder with positive/ and negative/)")


def judge(result: RunResult, suite: Path) -> list[SelfTestCheck]:
    checks = []
    negative_dir = (suite / "negative").resolve()
    for test in result.tests:
        negative = negative_dir in Path(test.file).resolve().parents
        checks.append(_check_negative(test) if negative else _check_positive(test))
    return checks


def _check_positive(test: TestResult) -> SelfTestCheck:
    ok = test.outcome is Outcome.PASSED and bool(test.validations)
    return SelfTestCheck(file=test.file, expected="pass", ok=ok,
                         detail="" if ok else (test.message or "no span expectations ran"))


def _check_negative(test: TestResult) -> SelfTestCheck:
    failed_validations = [v for v in test.validations if v.status is ValidationStatus.FAIL]
    steps_ok = all(s.outcome is Outcome.PASSED for s in test.steps)
    ok = test.outcome is Outcome.FAILED and steps_ok and bool(failed_validations)
    if ok:
        detail = f"failed as intended: {failed_validations[0].expectation}"
    elif test.outcome is Outcome.PASSED:
        detail = "passed, but one of its span expectations is wrong on purpose"
    else:
        detail = f"failed for another reason: {test.message}"
    return SelfTestCheck(file=test.file, expected="fail on a span expectation", ok=ok,
                         detail=detail)
