"""The public Python API: ``clnrm.run`` returns typed results; bad input is a located error.

Runs on the local backend (steps as processes), so no engine is needed; the Docker
path is covered by tests/integration/test_pytest_fixtures.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import clnrm
from clnrm.errors import ClnrmError, ScenarioError
from clnrm.results import Outcome, RunResult
from tests.scenario_texts import BROKEN, FAILING, PASSING


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / f"{name}.clnrm.toml").write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


def test_run_returns_typed_outcomes_and_a_failure_is_a_result(tmp_path: Path) -> None:
    folder = write(tmp_path / "suite", a_pass=PASSING, b_fail=FAILING)
    result = clnrm.run([folder], backend="local")
    assert isinstance(result, RunResult) and result.backend == "local"
    by_name = {t.name: t for t in result.tests}
    assert by_name["greets"].outcome is Outcome.PASSED, by_name["greets"].message
    failed = by_name["exits_three"]
    assert failed.outcome is Outcome.FAILED
    assert failed.steps[0].exit_code == 3 and "went-wrong" in failed.steps[0].stderr
    assert result.exit_code == 1


def test_one_path_as_a_string_and_reports(tmp_path: Path) -> None:
    write(tmp_path, only=PASSING)
    report = tmp_path / "out" / "run.json"
    result = clnrm.run(str(tmp_path / "only.clnrm.toml"), backend="local", seed=7,
                       report_json=report, artifacts=tmp_path / "runs")
    assert [t.outcome for t in result.tests] == [Outcome.PASSED] and result.seed == 7
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["run_id"] == result.run_id
    assert (tmp_path / "runs" / result.run_id).is_dir()


def test_no_artifacts_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, only=PASSING)
    monkeypatch.chdir(tmp_path)
    clnrm.run("only.clnrm.toml", backend="local")
    assert not (tmp_path / ".clnrm").exists()


def test_bad_file_raises_scenario_error_with_its_location(tmp_path: Path) -> None:
    write(tmp_path, good=PASSING, broken=BROKEN)
    with pytest.raises(ScenarioError) as info:
        clnrm.run([tmp_path], backend="local")
    err = info.value
    assert err.file is not None and Path(err.file).name == "broken.clnrm.toml"
    assert err.line == 8 and "expected_exit_code" in str(err)


def test_several_bad_files_list_every_one(tmp_path: Path) -> None:
    write(tmp_path, one=BROKEN, two=BROKEN.replace('"broken"', '"broken2"'))
    with pytest.raises(ClnrmError, match="2 of 2 test files are invalid") as info:
        clnrm.run(tmp_path, backend="local")
    assert [type(c) for c in info.value.causes] == [ScenarioError, ScenarioError]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"backend": "vm"}, "backend 'vm'"),
    ({"jobs": 0}, "jobs=0"),
    ({"image_map": None, "otel_protocol": "carrier-pigeon",
      "otel_endpoint": "http://localhost:4318"}, "carrier-pigeon"),
])
def test_bad_options_are_clnrm_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    write(tmp_path, only=PASSING)
    with pytest.raises(ClnrmError, match=match):
        clnrm.run(tmp_path, **{"backend": "local", **kwargs})


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ClnrmError, match="no test files found"):
        clnrm.run(tmp_path, backend="local")


def test_public_surface_is_sorted_lazy_and_light() -> None:
    assert clnrm.__all__ == sorted(clnrm.__all__)
    assert set(clnrm.__all__) == set(clnrm._LAZY) | {"__version__"}
    for name in clnrm.__all__:
        assert getattr(clnrm, name) is not None
    code = "import sys, clnrm; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('pydantic', 'docker', 'structlog') or m in ('clnrm.api', 'clnrm.runner')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        clnrm.nope  # noqa: B018


def test_scenario_files_and_assert_passed(tmp_path: Path) -> None:
    write(tmp_path / "e2e", a=PASSING, b=FAILING)
    write(tmp_path / "e2e" / "nested", c=PASSING)
    params = clnrm.scenario_files("e2e", root=tmp_path)
    assert [p.id for p in params] == ["e2e/a", "e2e/b", "e2e/nested/c"]
    assert clnrm.scenario_files("missing", root=tmp_path) == []
    result = clnrm.run(params[1].values[0], backend="local")
    with pytest.raises(AssertionError, match=r"exits_three.*FAILED") as info:
        clnrm.assert_passed(result)
    assert "boom" in str(info.value) and "exit code 3" in str(info.value)
    clnrm.assert_passed(clnrm.run(params[0].values[0], backend="local"))


def test_a_library_call_prints_nothing(tmp_path: Path) -> None:
    """structlog's unconfigured default would print debug lines to stdout."""
    write(tmp_path, only=PASSING)
    code = ("import clnrm, sys; r = clnrm.run(sys.argv[1], backend='local'); "
            "assert r.exit_code == 0, r.tests")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""
