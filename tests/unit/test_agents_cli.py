"""``clnrm swarm`` before any agent exists: input is checked first, Ray is never started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def swarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clnrm.swarm", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, "RAY_ADDRESS": ""})


def test_bad_file_exits_2_with_its_location_before_ray_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.clnrm.toml"
    bad.write_text('[meta]\nname = "bad"\n\n[[steps]]\nname = "s"\ncommand = 3\n')
    out = swarm("run", str(bad), "--memory", str(tmp_path / "memory"))
    assert out.returncode == 2
    assert f"{bad}:6" in out.stderr and "nothing was run" in out.stderr
    assert not (tmp_path / "memory").exists()  # neither memory nor Ray was touched


def test_no_test_files_is_bad_input(tmp_path: Path) -> None:
    out = swarm("run", str(tmp_path))
    assert out.returncode == 2
    assert "no test files" in out.stderr.lower()


def test_mounting_the_swarm_app_imports_only_typer() -> None:
    code = ("import sys, clnrm.swarm.cli; "
            "print(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules} & "
            "{'pydantic', 'clnrm.memory', 'clnrm.agents', 'structlog', 'ray', 'chromadb'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
