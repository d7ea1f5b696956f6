"""Every command's real ``--format json`` output against its committed JSON Schema.

The schemas in docs/schemas/ are the contract (docs/outputs.md); each test runs the
command as a user would (in-process through typer for the memory and perf groups, whose
store opens faster there) and validates what it printed, on success and on exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clnrm import __version__
from clnrm.output_schemas import PAYLOADS, command_schema, file_name
from tests.conftest import REPO, run_cli

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = REPO / "docs" / "schemas"
GOOD = '[test.metadata]\nname = "t"\n[[steps]]\nname = "s"\ncommand = ["echo", "hi"]\n'
BAD = '[test.metadata]\nname = "t"\n[[steps]]\nnam = "s"\n'


# logs on stderr, as `clnrm` sets them up: they never mix into --format json
pytestmark = pytest.mark.usefixtures("logs_on_stderr")


def check(command: str, stdout: str) -> dict[str, Any]:
    """Parse the (last) document printed and validate it against its committed schema."""
    doc = json.loads(stdout)
    schema = json.loads((SCHEMAS / file_name(command)).read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["command"] == command and doc["clnrm_version"] == __version__
    return doc


def test_every_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    files = sorted(SCHEMAS.glob("*.schema.json"))
    expected = {file_name(c) for c in PAYLOADS if command_schema(c) is not None}
    assert {f.name for f in files} == expected
    for f in files:
        jsonschema.Draft202012Validator.check_schema(json.loads(f.read_text("utf-8")))


def test_every_command_with_format_json_has_a_schema() -> None:
    import typer
    from clnrm.memory.cli import memory_app

    from clnrm.cli import app
    from clnrm.perf.cli import perf_app

    def walk(cmd: Any, prefix: str) -> list[str]:
        subs = getattr(cmd, "commands", None)
        if subs:
            return [n for name, c in subs.items() for n in walk(c, f"{prefix} {name}".strip())]
        return [prefix] if any(p.name == "fmt" for p in cmd.params) else []

    found = walk(typer.main.get_command(app), "") + walk(
        typer.main.get_command(memory_app), "memory") + walk(
        typer.main.get_command(perf_app), "perf")
    assert "run" in found and "memory stats" in found and "perf baseline list" in found
    assert set(found) - set(PAYLOADS) == set(), "add a schema to clnrm/output_schemas.py"


def test_a_schema_rejects_a_document_without_the_envelope() -> None:
    schema = json.loads((SCHEMAS / "plugins.schema.json").read_text("utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": []}, schema)
    with pytest.raises(jsonschema.ValidationError):  # no payload although error is null
        jsonschema.validate({"schema_version": 1, "clnrm_version": "x", "command": "plugins",
                             "error": None}, schema)


# -- clnrm ... --------------------------------------------------------------------------------


def test_run_json_on_pass_and_on_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "good.clnrm.toml"
    good.write_text(GOOD)
    res = run_cli("run", str(good), "--backend", "local", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert check("run", res.stdout)["tests"][0]["outcome"] == "passed"
    bad = tmp_path / "bad.clnrm.toml"
    bad.write_text(BAD)
    res = run_cli("run", str(bad), "--backend", "local", "--format", "json")
    assert res.returncode == 2
    error = check("run", res.stdout)["error"]
    assert error["file"] == str(bad) and error["line"] == 3 and error["key"] == "steps[0].name"


def test_run_report_json_file_is_the_same_document(tmp_path: Path) -> None:
    good = tmp_path / "good.clnrm.toml"
    good.write_text(GOOD)
    res = run_cli("run", str(good), "--backend", "local", "--report-json",
                  str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    check("run", (tmp_path / "r.json").read_text("utf-8"))


def test_chaos_run_json_on_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "good.clnrm.toml"
    good.write_text(GOOD)
    res = run_cli("chaos", "run", str(good), "--format", "json")
    assert res.returncode == 2
    assert "not a chaos experiment" in check("chaos run", res.stdout)["error"]["message"]


def test_validate_json_valid_and_invalid(tmp_path: Path) -> None:
    (tmp_path / "good.clnrm.toml").write_text(GOOD)
    res = run_cli("validate", str(tmp_path / "good.clnrm.toml"), "-f", "json")
    assert res.returncode == 0 and check("validate", res.stdout)["error"] is None
    (tmp_path / "bad.clnrm.toml").write_text(BAD)
    res = run_cli("validate", str(tmp_path), "-f", "json")
    doc = check("validate", res.stdout)
    assert res.returncode == 2 and len(doc["files"]) == 2
    assert doc["error"]["line"] == 3 and doc["error"]["message"].startswith("1 invalid test file")
    res = run_cli("validate", str(tmp_path / "missing"), "-f", "json")
    assert res.returncode == 2 and check("validate", res.stdout)["error"]["message"]


def test_chaos_list_plugins_and_self_test_json(tmp_path: Path) -> None:
    runner = CliRunner()
    from clnrm.cli import app

    listed = runner.invoke(app, ["chaos", "list", "--format", "json"])
    assert listed.exit_code == 0 and check("chaos list", listed.stdout)["faults"]
    bad = runner.invoke(app, ["chaos", "list", "--category", "nope", "--format", "json"])
    assert bad.exit_code == 2 and check("chaos list", bad.stdout)["error"]["hint"]
    plugins = runner.invoke(app, ["plugins", "--format", "json"])
    names = {p["name"] for p in check("plugins", plugins.stdout)["services"]}
    assert "generic_container" in names
    for part in ("positive", "negative"):
        (tmp_path / part).mkdir()
    (tmp_path / "positive" / "bad.clnrm.toml").write_text(BAD)  # refused before any run
    suite = runner.invoke(app, ["self-test", "--suite", str(tmp_path), "--format", "json"])
    assert suite.exit_code == 2 and check("self-test", suite.stdout)["error"]["line"] == 3


@pytest.mark.docker
def test_gc_json(docker_client: Any) -> None:
    res = run_cli("gc", "--dry-run", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert check("gc", res.stdout)["dry_run"] is True


# -- memory and perf ----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    pytest.importorskip("chromadb")
    return tmp_path / "mem"


def _memory(*args: str) -> Any:
    from clnrm.memory.cli import memory_app

    return CliRunner().invoke(memory_app, list(args), env={"COLUMNS": "200"})


def test_memory_commands_json(store: Path, tmp_path: Path) -> None:
    from clnrm.memory import FailureRecord

    m = ["--memory", str(store), "--format", "json"]
    records = tmp_path / "in.jsonl"
    records.write_text(FailureRecord(agent="chaos", test="x", message="db refused")
                       .model_dump_json() + "\n")
    assert check("memory import", _memory("import", str(records), *m).stdout)["imported"] == 1
    hits = check("memory query", _memory("query", "db refused", *m).stdout)["hits"]
    assert hits and hits[0]["record"]["test"] == "x"
    stats = check("memory stats", _memory("stats", *m).stdout)
    assert stats["total"] == 1 and stats["store_schema_version"] >= 1
    out = tmp_path / "out.jsonl"
    assert check("memory export", _memory("export", str(out), *m).stdout)["exported"] == 1
    assert check("memory check", _memory("check", *m).stdout)["healthy"] is True
    assert check("memory repair", _memory("repair", *m).stdout)["health"]["healthy"] is True
    forgot = _memory("forget", "--before", "2000-01-01", *m)
    assert check("memory forget", forgot.stdout)["forgotten"] == 0
    dead = _memory("stats", "--memory", "/dev/null", "--format", "json")
    assert dead.exit_code == 2 and "/dev/null" in check("memory stats", dead.stdout)[
        "error"]["message"]


def test_perf_baseline_commands_json(store: Path, tmp_path: Path) -> None:
    from clnrm.perf.cli import perf_app
    from tests.unit.test_perf_cli import FP, report

    def perf(*args: str) -> Any:
        return CliRunner().invoke(perf_app, [*args, "--memory", str(store), "--format", "json"],
                                  env={"COLUMNS": "200"})

    assert check("perf baseline list", perf("baseline", "list").stdout)["baselines"] == []
    missing = perf("baseline", "show", "demo_perf", "--fingerprint", FP)
    assert missing.exit_code == 2 and check("perf baseline show", missing.stdout)["error"]
    for i in range(3):
        saved = perf("baseline", "save", "--from-report",
                     str(report(tmp_path / f"r{i}.json", f"run-{i}", seed=i)), "--fingerprint", FP)
        assert check("perf baseline save", saved.stdout)["saved"][0]["run_id"] == f"run-{i}"
    shown = perf("baseline", "show", "demo_perf", "--fingerprint", FP)
    as_file = tmp_path / "baseline.json"
    as_file.write_text(shown.stdout)
    check("perf baseline show", shown.stdout)
    from clnrm.perf.baseline import load_baseline_file

    assert len(load_baseline_file(str(as_file)).runs) == 3  # still a baseline file
    diffed = perf("baseline", "diff", "--from-report",
                  str(report(tmp_path / "n.json", "run-n", seed=7)), "--fingerprint", FP)
    assert check("perf baseline diff", diffed.stdout)["diffs"][0]["verdicts"]
    forgot = perf("baseline", "forget", "demo_perf", "--fingerprint", FP)
    assert check("perf baseline forget", forgot.stdout)["forgotten_runs"] == 3


def test_swarm_run_json_on_exit_2(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    res = run_cli("swarm", "run", str(tmp_path / "missing.clnrm.toml"), "--format", "json")
    assert res.returncode == 2
    assert check("swarm run", res.stdout)["error"]["message"]


@pytest.mark.docker
def test_doctor_json() -> None:
    res = run_cli("doctor", "--format", "json")
    assert res.returncode in (0, 1), res.stderr
    doc = check("doctor", res.stdout)
    assert doc["checks"] and isinstance(doc["ok"], bool)
