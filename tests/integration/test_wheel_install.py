"""``pip install clnrm`` works outside the checkout: the wheel alone, no extras, any folder.

The wheel is built from an sdist (``python -m build``, as a release would be), installed
into a fresh venv with its base dependencies only (pip takes them from its cache or the
configured index), and driven from a temporary folder with the checkout nowhere on any
path: ``--help``, ``doctor``, ``init`` then ``validate`` and ``run`` of what init wrote,
``self-test`` from the suite shipped inside the wheel, and a command that needs a missing
extra. One test, because building and installing is the slow part (~2-3 min).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 900
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user with only this venv on PATH (pip's own settings kept)."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith(("PIP_", "DOCKER_")) or k in ("HOME", "LANG", "TMPDIR")}
    return {**keep, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "CLNRM_MEMORY": str(home / "memory"), "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.mark.timeout(2400)
def test_wheel_installs_without_extras_and_runs_anywhere(tmp_path: Path, no_leaks: None,
                                                         local_images: None) -> None:
    dist, venv, project = tmp_path / "dist", tmp_path / "venv", tmp_path / "project"
    project.mkdir()
    built = _run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
                 cwd=tmp_path, env={**os.environ})
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next(dist.glob("clnrm-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path,
         env={**os.environ}).check_returncode()
    installed = _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                      "install", "-q", "--no-compile", str(wheel)], cwd=tmp_path,
                     env={**os.environ})
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = _clean_env(venv, tmp_path)

    def clnrm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run([str(venv / "bin" / "clnrm"), *args], cwd=project, env=env,
                    timeout=timeout)

    where = _run([str(venv / "bin" / "python"), "-c", "import clnrm; print(clnrm.__file__)"],
                 cwd=project, env=env)
    assert str(venv) in where.stdout and str(REPO) not in where.stdout

    help_ = clnrm("--help")
    assert help_.returncode == 0 and "doctor" in help_.stdout and "self-test" in help_.stdout

    doctor = clnrm("doctor", "--format", "json")
    report = json.loads(doctor.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["engine"]["status"] == "ok", checks["engine"]
    assert checks["memory"]["status"] == "warn"
    assert checks["memory"]["fix"] == "pip install 'clnrm[memory]'"
    assert checks["ray"]["fix"] == "pip install 'clnrm[swarm]'"
    assert doctor.returncode == (0 if report["ok"] else 1), doctor.stderr
    assert ".ci/" not in doctor.stdout

    init = clnrm("init", ".")
    assert init.returncode == 0, init.stderr
    assert clnrm("validate", "tests").returncode == 0
    run = clnrm("run", "tests", "--report-json", "report.json")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert json.loads((project / "report.json").read_text())["tests"][0]["outcome"] == "passed"

    selftest = clnrm("self-test", "--format", "json", timeout=900)
    assert selftest.returncode == 0, selftest.stdout[-3000:] + selftest.stderr[-3000:]
    verdicts = json.loads(selftest.stdout)
    if isinstance(verdicts, dict):  # inside the JSON envelope: the one list it carries
        verdicts = next(value for value in verdicts.values() if isinstance(value, list))
    assert len(verdicts) >= 10 and all(v["ok"] for v in verdicts)
    assert all(str(venv) in v["file"] for v in verdicts)  # the suite shipped in the wheel

    stats = clnrm("memory", "stats")
    assert stats.returncode == 2
    assert "Traceback" not in stats.stderr
    assert stats.stderr.strip().splitlines() == [
        "error: clnrm memory needs the optional dependency chromadb: "
        "pip install 'clnrm[memory]'"]
