"""The JUnit XML report, shaped for what CI readers actually parse.

Layout, and why:

- One ``<testsuites>`` root holding **one** ``<testsuite name="clnrm">`` per
  run.  Jenkins groups by ``classname``, GitLab flattens every suite into one
  list, and GitHub reporters (dorny/test-reporter, action-junit-report) show
  one group per suite; a suite per file would give N groups of one test each
  and say nothing the ``classname`` does not.  The suite carries the run: its
  ``id`` is the run id, its ``timestamp`` the start, its properties the
  backend, seed and the backend's limitations.
- One ``<testcase classname="<file>" name="<test>">`` per test, with
  ``<failure>`` (FAILED), ``<error>`` (ERROR) or ``<skipped>`` (SKIPPED).  The
  failure body lists the failing steps and failing validations; each step's
  stdout and stderr go to ``<system-out>`` / ``<system-err>``.
- Every validation is **also its own testcase**, named
  ``<test>::<validator> <expectation>``.  JUnit readers only display
  testcases: properties are invisible in GitLab and GitHub, and the Jenkins
  schema (``junit-10.xsd``) allows none under ``<testcase>``.  As testcases,
  each expectation shows its verdict with expected/seen/declared-at in every
  reader.  The price is that ``tests`` counts tests plus validations and one
  failed expectation counts twice (in its test and itself); the ``::``
  separator, as in pytest node ids, tells them apart.

Only attributes the Jenkins schema allows are written, times have at most
three decimals (its ``SUREFIRE_TIME``), and characters XML cannot hold are
escaped, so a stray ANSI code in one step's output cannot make CI reject the
file.
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from clnrm.redact import redacted
from clnrm.reports._text import clip, one_line, xml_safe
from clnrm.results import (
    Outcome,
    RunResult,
    StepResult,
    TestResult,
    ValidationResult,
    ValidationStatus,
)

SUITE_NAME = "clnrm"
VALIDATION_SEPARATOR = "::"


def render_junit(result: RunResult) -> str:
    """The run as a JUnit XML document (UTF-8 declaration, indented, newline-terminated)."""
    result = redacted(result)
    counts = _counts(result)
    suite = ET.Element("testsuite", {"name": SUITE_NAME, **counts,
                                     "time": _seconds(result.duration_s),
                                     "id": _x(result.run_id)})
    stamp = _timestamp(result.started_at)
    if stamp:
        suite.set("timestamp", stamp)
    _properties(suite, result)
    for test in result.tests:
        suite.append(_test_case(test))
        suite.extend(_validation_case(test, v) for v in test.validations)
    # <testsuites> has no skipped attribute in junit-10.xsd
    root = ET.Element("testsuites", {"name": SUITE_NAME, "tests": counts["tests"],
                                     "failures": counts["failures"], "errors": counts["errors"],
                                     "time": _seconds(result.duration_s)})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(result: RunResult, path: str | Path) -> None:
    """Write :func:`render_junit` to ``path`` (UTF-8), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_junit(result), encoding="utf-8")


# -- suite ---------------------------------------------------------------------


def _counts(result: RunResult) -> dict[str, str]:
    tests = failures = errors = skipped = 0
    for test in result.tests:
        tests += 1 + len(test.validations)
        failures += (test.outcome is Outcome.FAILED) + sum(
            v.status is ValidationStatus.FAIL for v in test.validations)
        errors += (test.outcome is Outcome.ERROR) + sum(
            v.status is ValidationStatus.ERROR for v in test.validations)
        skipped += (test.outcome is Outcome.SKIPPED) + sum(
            v.status is ValidationStatus.SKIP for v in test.validations)
    return {"tests": str(tests), "failures": str(failures), "errors": str(errors),
            "skipped": str(skipped)}


def _properties(suite: ET.Element, result: RunResult) -> None:
    props = ET.SubElement(suite, "properties")
    values = [("clnrm.run_id", result.run_id), ("clnrm.backend", result.backend),
              ("clnrm.started_at", result.started_at)]
    if result.seed is not None:
        values.append(("clnrm.seed", str(result.seed)))
    values += [(f"clnrm.limitation.{i}", lim) for i, lim in enumerate(result.limitations, 1)]
    for name, value in values:
        ET.SubElement(props, "property", name=name, value=_x(one_line(value, 2000)))


def _timestamp(started_at: str) -> str | None:
    """ISO time in UTC without offset: junit-10 readers (Jenkins) reject ``+00:00``."""
    try:
        when = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="seconds")


# -- one test ----------------------------------------------------------------------


def _test_case(test: TestResult) -> ET.Element:
    case = ET.Element("testcase", classname=_x(test.file), name=_x(test.name),
                      time=_seconds(test.duration_s))
    message = _x(one_line(test.message or "", 500))
    if test.outcome is Outcome.FAILED:
        el = ET.SubElement(case, "failure", message=message or "test failed", type="TestFailed")
        el.text = _x(_failure_body(test))
    elif test.outcome is Outcome.ERROR:
        el = ET.SubElement(case, "error", message=message or "test could not be run",
                           type="TestError")
        el.text = _x(_failure_body(test))
    elif test.outcome is Outcome.SKIPPED:
        ET.SubElement(case, "skipped", message=message or "skipped")
    out = _joined_output(test, "stdout")
    if out:
        ET.SubElement(case, "system-out").text = _x(out)
    err = _joined_output(test, "stderr")
    if err:
        ET.SubElement(case, "system-err").text = _x(err)
    return case


def _failure_body(test: TestResult) -> str:
    lines = [test.message or f"test {test.outcome.value}"]
    bad_steps = [s for s in test.steps if s.outcome in (Outcome.FAILED, Outcome.ERROR)]
    if bad_steps:
        lines += ["", "failed steps:"]
        lines += [_step_line(s) for s in bad_steps]
    bad_checks = [v for v in test.validations
                  if v.status in (ValidationStatus.FAIL, ValidationStatus.ERROR)]
    if bad_checks:
        lines += ["", "failed validations:"]
        for v in bad_checks:
            lines.append(f"  {v.status.value.upper()} {v.validator} {v.expectation}")
            lines += [f"    {line}" for line in _validation_lines(v)]
    if test.warnings:
        lines += ["", "warnings:"] + [f"  {w}" for w in test.warnings]
    return "\n".join(lines)


def _step_line(step: StepResult) -> str:
    where = f" in {step.service}" if step.service else ""
    head = f"  step {step.name!r}{where}: {step.message or step.outcome.value}"
    return f"{head}\n    command: {shlex.join(step.command)} (exit code {step.exit_code})"


def _joined_output(test: TestResult, stream: str) -> str:
    parts = []
    if stream == "stdout" and test.warnings:
        parts.append("".join(f"warning: {w}\n" for w in test.warnings))
    for step in test.steps:
        text = getattr(step, stream)
        if text:
            parts.append(f"--- {step.name} {stream} (exit code {step.exit_code}) ---\n"
                         + clip(text) + ("" if text.endswith("\n") else "\n"))
    if stream == "stdout" and test.chaos is not None:
        from clnrm.chaos.report import timeline_lines

        parts.append("--- chaos timeline ---\n" + "\n".join(timeline_lines(test.chaos)) + "\n")
    return "".join(parts)


# -- one validation ------------------------------------------------------------------


def _validation_case(test: TestResult, v: ValidationResult) -> ET.Element:
    name = f"{test.name}{VALIDATION_SEPARATOR}{v.validator} {v.expectation}"
    case = ET.Element("testcase", classname=_x(test.file), name=_x(name), time="0.000")
    summary = _x(one_line(v.message or _expected_seen(v) or v.status.value, 500))
    body = _x("\n".join(_validation_lines(v)))
    if v.status is ValidationStatus.FAIL:
        ET.SubElement(case, "failure", message=summary, type="ValidationFailed").text = body
    elif v.status is ValidationStatus.ERROR:
        ET.SubElement(case, "error", message=summary, type="ValidationError").text = body
    elif v.status is ValidationStatus.SKIP:
        ET.SubElement(case, "skipped", message=summary)
    return case


def _expected_seen(v: ValidationResult) -> str:
    if v.expected or v.seen:
        return f"expected {v.expected or '?'}, seen {v.seen or '?'}"
    return ""


def _validation_lines(v: ValidationResult) -> list[str]:
    lines = [v.message] if v.message else []
    if v.expected:
        lines.append(f"expected: {v.expected}")
    if v.seen:
        lines.append(f"seen: {v.seen}")
    if v.declared_at:
        lines.append(f"declared at: {v.declared_at}")
    return lines


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _x(text: str) -> str:
    return xml_safe(text)
