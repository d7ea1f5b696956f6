"""CLI behaviour that needs no engine: fast start, version, clear argument errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

HEAVY = ["docker", "ray", "chromadb", "sklearn", "networkx", "opentelemetry.sdk", "pydantic"]


def test_help_imports_nothing_heavy() -> None:
    """`clnrm --help` must start fast, so it may not import the heavy libraries."""
    code = ("import sys\nfrom clnrm.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "import json\nprint(json.dumps(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = set(json.loads(res.stdout.strip().splitlines()[-1]))
    assert not [m for m in HEAVY if m in loaded], "heavy imports on --help"


def test_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("clnrm ")


def test_bad_arguments_exit_two_without_traceback() -> None:
    res = run_cli("run", "--jobs", "0", "x.toml")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = run_cli("run", "--backend", "vm", "x.toml")
    assert res.returncode == 2 and "vm" in res.stderr


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    res = run_cli("run", str(tmp_path / "nope.clnrm.toml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "nope.clnrm.toml" in res.stderr


def test_bad_image_map_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "t.clnrm.toml"
    f.write_text('[test.metadata]\nname = "t"\n[[steps]]\nname = "s"\ncommand = ["true"]\n')
    res = run_cli("run", str(f), "--backend", "local", "--image-map", "nonsense")
    assert res.returncode == 2 and "expected FROM=TO" in res.stderr


def test_local_backend_run_end_to_end(tmp_path: Path) -> None:
    f = tmp_path / "t.clnrm.toml"
    f.write_text('[test.metadata]\nname = "t"\n[[steps]]\nname = "s"\n'
                 'command = ["echo", "hi"]\nexpected_output_regex = "hi"\n')
    res = run_cli("run", str(f), "--backend", "local", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tests"][0]["outcome"] == "passed"


def test_init_writes_a_valid_test(tmp_path: Path) -> None:
    res = run_cli("init", str(tmp_path))
    assert res.returncode == 0, res.stderr
    target = tmp_path / "tests" / "basic.clnrm.toml"
    assert target.exists()
    assert run_cli("validate", str(target)).returncode == 0
    again = run_cli("init", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr


# -- a file with only expectations judges a trace export -----------------------------

EXPECT_ONLY = """[meta]
name = "judge_export"

[[expect.span]]
name = "op0"
kind = "{kind}"
"""


def _expect_only(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    from tests.unit.test_otel_tracefile import otlp_doc

    test = tmp_path / f"judge_{kind}.clnrm.toml"
    test.write_text(EXPECT_ONLY.format(kind=kind), encoding="utf-8")
    export = tmp_path / "export.json"
    export.write_text(json.dumps(otlp_doc()), encoding="utf-8")
    return test, export


def test_expectations_only_file_passes_on_a_trace_export_that_holds(tmp_path: Path) -> None:
    test, export = _expect_only(tmp_path, "server")  # op0 has kind 2: server
    res = run_cli("run", str(test), "--traces", str(export), "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    [verdict] = json.loads(res.stdout)["tests"]
    assert verdict["outcome"] == "passed" and verdict["validations"]


def test_expectations_only_file_fails_on_a_trace_export_that_does_not_hold(tmp_path: Path) -> None:
    test, export = _expect_only(tmp_path, "client")
    res = run_cli("run", str(test), "--traces", str(export))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL" in res.stdout and "Traceback" not in res.stderr


def test_expectations_only_file_without_traces_says_it_needs_them(tmp_path: Path) -> None:
    test, _ = _expect_only(tmp_path, "server")
    res = run_cli("run", str(test), "--backend", "local")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "nothing to run" in res.stderr and "--traces" in res.stderr


def test_validate_accepts_an_expectations_only_file_with_a_note(tmp_path: Path) -> None:
    test, _ = _expect_only(tmp_path, "server")
    for args in ([], ["--strict"]):
        res = run_cli("validate", *args, str(test))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "note:" in res.stdout and "--traces" in res.stdout
    [outcome] = json.loads(run_cli("validate", "-f", "json", str(test)).stdout)["files"]
    assert outcome["status"] == "ok" and "--traces" in outcome["notes"][0]


def test_a_file_with_neither_steps_nor_expectations_is_still_refused(tmp_path: Path) -> None:
    test = tmp_path / "empty.clnrm.toml"
    test.write_text('[meta]\nname = "n"\n', encoding="utf-8")
    res = run_cli("validate", str(test))
    assert res.returncode == 2 and "nothing to run and nothing to judge" in res.stdout


# -- keys with no effect are reported, and fail --strict -------------------------------

INERT = """[meta]
name = "inert"

[orchestration]
retries = 2

[[steps]]
name = "s"
command = ["echo", "hi"]
"""


def test_key_with_no_effect_warns_on_run_and_fails_strict(tmp_path: Path) -> None:
    test = tmp_path / "inert.clnrm.toml"
    test.write_text(INERT, encoding="utf-8")
    res = run_cli("run", str(test), "--backend", "local", "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{test}:5: [orchestration.retries] has no effect" in res.stderr
    [verdict] = json.loads(res.stdout)["tests"]
    assert any("[orchestration.retries] has no effect" in w for w in verdict["warnings"])
    strict = run_cli("run", str(test), "--backend", "local", "--strict")
    assert strict.returncode == 2 and "[orchestration.retries]" in strict.stderr
    [outcome] = json.loads(run_cli("validate", "-f", "json", str(test)).stdout)["files"]
    [warning] = outcome["warnings"]
    assert (warning["line"], warning["key"]) == (5, "orchestration.retries")


def test_logging_after_a_swapped_stderr_was_closed_does_not_raise(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A CLI runner swaps sys.stderr during configure() and closes its stream afterwards;
    a later log line must reach the current stderr, not fail on the closed one."""
    import io

    import structlog

    from clnrm.logs import configure

    swapped = io.StringIO()
    real = sys.stderr
    sys.stderr = swapped
    try:
        configure(0)
    finally:
        sys.stderr = real
    swapped.close()
    try:
        structlog.get_logger("clnrm.test").warning("after.close", detail="still fine")
        assert "after.close" in capsys.readouterr().err
        sys.stderr = swapped  # even the closed stream itself: the line is dropped, not raised
        structlog.get_logger("clnrm.test").warning("on.closed")
    finally:
        sys.stderr = real
        structlog.reset_defaults()
