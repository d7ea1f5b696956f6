"""``clnrm doctor``: each check's verdict and fix, the exit code, and the JSON document.

The engine client is the doctor's collaborator, so most tests hand it a small fake
engine; one test asks the real engine of this machine through the CLI.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker.errors
import pytest

import clnrm.images
from clnrm import doctor
from clnrm.doctor import CheckStatus, DoctorReport, diagnose
from clnrm.images import HASH_LABEL, ImageSpec, RecipeContext, content_hash

CLI = [sys.executable, "-m", "clnrm"]


class StubRecipe:
    failure_hint = "stub"

    def __init__(self, text: str = "v1") -> None:
        self.text = text

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        return {"Dockerfile": self.text}

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        raise AssertionError("doctor must never build")


class FakeImage:
    def __init__(self, ident: str, labels: dict[str, str]) -> None:
        self.id, self.labels = ident, labels


class FakeEngine:
    """Answers version/info like Docker 26 on cgroup v2 and holds the given images."""

    def __init__(self, images: dict[str, FakeImage], info: dict[str, Any] | None = None) -> None:
        self._images = images
        self._info = info or {"CgroupVersion": "2", "CgroupDriver": "systemd"}
        self.images = self
        self.api = type("Api", (), {"base_url": "http+docker://localhost"})()

    def version(self) -> dict[str, str]:
        return {"Version": "26.1.5", "ApiVersion": "1.45", "Os": "linux", "Arch": "amd64"}

    def info(self) -> dict[str, Any]:
        return self._info

    def get(self, ref: str) -> FakeImage:
        if ref not in self._images:
            raise docker.errors.ImageNotFound(ref)
        return self._images[ref]


def _spec(name: str, text: str = "v1") -> ImageSpec:
    return ImageSpec(name=name, tag=f"clnrm/{name}:latest", summary=name,
                     recipe=StubRecipe(text))


@pytest.fixture
def catalogue(monkeypatch: pytest.MonkeyPatch) -> dict[str, ImageSpec]:
    specs = {name: _spec(name) for name in ("busybox", "python-otel", "demo-app")}
    monkeypatch.setattr(clnrm.images, "KNOWN_IMAGES", specs)
    return specs


def _built(spec: ImageSpec, text: str = "v1") -> FakeImage:
    ctx = RecipeContext(client=None, spec=spec)
    digest = content_hash(spec, StubRecipe(text).inputs(ctx))
    return FakeImage(f"sha256:{spec.name:0<64}", {HASH_LABEL: digest})


def _by_name(report: DoctorReport) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def test_unreachable_engine_fails_with_a_fix_and_skips_what_needs_it(
        catalogue: dict[str, ImageSpec]) -> None:
    def refuse() -> Any:
        raise ConnectionRefusedError("connection refused: /var/run/docker.sock")

    report = diagnose(refuse)
    checks = _by_name(report)
    assert checks["engine"].status is CheckStatus.FAIL and checks["engine"].required
    assert "connection refused" in checks["engine"].summary
    assert "Docker" in (checks["engine"].fix or "") and ".ci/" not in (checks["engine"].fix or "")
    assert checks["cgroup"].status is CheckStatus.SKIP
    assert checks["image busybox"].status is CheckStatus.SKIP
    assert not report.ok and report.exit_code == 1


def test_all_present_and_current_is_ready(catalogue: dict[str, ImageSpec]) -> None:
    engine = FakeEngine({spec.tag: _built(spec) for spec in catalogue.values()})
    report = diagnose(lambda: engine)
    checks = _by_name(report)
    assert checks["engine"].summary.startswith("Docker 26.1.5 (API 1.45), linux/amd64")
    assert checks["cgroup"].summary == "cgroup v2 (systemd driver)"
    for name in catalogue:
        assert checks[f"image {name}"].status is CheckStatus.OK, checks[f"image {name}"]
    assert report.ok and report.exit_code == 0


def test_missing_required_image_fails_missing_demo_image_warns(
        catalogue: dict[str, ImageSpec]) -> None:
    engine = FakeEngine({catalogue["python-otel"].tag: _built(catalogue["python-otel"])})
    report = diagnose(lambda: engine)
    checks = _by_name(report)
    assert checks["image busybox"].status is CheckStatus.FAIL
    assert checks["image busybox"].fix == "clnrm images build busybox"
    assert checks["image demo-app"].status is CheckStatus.WARN
    assert report.exit_code == 1


def test_image_from_an_older_recipe_is_a_warning_not_a_failure(
        catalogue: dict[str, ImageSpec]) -> None:
    images = {spec.tag: _built(spec) for spec in catalogue.values()}
    images[catalogue["busybox"].tag] = _built(catalogue["busybox"], text="v0")
    report = diagnose(lambda: FakeEngine(images))
    busybox = _by_name(report)["image busybox"]
    assert busybox.status is CheckStatus.WARN and "older recipe" in busybox.summary
    assert busybox.fix == "clnrm images build busybox"
    assert report.exit_code == 0


def test_optional_parts_missing_only_warn(catalogue: dict[str, ImageSpec],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from clnrm import extras

    monkeypatch.setitem(extras.EXTRAS, "memory", ("clnrm_absent_chromadb",))
    monkeypatch.setitem(extras.EXTRAS, "swarm", ("clnrm_absent_ray",))
    monkeypatch.setattr(doctor, "_which", lambda tool: None)
    engine = FakeEngine({spec.tag: _built(spec) for spec in catalogue.values()})
    report = diagnose(lambda: engine)
    checks = _by_name(report)
    assert checks["memory"].status is CheckStatus.WARN
    assert checks["memory"].fix == "pip install 'clnrm[memory]'"
    assert checks["ray"].status is CheckStatus.WARN
    assert checks["ray"].fix == "pip install 'clnrm[swarm]'"
    assert checks["network faults"].status is CheckStatus.WARN
    assert "util-linux" in (checks["network faults"].fix or "")
    assert report.exit_code == 0


def test_disk_below_the_floor_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = type("Usage", (), {"free": doctor.DISK_FAIL_BYTES - 1})()
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: usage)
    check = doctor.check_disk({"DockerRootDir": str(tmp_path)})
    assert check.status is CheckStatus.FAIL and check.required
    assert str(tmp_path) in check.summary
    usage.free = doctor.DISK_WARN_BYTES - 1
    assert doctor.check_disk({"DockerRootDir": str(tmp_path)}).status is CheckStatus.WARN


def test_memory_store_is_read_without_starting_chroma(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("CLNRM_MEMORY", str(tmp_path / "store"))
    assert "not created yet" in doctor.check_memory().summary
    (tmp_path / "store" / "chroma").mkdir(parents=True)
    database = tmp_path / "store" / "chroma" / "chroma.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO embeddings VALUES (?)", [(1,), (2,), (3,)])
    check = doctor.check_memory()
    assert check.status is CheckStatus.OK and "3 records" in check.summary
    database.write_bytes(b"not a database" * 100)
    broken = doctor.check_memory()
    assert broken.status is CheckStatus.WARN and "clnrm memory check" in (broken.fix or "")


def test_report_round_trips_through_json(catalogue: dict[str, ImageSpec]) -> None:
    engine = FakeEngine({spec.tag: _built(spec) for spec in catalogue.values()})
    report = diagnose(lambda: engine)
    document = json.loads(report.model_dump_json())
    assert document["ok"] is True and document["clnrm_version"]
    again = DoctorReport.model_validate({k: v for k, v in document.items() if k != "ok"})
    assert again.checks == report.checks


def test_help_does_not_import_the_doctor_or_docker() -> None:
    code = ("import sys; sys.argv = ['clnrm', '--help']\nfrom clnrm.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', 'docker' in sys.modules, 'clnrm.doctor' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "doctor" in res.stdout
    assert res.stdout.strip().endswith("LOADED False False"), res.stdout[-300:]


@pytest.mark.docker
def test_doctor_json_on_this_machine() -> None:
    res = subprocess.run([*CLI, "doctor", "--format", "json"], capture_output=True, text=True,
                         timeout=300)
    document = json.loads(res.stdout)
    checks = {c["name"]: c for c in document["checks"]}
    assert checks["engine"]["status"] == "ok"
    assert checks["image busybox"]["status"] in ("ok", "warn")
    assert res.returncode == (0 if document["ok"] else 1)
    for c in document["checks"]:
        assert c["status"] == "ok" or c["fix"] or c["status"] == "skip", c
