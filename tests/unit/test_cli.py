"""CLI behaviour that needs no engine: fast start, version, clear argument errors."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_missing_path_is_a_clear_error(tmp_path) -> None:
    res = run_cli("run", str(tmp_path / "nope.clnrm.toml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "nope.clnrm.toml" in res.stderr


def test_bad_image_map_is_rejected(tmp_path) -> None:
    f = tmp_path / "t.clnrm.toml"
    f.write_text('[test.metadata]\nname = "t"\n[[steps]]\nname = "s"\ncommand = ["true"]\n')
    res = run_cli("run", str(f), "--backend", "local", "--image-map", "nonsense")
    assert res.returncode == 2 and "expected FROM=TO" in res.stderr


def test_local_backend_run_end_to_end(tmp_path) -> None:
    f = tmp_path / "t.clnrm.toml"
    f.write_text('[test.metadata]\nname = "t"\n[[steps]]\nname = "s"\n'
                 'command = ["echo", "hi"]\nexpected_output_regex = "hi"\n')
    res = run_cli("run", str(f), "--backend", "local", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tests"][0]["outcome"] == "passed"


def test_init_writes_a_valid_test(tmp_path) -> None:
    res = run_cli("init", str(tmp_path))
    assert res.returncode == 0, res.stderr
    target = tmp_path / "tests" / "basic.clnrm.toml"
    assert target.exists()
    assert run_cli("validate", str(target)).returncode == 0
    again = run_cli("init", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
