"""A layer, a validator and a fault added by an installed package, with no change to clnrm.

The example plugin (``tests/fixtures/example_plugin``) is pip-installed into a temporary
folder (``--target``: a real ``.dist-info`` with its ``entry_points.txt``), and clnrm runs
in a fresh interpreter with that folder on ``PYTHONPATH``, so the plugin is found through
``importlib.metadata`` exactly like a user's installed plugin.  The same commands without
the folder are the control: nothing of the plugin shows, and its fault is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

PLUGIN = REPO / "tests" / "fixtures" / "example_plugin"

AUDITED = """
    [test.metadata]
    name = "audited"
    tags = ["example-audit"]

    [services.idle]
    plugin = "local_process"
    command = ["sleep", "60"]

    [[steps]]
    name = "hello"
    command = ["echo", "hello"]
    expected_output_regex = "^hello$"

    [[steps]]
    name = "again"
    command = ["echo", "again"]

    [[expect.span]]
    name = "clnrm.step"
"""

NOTED = """
    [test.metadata]
    name = "noted"

    [services.idle]
    plugin = "generic_container"
    image = "clnrm/busybox:latest"
    command = ["sleep", "60"]

    [[steps]]
    name = "hello"
    command = ["echo", "hello"]

    [chaos]
    [[chaos.faults]]
    type = "example-note"
    message = "from the example plugin"
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed into a folder of its own (built from a copy: pip's in-tree
    build would leave egg-info and build/ in the repository)."""
    root = tmp_path_factory.mktemp("example_plugin")
    source = root / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("*.egg-info", "build",
                                                                  "__pycache__"))
    site = root / "site"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(site),
         str(source)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    [entry_points] = site.glob("clnrm_example_plugin-*.dist-info/entry_points.txt")
    assert "example = clnrm_example_plugin" in entry_points.read_text()
    return site


def _clnrm(args: list[str], site: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "clnrm", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _only_test(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout)
    tests = doc["result"]["tests"] if "result" in doc else doc["tests"]
    [test] = tests
    return test  # type: ignore[no-any-return]


def _verdicts(test: dict[str, Any], validator: str) -> list[dict[str, Any]]:
    return [v for v in test["validations"] if v["validator"] == validator]


def test_plugin_layer_hooks_run_in_order_and_its_validator_judges(plugin_site: Path,
                                                                   tmp_path: Path) -> None:
    f = _write(tmp_path, "audited.clnrm.toml", AUDITED)
    res = _clnrm(["run", "--backend", "local", "--format", "json", str(f)], plugin_site,
                 tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    test = _only_test(res.stdout)
    assert test["outcome"] == "passed", test.get("message")
    [audit] = _verdicts(test, "audit")
    assert audit["status"] == "pass", audit
    assert audit["seen"] == ("session, launch:idle, ready, steps, step:hello, step:again, "
                             "end, close")
    [named] = _verdicts(test, "example_named_spans")
    assert named["status"] == "pass" and named["seen"].endswith(" spans, 0 unnamed"), named


def test_without_the_plugin_neither_layer_nor_validator_runs(tmp_path: Path) -> None:
    f = _write(tmp_path, "audited.clnrm.toml", AUDITED)
    res = _clnrm(["run", "--backend", "local", "--format", "json", str(f)], None, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    test = _only_test(res.stdout)
    assert not _verdicts(test, "audit") and not _verdicts(test, "example_named_spans")


def test_plugin_fault_is_in_the_catalog_and_checked_on_load(plugin_site: Path,
                                                            tmp_path: Path) -> None:
    f = _write(tmp_path, "noted.clnrm.toml", NOTED)
    listed = _clnrm(["chaos", "list"], plugin_site, tmp_path)
    assert listed.returncode == 0 and "example-note" in listed.stdout, listed.stderr
    ok = _clnrm(["validate", str(f)], plugin_site, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _write(tmp_path, "bad.clnrm.toml", NOTED.replace("message =", "mesage ="))
    typo = _clnrm(["validate", str(bad)], plugin_site, tmp_path)
    assert typo.returncode == 2 and "mesage" in typo.stdout + typo.stderr
    control = _clnrm(["validate", str(f)], None, tmp_path)
    assert control.returncode == 2
    assert "unknown fault type 'example-note'" in control.stdout + control.stderr


@pytest.mark.docker
def test_plugin_fault_is_injected_and_rolled_back(plugin_site: Path, tmp_path: Path) -> None:
    f = _write(tmp_path, "noted.clnrm.toml", NOTED)
    res = _clnrm(["run", "--backend", "docker", "--format", "json", str(f)], plugin_site,
                 tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    test = _only_test(res.stdout)
    [event] = test["chaos"]["timeline"]
    assert event["type"] == "example-note" and event["error"] is None
    assert event["detail"] == "noted 'from the example plugin'"
    assert event["rollback_detail"] == "note withdrawn"
