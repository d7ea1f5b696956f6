"""One installable namespace: the wheel's only top-level package is ``clnrm``.

The repository keeps ``agents/``, ``memory/`` and ``ray_cluster/`` at its top, but
they install as ``clnrm.agents``, ``clnrm.memory`` and ``clnrm.swarm`` (setuptools
``package-dir``).  Bare top-level names broke users: ``agents`` collides with the
openai-agents distribution, and a user's ``memory.py`` or ``memory/`` folder in the
working directory shadowed ours (Ray workers imported it too).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

MAPPED = {"clnrm.agents": "agents", "clnrm.memory": "memory", "clnrm.swarm": "ray_cluster"}


def _setuptools() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]  # type: ignore[no-any-return]


def test_package_dir_maps_the_three_top_level_folders_into_clnrm() -> None:
    assert _setuptools()["package-dir"] == {"clnrm": "clnrm", **MAPPED}


def test_packages_list_covers_every_folder_with_an_init() -> None:
    # A new subpackage left out of the explicit list would be missing from the wheel
    # while every test in the checkout still passes; this is where that shows.
    config = _setuptools()
    found = set()
    for package, folder in config["package-dir"].items():  # type: ignore[union-attr]
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            if "__pycache__" in parts or not all(p.isidentifier() for p in parts):
                continue  # not importable (images/demo-app/...): shipped as package data
            found.add(".".join((package, *parts)))
    assert sorted(found) == sorted(config["packages"])  # type: ignore[arg-type]


def test_the_yaml_beside_the_swarm_is_package_data() -> None:
    shipped = _setuptools()["package-data"]["clnrm.swarm"]  # type: ignore[index]
    assert sorted(p.name for p in (REPO / "ray_cluster").glob("*.yaml")) == [
        "cluster.yaml", "kuberay-raycluster.yaml"]
    assert shipped == ["*.yaml"]


def test_folders_and_modules_named_like_ours_in_the_cwd_are_never_imported(
        tmp_path: Path) -> None:
    # A user's project with memory/, agents/ and ray_cluster/ folders and a memory.py:
    # `python -m` puts the cwd first on sys.path, so a bare import would pick them up.
    (tmp_path / "memory").mkdir()
    (tmp_path / "ray_cluster").mkdir()
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "__init__.py").write_text("raise ImportError('user agents/')\n")
    (tmp_path / "memory.py").write_text("raise ImportError('user memory.py')\n")
    stats = subprocess.run([sys.executable, "-m", "clnrm", "memory", "stats", "--memory",
                            str(tmp_path / "store"), "--format", "json"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert stats.returncode == 0, stats.stderr
    assert "records" in stats.stdout or "total" in stats.stdout, stats.stdout
    code = ("import json, sys, clnrm.memory, clnrm.agents, clnrm.swarm, clnrm.swarm.cli, "
            "clnrm.agents.negotiation; print(json.dumps({'bare': sorted(set(sys.modules) & "
            "{'memory', 'agents', 'ray_cluster'}), 'files': [m.__file__ for m in "
            "(clnrm.memory, clnrm.agents, clnrm.swarm)]}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["bare"] == []
    assert not any(f.startswith(str(tmp_path)) for f in seen["files"]), seen["files"]


def test_an_editable_install_maps_the_namespace_onto_the_repository_folders() -> None:
    import clnrm.agents
    import clnrm.memory
    import clnrm.swarm  # binds clnrm too

    if not Path(clnrm.__file__).is_relative_to(REPO):
        pytest.skip("clnrm is installed from a wheel here, not editable")
    for module, folder in ((clnrm.agents, "agents"), (clnrm.memory, "memory"),
                           (clnrm.swarm, "ray_cluster")):
        assert Path(module.__file__) == REPO / folder / "__init__.py"


@pytest.mark.timeout(900)
def test_the_wheel_installs_clnrm_as_its_only_top_level_package(tmp_path: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "site", "*.egg-info", "__pycache__", ".*_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(source)], capture_output=True,
                           text=True, timeout=840)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("clnrm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"clnrm"}
    for init in ("clnrm/memory/__init__.py", "clnrm/agents/__init__.py",
                 "clnrm/swarm/__init__.py", "clnrm/swarm/__main__.py",
                 "clnrm/agents/negotiation.py", "clnrm/memory/cli.py",
                 "clnrm/swarm/cluster.yaml", "clnrm/swarm/kuberay-raycluster.yaml",
                 "clnrm/chaos/faults/__init__.py", "clnrm/reports/__init__.py"):
        assert init in names, init
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["clnrm"]
