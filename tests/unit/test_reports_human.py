"""The terminal output of a failed test names each failed expectation and why; counts agree
with their nouns."""

from __future__ import annotations

from pathlib import Path

from clnrm.reports._human import (
    expectations_summary,
    failed_expectation_lines,
    message_lines,
    plural,
)
from clnrm.reports.example import example_run
from clnrm.results import Outcome, ValidationResult, ValidationStatus
from clnrm.results import TestResult as RunOfATest
from tests.conftest import run_cli


def test_plural_agrees_with_the_count() -> None:
    assert [plural(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    assert plural(1, "child", "children") == "1 child" and plural(3, "child", "children") == (
        "3 children")


def test_each_failed_expectation_is_named_with_why_and_where() -> None:
    test = next(t for t in example_run().tests if t.name == "payment_declined")
    [line] = failed_expectation_lines(test)
    assert line.startswith("✗ status span 'POST /charge' status=OK: 1 span has status ERROR")
    assert "expected status OK, seen status ERROR (card declined)" in line
    assert line.endswith("[tests/payments.clnrm.toml:31 [expect.status]]")


def test_summary_counts_and_skips() -> None:
    test = RunOfATest(name="t", file="f", outcome=Outcome.FAILED, validations=[
        ValidationResult(validator="counts", expectation="spans_total >= 3",
                         status=ValidationStatus.FAIL, message="2 spans"),
        ValidationResult(validator="span", expectation="span 'a'", status=ValidationStatus.SKIP)])
    assert expectations_summary(test) == "0/1 expectation held (1 not judged this run), 0 spans"
    assert failed_expectation_lines(test) == ["✗ counts spans_total >= 3: 2 spans"]
    test.validations[1].status = ValidationStatus.PASS
    assert expectations_summary(test).startswith("1/2 expectations held")


def test_message_restating_the_expectations_is_not_printed_twice() -> None:
    v = ValidationResult(validator="span", expectation="span 'a'", status=ValidationStatus.FAIL)
    restated = RunOfATest(name="t", file="f", outcome=Outcome.FAILED, validations=[v],
                          message="1 span expectation(s) failed:\n- span 'a'\n    did not hold")
    assert message_lines(restated) == []
    step = RunOfATest(name="t", file="f", outcome=Outcome.FAILED, validations=[v],
                      message="step 'pay': exit code 1, expected 0")
    assert message_lines(step) == ["step 'pay': exit code 1, expected 0"]


def test_clnrm_run_prints_the_failed_expectation_and_one_step(tmp_path: Path) -> None:
    test = tmp_path / "t.clnrm.toml"
    test.write_text('[test.metadata]\nname = "t"\n[[steps]]\nname = "s"\ncommand = ["true"]\n'
                    '[[expect.span]]\nname = "nope"\n')
    res = run_cli("run", str(test), "--backend", "local", env={"COLUMNS": "400"})
    assert res.returncode == 1, res.stderr
    assert "1 step)" in res.stdout and "1 steps" not in res.stdout
    assert "✗ span 'nope': expected a span named 'nope', seen no span named 'nope'" in res.stdout
    assert f"[{test}:6 [expect.span[0]]]" in res.stdout
    assert "0/1 expectation held" in res.stdout
