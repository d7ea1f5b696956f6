"""The JSON report is the run result itself, loadable back into the model."""

from __future__ import annotations

import json
from pathlib import Path

from clnrm.reports import render_json, write_json
from clnrm.reports.example import example_run
from clnrm.results import Outcome, RunResult, StepResult


def test_json_report_is_the_model_dump_indented() -> None:
    run = example_run()
    text = render_json(run)
    assert json.loads(text) == run.model_dump(mode="json")
    assert text.startswith('{\n  "run_id": "5e1f0c2a9b7d"') and text.endswith("}\n")


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
