"""The human (terminal) lines of a test result that need wording, not layout.

``clnrm run`` prints these under each test: what failed and why, named one
expectation at a time, and counts whose nouns agree with their numbers.  Plain
strings, no markup: the CLI decides colours, and user text (expectation names,
span data) can never be read as rich markup.
"""

from __future__ import annotations

import re

from clnrm.results import TestResult, ValidationResult, ValidationStatus

_SUMMARY = re.compile(r"^\d+ [a-z ]*expectations?(\(s\))? failed:")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 step``, ``2 steps``, ``0 steps`` (``nouns`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def why(v: ValidationResult) -> str:
    """Why one expectation did not hold, in one line."""
    if v.expected or v.seen:
        seen = f"expected {v.expected or '?'}, seen {v.seen or '?'}"
        said = v.message and (v.expected or v.seen) not in v.message
        return f"{v.message}: {seen}" if said else seen
    return v.message or ("could not be evaluated" if v.status is ValidationStatus.ERROR
                         else "did not hold")


def failed_expectation_lines(test: TestResult) -> list[str]:
    """One line per failed (or unevaluable) expectation: what, why, where it was declared."""
    lines = []
    for v in test.failed_validations:
        mark = "✗" if v.status is ValidationStatus.FAIL else "!"
        where = f" [{v.declared_at}]" if v.declared_at else ""
        label = v.expectation if v.expectation.startswith(v.validator) else (
            f"{v.validator} {v.expectation}")
        lines.append(f"{mark} {label}: {why(v)}{where}")
    return lines


def expectations_summary(test: TestResult) -> str:
    """``1/2 expectations held (1 not judged this run), 5 spans``."""
    passed = sum(v.status is ValidationStatus.PASS for v in test.validations)
    skipped = sum(v.status is ValidationStatus.SKIP for v in test.validations)
    judged = len(test.validations) - skipped
    note = f" ({skipped} not judged this run)" if skipped else ""
    verb = "held" if judged else "judged"
    return (f"{passed}/{judged} {'expectation' if judged == 1 else 'expectations'} {verb}"
            f"{note}, {plural(len(test.spans), 'span')}")


def message_lines(test: TestResult) -> list[str]:
    """The test's message, unless it only restates the failed expectations (those are
    printed one by one by :func:`failed_expectation_lines`)."""
    if not test.message:
        return []
    if test.failed_validations and _SUMMARY.match(test.message):
        return []
    return test.message.splitlines()
