"""``clnrm perf baseline ...`` against a real embedded memory, fed from JSON reports.

Commands run in-process (typer's runner) so the memory is opened in a quarter of a
second rather than the seconds a new process needs; one test goes through ``python
-m clnrm perf`` to check the delegation from the main CLI.  Running test files is
covered by the Docker integration test (tests/integration/test_perf_demo.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clnrm.perf.baseline import BaselineStore
from clnrm.perf.cli import perf_app
from clnrm.results import Outcome, RunResult
from clnrm.results import TestResult as RunOfATest
from tests.conftest import run_cli
from tests.unit.perf_data import request_spans

pytest.importorskip("chromadb")

FP = "docker-27.3.1/cpus=2/kernel=6.8"
OTHER_FP = "docker-27.3.1/cpus=32/kernel=6.8"


def report(path: Path, run_id: str, *, file: str = "demo.clnrm.toml", **spans: Any) -> Path:
    """A JSON report of one test ``demo_perf`` whose spans come from ``request_spans``."""
    test = RunOfATest(name="demo_perf", file=file, outcome=Outcome.PASSED,
                      spans=request_spans(**spans))
    result = RunResult(run_id=run_id, backend="docker", started_at="2026-01-01T00:00:00",
                       tests=[test])
    path.write_text(result.model_dump_json(), encoding="utf-8")
    return path


def perf(memory: Path, *args: str) -> Any:
    return CliRunner().invoke(perf_app, [*args, "--memory", str(memory)],
                              env={"COLUMNS": "200"}, catch_exceptions=False)


@pytest.fixture
def memory(tmp_path: Path) -> Path:
    return tmp_path / "memory"


# logs on stderr, as `clnrm` sets them up: they never mix into --format json
pytestmark = pytest.mark.usefixtures("logs_on_stderr")


def test_empty_memory_lists_nothing_and_show_explains(memory: Path) -> None:
    listed = perf(memory, "baseline", "list", "--format", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)["baselines"] == []
    shown = perf(memory, "baseline", "show", "demo_perf", "--fingerprint", FP)
    assert shown.exit_code == 2
    assert f"error: no baseline for demo_perf on {FP}" in shown.stderr
    assert "the memory has no baselines yet; record one with `clnrm perf baseline save FILE`" \
        in shown.stderr


def test_save_from_report_then_show_list_and_diff(memory: Path, tmp_path: Path) -> None:
    for i in range(3):
        saved = perf(memory, "baseline", "save", "--from-report",
                     str(report(tmp_path / f"r{i}.json", f"run-{i}", seed=i)),
                     "--fingerprint", FP, "--format", "json")
        assert saved.exit_code == 0, saved.stderr
        [entry] = json.loads(saved.stdout)["saved"]
        assert entry == {"scenario": "demo_perf", "run_id": f"run-{i}", "fingerprint": FP,
                         "metrics": 3, "baseline_runs": i + 1}

    shown = perf(memory, "baseline", "show", "demo_perf", "--fingerprint", FP)
    assert shown.exit_code == 0, shown.stderr
    assert f"baseline of demo_perf on {FP}: 3 run(s)" in shown.stdout
    for column in ("p50", "p95", "p99", "max", "latency:SELECT items", "throughput"):
        assert column in shown.stdout
    as_file = perf(memory, "baseline", "show", "demo_perf", "--fingerprint", FP,
                   "--format", "json")
    data = json.loads(as_file.stdout)
    assert [r["run_id"] for r in data["runs"]] == ["run-0", "run-1", "run-2"]
    assert data["fingerprint"] == {"backend": "docker", "cpus": 2, "engine": "27.3.1",
                                   "kernel": "6.8"}

    listed = json.loads(perf(memory, "baseline", "list", "--format", "json").stdout)["baselines"]
    assert [(x["scenario"], x["fingerprint"], x["baseline_runs"], x["history_runs"])
            for x in listed] == [("demo_perf", FP, 3, 3)]

    same = perf(memory, "baseline", "diff", "--from-report",
                str(report(tmp_path / "same.json", "run-same", seed=9)), "--fingerprint", FP)
    assert same.exit_code == 0, same.stdout + same.stderr
    assert f"demo_perf vs its baseline on {FP} (3 run(s)):" in same.stdout
    assert "✓ latency:SELECT items p95" in same.stdout
    assert "confidence it got worse" in same.stdout

    slow = perf(memory, "baseline", "diff", "--from-report",
                str(report(tmp_path / "slow.json", "run-slow", seed=10, db_ms=25.0)),
                "--fingerprint", FP, "--format", "json")
    assert slow.exit_code == 1
    [d] = json.loads(slow.stdout)["diffs"]
    verdicts = {v["metric"]: v for v in d["verdicts"]}
    assert verdicts["latency:SELECT items"]["fails"]
    assert verdicts["latency:SELECT items"]["effect_pct"] > 100
    assert d["baseline_runs"] == 3
    # diff stores nothing
    history = json.loads(perf(memory, "baseline", "list", "--format", "json").stdout)["baselines"]
    assert history[0]["history_runs"] == 3


def test_diff_of_a_report_uses_the_thresholds_of_its_test_file(
        memory: Path, tmp_path: Path) -> None:
    for i in range(3):
        perf(memory, "baseline", "save", "--from-report",
             str(report(tmp_path / f"r{i}.json", f"run-{i}", seed=i)), "--fingerprint", FP)
    lenient = tmp_path / "demo.clnrm.toml"
    lenient.write_text('[meta]\nname = "demo_perf"\n[[steps]]\nname = "s"\n'
                       'command = ["true"]\n[performance]\n'
                       'p95_latency_increase_max_percent = 1000\n', encoding="utf-8")
    slow = report(tmp_path / "slow.json", "run-slow", file=str(lenient), seed=10, db_ms=15.0)
    judged = perf(memory, "baseline", "diff", "--from-report", str(slow), "--fingerprint", FP,
                  "--format", "json")
    assert judged.exit_code == 0, judged.stdout
    [d] = json.loads(judged.stdout)["diffs"]
    db = {v["metric"]: v for v in d["verdicts"]}["latency:SELECT items"]
    assert db["significant"] and not db["regressed"] and db["allowed_pct"] == 1000


def test_diff_without_a_baseline_names_the_fingerprints_that_have_one(
        memory: Path, tmp_path: Path) -> None:
    perf(memory, "baseline", "save", "--from-report",
         str(report(tmp_path / "r.json", "run-a", seed=1)), "--fingerprint", FP)
    other = perf(memory, "baseline", "diff", "--from-report",
                 str(report(tmp_path / "o.json", "run-b", seed=2)), "--fingerprint", OTHER_FP)
    assert other.exit_code == 2
    assert f"error: no baseline for demo_perf on {OTHER_FP}" in other.stderr
    assert f"demo_perf has measurements on: {FP} (1 baseline run); pass --fingerprint KEY" \
        in other.stderr


def test_save_replace_starts_a_new_baseline_and_forget_removes_it(
        memory: Path, tmp_path: Path) -> None:
    for i in range(2):
        perf(memory, "baseline", "save", "--from-report",
             str(report(tmp_path / f"r{i}.json", f"run-{i}", seed=i)), "--fingerprint", FP)
    fresh = perf(memory, "baseline", "save", "--replace", "--from-report",
                 str(report(tmp_path / "new.json", "run-new", seed=5, db_ms=9.0)),
                 "--fingerprint", FP)
    assert fresh.exit_code == 0, fresh.stderr
    assert "the baseline now has 1 run(s)" in fresh.stdout
    from clnrm.memory import open_memory

    with open_memory(memory) as store:
        runs = BaselineStore(store).runs("demo_perf", FP)
    assert [(r.run_id, r.baseline) for r in runs] == [
        ("run-0", False), ("run-1", False), ("run-new", True)]
    gone = perf(memory, "baseline", "forget", "demo_perf", "--fingerprint", FP)
    assert gone.exit_code == 0 and f"forgot 3 run(s) of demo_perf on {FP}" in gone.stdout
    listed = perf(memory, "baseline", "list", "--format", "json")
    assert json.loads(listed.stdout)["baselines"] == []


def test_bad_inputs_are_one_clear_error(memory: Path, tmp_path: Path) -> None:
    bad_key = perf(memory, "baseline", "show", "demo_perf", "--fingerprint", "fast-machine")
    assert bad_key.exit_code == 2
    assert "'fast-machine' is not a fingerprint key" in bad_key.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{}", encoding="utf-8")
    not_report = perf(memory, "baseline", "diff", "--from-report", str(junk),
                      "--fingerprint", FP)
    assert not_report.exit_code == 2
    assert "not a JSON report of `clnrm run --report-json`" in not_report.stderr
    nothing = perf(memory, "baseline", "diff")
    assert nothing.exit_code == 2
    assert "give test files to run, or --from-report REPORT.json" in nothing.stderr


def test_main_cli_delegates_perf(tmp_path: Path) -> None:
    done = run_cli("perf", "baseline", "list", "--format", "json",
                   env={"CLNRM_MEMORY": str(tmp_path / "memory")}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["baselines"] == []
    helped = run_cli("--help", timeout=60)
    assert "perf" in helped.stdout
