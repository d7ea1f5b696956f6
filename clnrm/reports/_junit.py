"""The JUnit XML report, shaped for what CI readers actually parse.

Layout, and why:

- One ``<testsuites>`` root holding **one** ``<testsuite name="clnrm">`` per
  run.  Jenkins groups by ``classname``, GitLab flattens every suite into one
  list, and GitHub reporters (dorny/test-reporter, action-junit-report) show
  one group per suite; a suite per file would give N groups of one test each
  and say nothing the ``classname`` does not.  The suite carries the run: its
  ``id`` is the run id, its ``timestamp`` the start, its properties the
  backend, seed and the backend's limitations.
- **One** ``<testcase>`` per test, so ``tests`` counts tests and one failing
  test reports ``tests="1" failures="1"``.  A failed test holds one
  ``<failure>`` per failed step (``StepFailed``) and per failed or unevaluable
  expectation (``ValidationFailed`` / ``ValidationError``), each with its
  expected/seen/declared-at; junit-10.xsd allows any number of them and every
  reader lists them under the test.  A test that could not be run holds an
  ``<error>``, a skipped one ``<skipped>``.  Each step's stdout and stderr go to
  ``<system-out>`` / ``<system-err>``, after every expectation's verdict.
- ``classname`` is the test file without its ``.clnrm.toml`` suffix and with
  any other dot made ``_``: Jenkins and GitLab split a classname on its last
  dots into package and class, so ``tests/api.clnrm.toml`` would show as a
  class ``toml`` in a package ``tests/api.clnrm``.  The file itself is named
  in each failure body.

Only attributes the Jenkins schema allows are written, children follow its
sequence (skipped, error*, failure*, system-out, system-err), times have at
most three decimals (its ``SUREFIRE_TIME``), and characters XML cannot hold
are escaped, so a stray ANSI code in one step's output cannot make CI reject
the file.
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
_SUFFIXES = (".clnrm.toml", ".toml")


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


def junit_classname(file: str) -> str:
    """``file`` as a classname CI readers will not split: suffix dropped, dots as ``_``."""
    name = file
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace(".", "_") or "clnrm"


# -- suite ---------------------------------------------------------------------


def _counts(result: RunResult) -> dict[str, str]:
    return {"tests": str(len(result.tests)), "failures": str(result.count(Outcome.FAILED)),
            "errors": str(result.count(Outcome.ERROR)),
            "skipped": str(result.count(Outcome.SKIPPED))}


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
    case = ET.Element("testcase", classname=_x(junit_classname(test.file)), name=_x(test.name),
                      time=_seconds(test.duration_s))
    message = _x(one_line(test.message or "", 500))
    if test.outcome is Outcome.FAILED:
        for kind, summary, body in _failures(test):
            ET.SubElement(case, "failure", message=_x(one_line(summary, 500)),
                          type=kind).text = _x(body)
    elif test.outcome is Outcome.ERROR:
        el = ET.SubElement(case, "error", message=message or "test could not be run",
                           type="TestError")
        el.text = _x(_error_body(test))
    elif test.outcome is Outcome.SKIPPED:
        ET.SubElement(case, "skipped", message=message or "skipped")
    out = _joined_output(test, "stdout")
    if out:
        ET.SubElement(case, "system-out").text = _x(out)
    err = _joined_output(test, "stderr")
    if err:
        ET.SubElement(case, "system-err").text = _x(err)
    return case


def _failures(test: TestResult) -> list[tuple[str, str, str]]:
    """``(type, message, body)`` of each ``<failure>`` of a failed test: one per failed step
    and per failed expectation; the test's own message when neither names the cause."""
    where = f"file: {test.file}"
    found = []
    for step in test.steps:
        if step.outcome in (Outcome.FAILED, Outcome.ERROR):
            summary = f"step {step.name!r}: {step.message or step.outcome.value}"
            found.append(("StepFailed", summary, f"{_step_line(step).strip()}\n{where}"))
    for v in test.failed_validations:
        kind = "ValidationFailed" if v.status is ValidationStatus.FAIL else "ValidationError"
        summary = f"{v.validator} {v.expectation}: {v.message or _expected_seen(v) or v.status}"
        found.append((kind, summary, "\n".join([*_validation_lines(v), where])))
    if not found:
        found.append(("TestFailed", test.message or "test failed",
                      "\n".join([test.message or "test failed", where])))
    return found


def _error_body(test: TestResult) -> str:
    lines = [test.message or f"test {test.outcome.value}", "", f"file: {test.file}"]
    bad_steps = [s for s in test.steps if s.outcome in (Outcome.FAILED, Outcome.ERROR)]
    if bad_steps:
        lines += ["", "failed steps:"]
        lines += [_step_line(s) for s in bad_steps]
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
    if stream == "stdout" and test.validations:
        parts.append("--- expectations ---\n" + "".join(
            f"{v.status.value.upper()} {v.validator} {v.expectation}\n" for v in test.validations))
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
