"""The pytest plugin: ``*.clnrm.toml`` files become pytest items, only when asked.

Each case runs pytest in a subprocess on a fresh folder, as a user's project
would, and reads the outcome counts from its summary line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.scenario_texts import BROKEN, FAILING, PASSING


def project(tmp_path: Path, ini: str = "", **files: str) -> Path:
    """A folder with a pytest.ini (so pytest looks no further up) and the given test files."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n" + ini, encoding="utf-8")
    for name, body in files.items():
        (tmp_path / f"{name}.clnrm.toml").write_text(textwrap.dedent(body), encoding="utf-8")
    return tmp_path


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=folder, capture_output=True, text=True, timeout=300, env=env)


def counts(res: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Outcome counts from pytest's closing line, e.g. ``1 failed, 1 passed in 0.5s``."""
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    found = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}
    if "errors" in found:
        found["error"] = found.pop("errors")
    return found


def test_local_backend_runs_passing_and_failing_files_as_items(tmp_path: Path) -> None:
    folder = project(tmp_path, ok=PASSING, bad=FAILING)
    res = run_pytest(folder, "--clnrm", str(folder), "--clnrm-backend", "local")
    assert res.returncode == 1, res.stdout + res.stderr
    assert counts(res) == {"passed": 1, "failed": 1}, res.stdout
    out = res.stdout
    assert "FAILED bad.clnrm.toml::exits_three" in out
    assert "clnrm test 'exits_three' FAILED: step 'boom': exit code 3, expected 0" in out
    assert "failing steps:\n  boom: exit code 3, expected 0" in out
    assert "$ sh -c 'echo about-to-fail; echo went-wrong >&2; exit 3'  (exit code 3)" in out
    assert "step boom stdout" in out and "about-to-fail" in out  # output as report sections
    assert "Traceback" not in out


@pytest.mark.usefixtures("local_images", "no_leaks")
def test_docker_backend_runs_files_in_containers(tmp_path: Path) -> None:
    in_container = PASSING.replace('"echo hello-from-step"',
                                   '"test -f /.dockerenv && echo hello-from-step"')
    folder = project(tmp_path, ok=in_container, bad=FAILING)
    res = run_pytest(folder, "--clnrm", str(folder), "--clnrm-backend", "docker", "-v")
    assert counts(res) == {"passed": 1, "failed": 1}, res.stdout + res.stderr
    assert "ok.clnrm.toml::greets PASSED" in res.stdout
    assert "bad.clnrm.toml::exits_three FAILED" in res.stdout


def test_files_are_not_collected_without_opting_in(tmp_path: Path) -> None:
    folder = project(tmp_path, ok=PASSING)
    res = run_pytest(folder, str(folder))
    assert res.returncode == 5 and "no tests ran" in res.stdout, res.stdout


def test_ini_setting_turns_the_plugin_on(tmp_path: Path) -> None:
    folder = project(tmp_path, ini="clnrm = true\n", ok=PASSING)
    res = run_pytest(folder, str(folder), "--clnrm-backend", "local")
    assert res.returncode == 0 and counts(res) == {"passed": 1}, res.stdout


def test_items_are_named_after_the_test_and_marked(tmp_path: Path) -> None:
    folder = project(tmp_path, ok=PASSING, bad=FAILING)
    res = run_pytest(folder, "--clnrm", "--collect-only", "-q", "-m", "clnrm", str(folder))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bad.clnrm.toml::exits_three\nok.clnrm.toml::greets\n" in res.stdout


def test_a_file_that_does_not_load_is_a_located_collection_error(tmp_path: Path) -> None:
    folder = project(tmp_path, ok=PASSING, broken=BROKEN)
    res = run_pytest(folder, "--clnrm", str(folder), "--clnrm-backend", "local")
    assert res.returncode == 2 and counts(res) == {"error": 1}, res.stdout
    assert re.search(r"broken\.clnrm\.toml:8: \[steps\[0\]\.expected_exit_code\] .*zero",
                     res.stdout), res.stdout
    assert "Traceback" not in res.stdout and "clnrm/scenario" not in res.stdout


def test_a_malformed_image_map_is_a_usage_error(tmp_path: Path) -> None:
    folder = project(tmp_path, ok=PASSING)
    res = run_pytest(folder, "--clnrm", "--clnrm-image-map", "alpine", str(folder))
    assert res.returncode == 4, res.stdout + res.stderr
    assert "--clnrm-image-map 'alpine': expected FROM=TO" in res.stderr
