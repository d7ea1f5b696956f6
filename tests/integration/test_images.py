"""clnrm's local images, built for real on the local engine: cached by hash, runnable, never pulled.

The first build on a fresh machine takes about a minute (debootstrap + apt in the
python-otel build); every later run finds the images by their content-hash label.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from clnrm.errors import BackendError, ImageMissingError
from clnrm.images import (
    BUSYBOX_IMAGE,
    DEBIAN_IMAGE,
    HASH_LABEL,
    IMAGE_LABEL,
    KNOWN_IMAGES,
    PYTHON_IMAGE,
    ImageBuildResult,
    build_images,
    ensure_image,
)
from clnrm.images._busybox import is_static_elf
from clnrm.images._mirror import (
    DEFAULT_MIRROR,
    choose_mirror,
    parse_deb822_sources,
    parse_one_line_sources,
)

pytestmark = pytest.mark.docker

TEST_LABEL = {"clnrm.test": "test_images"}


@pytest.fixture(scope="module")
def first_build(docker_client: Any) -> list[ImageBuildResult]:
    """Every known image, built (or found current) once for this module."""
    events: list[tuple[str, str]] = []
    results = build_images(docker_client, on_event=lambda name, msg: events.append((name, msg)))
    assert {name for name, _ in events} == set(KNOWN_IMAGES)
    return results


def run_in(client: Any, image: str, command: list[str]) -> str:
    """Run ``command`` in a throwaway container of ``image``; return its stdout."""
    output = client.containers.run(
        image,
        command,
        remove=True,
        labels=TEST_LABEL,
        network_mode="none",
        stdout=True,
        stderr=False,
    )
    return bytes(output).decode()


@pytest.mark.timeout(1800)
def test_build_images_builds_all_in_dependency_order(
    first_build: list[ImageBuildResult], docker_client: Any
) -> None:
    assert [r.name for r in first_build] == ["busybox", "debian", "python-otel",
                                             "demo-redis", "demo-postgres", "demo-app"]
    assert [r.tag for r in first_build][:3] == [BUSYBOX_IMAGE, DEBIAN_IMAGE, PYTHON_IMAGE]
    for result in first_build:
        labels = docker_client.images.get(result.tag).labels
        assert labels[IMAGE_LABEL] == "1"
        assert labels[HASH_LABEL] == result.content_hash


def test_second_build_is_cached_and_hash_label_matches(
    first_build: list[ImageBuildResult], docker_client: Any
) -> None:
    again = build_images(docker_client)

    assert all(r.cached for r in again), [(r.name, r.cached) for r in again]
    assert [r.image_id for r in again] == [r.image_id for r in first_build]
    for result in again:
        image = docker_client.images.get(result.tag)
        assert image.id == result.image_id
        assert image.labels[HASH_LABEL] == result.content_hash
        assert result.seconds < 10


def test_building_python_otel_alone_brings_debian_first(
    first_build: list[ImageBuildResult], docker_client: Any
) -> None:
    results = build_images(docker_client, ["python-otel"])

    assert [(r.name, r.cached) for r in results] == [("debian", True), ("python-otel", True)]


def test_busybox_image_runs_echo_and_knows_nobody(
    first_build: list[ImageBuildResult], docker_client: Any
) -> None:
    assert run_in(docker_client, BUSYBOX_IMAGE, ["echo", "hello from busybox"]) == (
        "hello from busybox\n"
    )
    who = run_in(docker_client, BUSYBOX_IMAGE, ["sh", "-c", "id nobody; test -d /tmp && echo tmp"])
    assert who.split("\n")[:2] == [
        "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)",
        "tmp",
    ]


def test_debian_image_is_bookworm(first_build: list[ImageBuildResult], docker_client: Any) -> None:
    version = run_in(docker_client, DEBIAN_IMAGE, ["cat", "/etc/debian_version"])

    assert version.startswith("12."), version


def test_python_image_imports_opentelemetry_sdk(
    first_build: list[ImageBuildResult], docker_client: Any
) -> None:
    out = run_in(
        docker_client, PYTHON_IMAGE, ["python3", "-c", "import opentelemetry.sdk; print(1)"]
    )

    assert out.strip() == "1"


def test_ensure_image_returns_for_present_image(
    first_build: list[ImageBuildResult], docker_client: Any
) -> None:
    ensure_image(docker_client, BUSYBOX_IMAGE)
    ensure_image(docker_client, "clnrm/busybox")  # ":latest" implied, as docker does


def test_ensure_image_on_missing_foreign_image_says_never_pulls(docker_client: Any) -> None:
    missing = f"alpine:clnrm-absent-{uuid.uuid4().hex[:8]}"

    with pytest.raises(ImageMissingError) as caught:
        ensure_image(docker_client, missing)

    assert caught.value.image == missing
    assert "clnrm never pulls" in str(caught.value)
    assert "docker load" in (caught.value.hint or "")
    assert f"--image-map {missing}=clnrm/busybox:latest" in (caught.value.hint or "")


def test_ensure_image_on_missing_clnrm_image_names_build_command(docker_client: Any) -> None:
    with pytest.raises(ImageMissingError) as caught:
        ensure_image(docker_client, "clnrm/no-such-image:latest")

    assert "`clnrm images build`" in (caught.value.hint or "")


def test_missing_known_image_hint_names_its_short_name() -> None:
    from clnrm.images import missing_image_hint

    assert "`clnrm images build python-otel`" in missing_image_hint(PYTHON_IMAGE)
    assert "`clnrm images build busybox`" in missing_image_hint("clnrm/busybox")


@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap runs only as root")
def test_failed_debootstrap_raises_backend_error_with_log_tail(
    first_build: list[ImageBuildResult], docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = docker_client.images.get(DEBIAN_IMAGE).id
    scratch_before = set(Path(tempfile.gettempdir()).glob("clnrm-debian-*"))
    # Port 9 on loopback refuses at once: debootstrap fails fetching the Release file.
    monkeypatch.setenv("CLNRM_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")

    with pytest.raises(BackendError) as caught:
        build_images(docker_client, ["debian"])

    message = str(caught.value)
    assert "debootstrap of bookworm from http://127.0.0.1:9/debian failed" in message
    assert "CLNRM_DEBIAN_MIRROR" in (caught.value.hint or "")
    assert docker_client.images.get(DEBIAN_IMAGE).id == before
    assert set(Path(tempfile.gettempdir()).glob("clnrm-debian-*")) <= scratch_before


def test_unreachable_pypi_raises_backend_error_naming_the_wheel_cache(
    first_build: list[ImageBuildResult],
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    before = docker_client.images.get(PYTHON_IMAGE).id
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # empty wheel cache
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_RETRIES", "0")

    with pytest.raises(BackendError) as caught:
        build_images(docker_client, ["python-otel"], force=True)

    assert "downloading wheels for clnrm/python-otel failed" in str(caught.value)
    assert "PyPI must be reachable" in (caught.value.hint or "")
    assert str(tmp_path / "clnrm" / "wheels") in (caught.value.hint or "")
    assert docker_client.images.get(PYTHON_IMAGE).id == before


def test_images_package_imports_without_docker() -> None:
    code = "import sys, clnrm.images; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"


def test_mirror_comes_from_host_style_apt_sources() -> None:
    deb822 = parse_deb822_sources(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    one_line = parse_one_line_sources(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://other.example/debian bookworm main contrib\n"
    )

    assert choose_mirror(deb822, env={}) == "http://mirror.example/debian"
    assert choose_mirror(one_line, env={}) == "https://other.example/debian"
    assert choose_mirror(deb822[1:], env={}) == DEFAULT_MIRROR  # security only: not usable
    assert (
        choose_mirror(deb822, env={"CLNRM_DEBIAN_MIRROR": "http://x/debian/"}) == "http://x/debian"
    )


def test_host_busybox_is_static_and_python_is_not() -> None:
    assert is_static_elf(Path("/bin/busybox").resolve())
    assert not is_static_elf(Path(sys.executable).resolve())
