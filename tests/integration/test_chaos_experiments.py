"""The experiments in scenarios/chaos/: resilience patterns pass, switched off they fail.

Each positive experiment must pass; each one in negative/ must fail on exactly the
expectations its ``# expect-fail:`` line names (so it fails for the right reason,
not because something else broke).  The interrupt tests check the rollback promise
from outside: SIGTERM mid-fault leaves nothing applied and nothing behind; after a
SIGKILL the fault is still applied until ``clnrm gc`` undoes it from the journal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, assert_run_gone

pytestmark = pytest.mark.usefixtures("local_images")

CHAOS = REPO / "scenarios" / "chaos"
POSITIVE = sorted(CHAOS.glob("*.clnrm.toml"))
NEGATIVE = sorted((CHAOS / "negative").glob("*.clnrm.toml"))


def expected_failures(path: Path) -> set[str]:
    match = re.search(r"^# expect-fail: (.+)$", path.read_text(), re.M)
    assert match, f"{path} has no '# expect-fail:' line"
    return {name.strip() for name in match.group(1).split(",")}


def chaos_run(tmp_path: Path, *files: Path, extra: tuple[str, ...] = ()) -> tuple[int, Any]:
    env = {**os.environ, "CLNRM_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "clnrm", "chaos", "run", *map(str, files),
                           "--format", "json", "--artifacts", str(tmp_path / "runs"), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_there_are_experiments_both_ways() -> None:
    assert len(POSITIVE) >= 2 and len(NEGATIVE) >= 2


def test_resilience_patterns_hold_under_their_faults(tmp_path: Path, docker_client: Any) -> None:
    code, report = chaos_run(tmp_path, *POSITIVE, extra=("--report-html",
                                                         str(tmp_path / "chaos.html")))
    problems = {t["name"]: t["message"] for t in report["tests"] if t["outcome"] != "passed"}
    assert code == 0 and not problems, problems
    for test in report["tests"]:
        chaos = test["chaos"]
        applied = [e for e in chaos["timeline"] if e["injected_s"] is not None]
        assert applied and all(e["rolled_back_s"] is not None and not e["error"]
                               for e in applied), chaos["timeline"]
        assert [c["phase"] for c in chaos["steady_state"]] == ["before", "after"]
        assert chaos["probes"] and all(p["samples"] for p in chaos["probes"])
    assert_run_gone(docker_client, report["run_id"])
    html = (tmp_path / "chaos.html").read_text()
    assert 'class="chaos-timeline"' in html and "freeze_db#1" in html
    assert not list((tmp_path / "state" / "chaos").glob("*.jsonl"))


def test_switched_off_they_fail_on_exactly_the_expectations_they_name(
        tmp_path: Path, docker_client: Any) -> None:
    code, report = chaos_run(tmp_path, *NEGATIVE)
    assert code == 1
    assert_run_gone(docker_client, report["run_id"])
    by_file = {Path(t["file"]).name: t for t in report["tests"]}
    for path in NEGATIVE:
        test = by_file[path.name]
        assert test["outcome"] == "failed", test["message"]
        failed = {v["expectation"].split(": ", 1)[0] for v in test["validations"]
                  if v["status"] != "pass"}
        assert failed == expected_failures(path), (path.name, test["message"])
        applied = [e for e in test["chaos"]["timeline"] if e["injected_s"] is not None]
        assert applied and all(e["rolled_back_s"] is not None for e in applied)


def test_a_bad_experiment_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.clnrm.toml"
    text = (CHAOS / "db-pause-fallback.clnrm.toml").read_text().replace(
        'type = "pause"', 'type = "pause"\nfreeze_ms = 3')
    bad.write_text(text)
    line = text.splitlines().index("freeze_ms = 3") + 1
    proc = subprocess.run([sys.executable, "-m", "clnrm", "chaos", "run", str(bad)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"bad.clnrm.toml:{line}: [chaos.faults[0].freeze_ms]" in proc.stderr
    assert "unknown parameter" in proc.stderr
    plain = tmp_path / "plain.clnrm.toml"
    plain.write_text('[meta]\nname = "plain"\n[[steps]]\nname = "s"\ncommand = ["true"]\n')
    proc = subprocess.run([sys.executable, "-m", "clnrm", "chaos", "run", str(plain)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a chaos experiment" in proc.stderr


# -- interrupts ---------------------------------------------------------------------------


def start_paused_run(tmp_path: Path, docker_client: Any) -> tuple[subprocess.Popen[str], str,
                                                                   str]:
    """Start the db-pause experiment; return once the db container is paused."""
    env = {**os.environ, "CLNRM_STATE_DIR": str(tmp_path / "state")}
    exp = tmp_path / "long.clnrm.toml"
    exp.write_text((CHAOS / "db-pause-fallback.clnrm.toml").read_text()
                   .replace('duration = "3s"', 'duration = "60s"')
                   .replace('duration = "6s"', 'duration = "60s"'))
    proc = subprocess.Popen([sys.executable, "-m", "clnrm", "chaos", "run", str(exp)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for c in docker_client.api.containers(filters={"label": "clnrm.service=db",
                                                       "status": "paused"}):
            labels = c["Labels"]
            if labels.get("clnrm.owner", "").split(":")[1:2] == [str(proc.pid)]:
                return proc, labels["clnrm.run"], c["Id"]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the experiment never paused the db")


def test_sigterm_mid_fault_rolls_back_and_leaves_nothing(tmp_path: Path,
                                                         docker_client: Any) -> None:
    proc, run_id, _ = start_paused_run(tmp_path, docker_client)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert_run_gone(docker_client, run_id)
    assert not list((tmp_path / "state" / "chaos").glob("*.jsonl"))


def test_after_sigkill_gc_undoes_the_fault_then_removes_the_run(tmp_path: Path,
                                                                docker_client: Any) -> None:
    proc, run_id, db = start_paused_run(tmp_path, docker_client)
    proc.kill()
    proc.wait(timeout=30)
    assert docker_client.api.inspect_container(db)["State"]["Paused"]  # still applied
    [journal] = (tmp_path / "state" / "chaos").glob("*.jsonl")
    assert run_id in journal.name
    env = {**os.environ, "CLNRM_STATE_DIR": str(tmp_path / "state")}
    gc = subprocess.run([sys.executable, "-m", "clnrm", "gc"], cwd=REPO, capture_output=True,
                        text=True, timeout=120, env=env)
    assert gc.returncode == 0, gc.stderr
    assert f"removed run {run_id}" in gc.stdout
    assert re.search(r"undid pause \S+: unpaused", gc.stdout), gc.stdout
    assert_run_gone(docker_client, run_id)
    assert not journal.exists()
