"""The JUnit report: valid against the Jenkins schema's structure, one testcase per test with
one failure per failed expectation, counts that add up."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from clnrm import results
from clnrm.otel.span import Span
from clnrm.reports import render_junit, write_junit
from clnrm.reports.example import example_run
from clnrm.results import (
    Outcome,
    RunResult,
    StepResult,
    ValidationResult,
    ValidationStatus,
)

# Attributes junit-10.xsd (Jenkins, also read by GitLab and GitHub reporters) allows and requires.
ALLOWED = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp",
                   "hostname", "id", "package", "file", "log", "url", "version"},
                  {"name", "tests", "failures", "errors"}),
    "testcase": ({"name", "time", "classname", "group"}, {"name"}),
    "properties": (set(), set()),
    "property": ({"name", "value"}, {"name", "value"}),
    "failure": ({"type", "message"}, set()),
    "error": ({"type", "message"}, set()),
    "skipped": ({"type", "message"}, set()),
    "system-out": (set(), set()),
    "system-err": (set(), set()),
}
CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"skipped", "error", "failure", "system-out", "system-err"},
    "properties": {"property"},
}
SUREFIRE_TIME = re.compile(r"^\d+(\.\d{1,3})?$")
VERDICTS = ("failure", "error", "skipped")
# junit-10.xsd's <testcase> is a sequence: skipped?, error*, failure*, system-out*, system-err*
SEQUENCE = ("skipped", "error", "failure", "system-out", "system-err")


def check_junit(text: str) -> ET.Element:
    """Parse ``text`` and check it the way a schema validator and a CI reader would."""
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    for el in root.iter():
        allowed, required = ALLOWED[el.tag]
        assert set(el.attrib) <= allowed, f"<{el.tag}> has {set(el.attrib) - allowed}"
        assert required <= set(el.attrib), f"<{el.tag}> lacks {required - set(el.attrib)}"
        assert {c.tag for c in el} <= CHILDREN.get(el.tag, set()), f"<{el.tag}> children"
        if "time" in el.attrib:
            assert SUREFIRE_TIME.match(el.attrib["time"]), el.attrib["time"]
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counted = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            order = [SEQUENCE.index(c.tag) for c in case]
            assert order == sorted(order), f"{case.get('name')}: children out of xsd order"
            verdicts = {c.tag for c in case if c.tag in VERDICTS}
            assert len(verdicts) <= 1, f"{case.get('name')}: {verdicts}"  # one verdict a test
            key = {"failure": "failures", "error": "errors", "skipped": "skipped"}
            for v in verdicts:
                counted[key[v]] += 1
        for name, n in counted.items():
            assert int(suite.get(name, "0")) == n, f"suite {name}={suite.get(name)}, counted {n}"
        for name in totals:
            totals[name] += counted[name]
    for name, n in totals.items():
        assert int(root.get(name, "0")) == n
    return root


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name", ""): c for c in root.iter("testcase")}


def test_example_run_is_structurally_valid_with_consistent_counts() -> None:
    root = check_junit(render_junit(example_run()))
    [suite] = root.findall("testsuite")
    assert suite.get("name") == "clnrm" and suite.get("id") == "5e1f0c2a9b7d"
    # 4 tests: one passed, one failed (a step and an expectation), one error, one skipped
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    assert suite.get("skipped") == "1"


def test_each_outcome_maps_to_its_junit_element() -> None:
    found = cases(check_junit(render_junit(example_run())))
    assert [c.tag for c in found["checkout_flow"]] == ["system-out"]
    assert found["payment_declined"].find("failure") is not None
    assert found["inventory_sync"].find("error").get("message") == (
        "service 'db' was not ready after 60 s (tcp 5432)")
    assert "Permission denied" in found["inventory_sync"].find("error").text
    assert found["nightly_load"].find("skipped").get("message") == "not started: run was cancelled"


def test_testcases_are_classed_by_file_without_dots_and_timed() -> None:
    found = cases(check_junit(render_junit(example_run())))
    assert found["checkout_flow"].get("classname") == "tests/checkout"
    assert found["checkout_flow"].get("time") == "2.410"
    assert set(found) == {"checkout_flow", "payment_declined", "inventory_sync", "nightly_load"}
    for case in found.values():
        assert "." not in case.get("classname")  # CI readers split package.class on dots


def test_classname_keeps_a_path_whole() -> None:
    from clnrm.reports._junit import junit_classname

    assert junit_classname("scenarios/v1.2/api.clnrm.toml") == "scenarios/v1_2/api"
    assert junit_classname("./t.toml") == "_/t"
    assert junit_classname("") == "clnrm"


def test_one_testcase_per_test_with_one_failure_per_failed_step_and_expectation() -> None:
    case = cases(check_junit(render_junit(example_run())))["payment_declined"]
    step, expectation = case.findall("failure")
    assert step.get("type") == "StepFailed"
    assert step.get("message") == ("step 'pay': exit code 1, expected 0; output: payment "
                                   "failed: card declined")
    assert "command: sh -c 'pay --card 4000-0000-0000-0002' (exit code 1)" in step.text
    assert expectation.get("type") == "ValidationFailed"
    assert expectation.get("message") == ("status span 'POST /charge' status=OK: 1 span has "
                                          "status ERROR")
    assert "expected: status OK" in expectation.text
    assert "seen: status ERROR (card declined)" in expectation.text
    assert "declared at: tests/payments.clnrm.toml:31 [expect.status]" in expectation.text
    assert "file: tests/payments.clnrm.toml" in expectation.text


def test_one_failing_expectation_counts_one_test_and_one_failure() -> None:
    run = one_test_run(validations=[
        ValidationResult(validator="span", expectation="span 'a'", status=ValidationStatus.FAIL,
                         expected="1 span", seen="0 spans"),
        ValidationResult(validator="span", expectation="span 'b'", status=ValidationStatus.PASS)])
    root = check_junit(render_junit(run))
    assert (root.get("tests"), root.get("failures")) == ("1", "1")
    [failure] = root.iter("failure")
    assert failure.get("message") == "span span 'a': expected 1 span, seen 0 spans"
    out = cases(root)["t"].find("system-out").text
    assert "FAIL span span 'a'\nPASS span span 'b'" in out


def test_failed_test_without_a_named_cause_still_has_a_failure() -> None:
    [failure] = check_junit(render_junit(one_test_run(message="resilience verdict failed"))
                            ).iter("failure")
    assert failure.get("type") == "TestFailed"
    assert failure.get("message") == "resilience verdict failed"


def test_step_output_goes_to_system_out_and_system_err() -> None:
    case = cases(check_junit(render_junit(example_run())))["payment_declined"]
    assert case.find("system-out").text.endswith(
        "--- pay stdout (exit code 1) ---\ncontacting payments\n")
    assert "payment failed: card declined" in case.find("system-err").text


def one_test_run(**fields: object) -> RunResult:
    test = results.TestResult(**{"name": "t", "file": "t.clnrm.toml", "outcome": Outcome.FAILED,
                         **fields})
    return RunResult(run_id="r1", backend="local", started_at="2024-05-01T14:00:00+02:00",
                     tests=[test])


def test_markup_control_characters_and_cdata_ends_survive_as_valid_xml() -> None:
    hostile = "<script>alert('x')</script> & ]]> \"quoted\"\n"
    run = one_test_run(
        name="<b>t</b>", message=hostile,
        steps=[StepResult(name="s&s", command=["echo", hostile], outcome=Outcome.FAILED,
                          exit_code=1, stdout="\x1b[31mred\x1b[0m\x00 " + hostile,
                          stderr="bad \udcff byte")],
        validations=[ValidationResult(validator="span", expectation="name='<x>'",
                                      status=ValidationStatus.ERROR, message="bad glob '['")])
    text = render_junit(run)
    root = check_junit(text)
    case = cases(root)["<b>t</b>"]
    out = case.find("system-out").text
    assert "\\x1b[31mred\\x1b[0m\\x00 <script>alert('x')</script> & ]]>" in out
    assert "bad \\udcff byte" in case.find("system-err").text
    step, glob = case.findall("failure")
    assert step.get("message") == "step 's&s': failed"
    assert "<script>" not in text  # only ever present escaped
    assert (glob.get("type"), glob.get("message")) == ("ValidationError",
                                                       "span name='<x>': bad glob '['")


def test_timestamp_is_utc_without_offset_and_properties_carry_the_run() -> None:
    root = check_junit(render_junit(one_test_run(spans=[Span("s", "1" * 32, "2" * 16)])))
    suite = root.find("testsuite")
    assert suite.get("timestamp") == "2024-05-01T12:00:00"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"clnrm.run_id": "r1", "clnrm.backend": "local",
                     "clnrm.started_at": "2024-05-01T14:00:00+02:00"}


def test_unparseable_start_time_leaves_the_timestamp_out() -> None:
    run = one_test_run()
    run.started_at = "yesterday"
    assert check_junit(render_junit(run)).find("testsuite").get("timestamp") is None


def test_limitations_and_seed_become_properties() -> None:
    run = example_run()
    run.limitations = ["no network isolation", "no resource limits"]
    props = {p.get("name"): p.get("value") for p in check_junit(render_junit(run)).iter("property")}
    assert props["clnrm.seed"] == "42"
    assert props["clnrm.limitation.2"] == "no resource limits"


def test_long_output_is_clipped_with_a_note() -> None:
    big = "".join(f"line {i}\n" for i in range(100_000))
    run = one_test_run(steps=[StepResult(name="s", command=["x"], outcome=Outcome.FAILED,
                                         stdout=big)])
    out = cases(check_junit(render_junit(run)))["t"].find("system-out").text
    assert len(out) < 70_000
    assert "line 0\n" in out and "line 99999\n" in out and "characters cut here" in out


def test_empty_run_is_a_valid_document() -> None:
    run = RunResult(run_id="r", backend="docker", started_at="2024-05-01T12:00:00+00:00")
    root = check_junit(render_junit(run))
    assert root.get("tests") == "0" and root.find("testsuite/testcase") is None


def test_write_junit_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "junit.xml"
    write_junit(example_run(), target)
    check_junit(target.read_text(encoding="utf-8"))
