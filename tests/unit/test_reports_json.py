"""The JSON report is the run result itself in the output envelope, loadable back into the
model."""

from __future__ import annotations

import json
from pathlib import Path

from clnrm import __version__
from clnrm.output import ENVELOPE_KEYS, SCHEMA_VERSION
from clnrm.reports import render_json, write_json
from clnrm.reports.example import example_run
from clnrm.results import Outcome, RunResult, StepResult


def test_json_report_is_the_model_dump_in_the_envelope() -> None:
    run = example_run()
    text = render_json(run)
    data = json.loads(text)
    envelope = {k: data.pop(k) for k in ENVELOPE_KEYS}
    assert data == run.model_dump(mode="json")
    assert envelope["schema_version"] == SCHEMA_VERSION and envelope["command"] == "run"
    assert envelope["clnrm_version"] == __version__
    assert text.startswith('{\n  "schema_version": 1,') and text.endswith("}\n")


def test_json_report_error_names_the_test_that_could_not_run() -> None:
    run = example_run()
    errored = [t for t in run.tests if t.outcome is Outcome.ERROR]
    error = json.loads(render_json(run))["error"]
    if errored:
        assert error["file"] == errored[0].file and errored[0].name in error["message"]
    for t in errored:
        t.outcome = Outcome.FAILED
    assert json.loads(render_json(run))["error"] is None


def test_json_report_loads_back_into_an_equal_result(tmp_path: Path) -> None:
    run = example_run()
    write_json(run, tmp_path / "out" / "run.json")
    again = RunResult.model_validate_json((tmp_path / "out" / "run.json").read_text("utf-8"))
    assert again == run
    assert again.tests[1].spans[1].status_message == "card declined"


def test_undecodable_output_still_writes_valid_json(tmp_path: Path) -> None:
    run = example_run()
    run.tests[0].steps.append(StepResult(name="bin", command=["cat"], outcome=Outcome.PASSED,
                                         stdout="caf\udce9 <b>"))
    write_json(run, tmp_path / "run.json")
    data = json.loads((tmp_path / "run.json").read_text("utf-8"))
    assert data["tests"][0]["steps"][-1]["stdout"] == "caf\udce9 <b>"
