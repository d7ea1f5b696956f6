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
    # busybox is built from the Debian image's busybox-static (never the host's binary)
    assert [r.name for r in first_build] == ["debian", "busybox", "python-otel",
                                             "demo-redis", "demo-postgres", "demo-app"]
    assert [r.tag for r in first_build][:3] == [DEBIAN_IMAGE, BUSYBOX_IMAGE, PYTHON_IMAGE]
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


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="this host has no /bin/busybox")
def test_host_busybox_is_static_and_python_is_not() -> None:
    assert is_static_elf(Path("/bin/busybox").resolve())
    assert not is_static_elf(Path(sys.executable).resolve())


def test_missing_image_hint_maps_only_to_an_image_with_the_same_programs() -> None:
    from clnrm.images import missing_image_hint

    assert "`--image-map postgres:16=clnrm/demo-postgres:latest`" in missing_image_hint(
        "postgres:16")
    assert "=clnrm/demo-redis:latest`" in missing_image_hint("docker.io/library/redis:7")
    unknown = missing_image_hint("ghcr.io/acme/api:1.2")
    assert "--image-map" not in unknown and "`build` table" in unknown
    assert "docker pull ghcr.io/acme/api:1.2" in unknown


def _test_spec(name: str, tag: str) -> Any:
    return KNOWN_IMAGES[name].model_copy(update={"tag": tag})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_busybox_is_built_from_debian_without_any_host_file(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clnrm.images._build import _build_one

    # a host without /bin/busybox (macOS, Docker Desktop): nothing may read it
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        assert "busybox" not in str(self) or "clnrm/images" in str(self), self
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    tag = f"clnrm/busybox:test-{uuid.uuid4().hex[:8]}"
    spec = _test_spec("busybox", tag)
    try:
        result, _ = _build_one(docker_client, spec, force=False, sink=lambda n, m: None)
        assert not result.cached
        banner = run_in(docker_client, tag, ["sh", "-c", "busybox | head -1; id -un nobody"])
        assert banner.startswith("BusyBox v1.") and "Debian" in banner and "nobody" in banner
        again, _ = _build_one(docker_client, spec, force=False, sink=lambda n, m: None)
        assert again.cached
    finally:
        _remove_tag(docker_client, tag)


@pytest.mark.timeout(600)
def test_pull_builds_debian_from_the_registry_base_and_later_builds_keep_it(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clnrm.images import _debian
    from clnrm.images._build import _build_one

    # No registry here: a local tag stands in for debian:bookworm-slim, and the engine is
    # told not to pull (what --pull adds is the engine's own pull of that FROM image).
    fake_base = f"clnrm-test/debian-slim:{uuid.uuid4().hex[:8]}"
    docker_client.images.get(DEBIAN_IMAGE).tag(fake_base)
    monkeypatch.setattr(_debian, "REGISTRY_BASE", fake_base)
    real_build_files = _debian.build_files

    def without_engine_pull(ctx: Any, *args: Any, **kwargs: Any) -> str:
        ctx.pull = False
        return real_build_files(ctx, *args, **kwargs)

    monkeypatch.setattr(_debian, "build_files", without_engine_pull)
    tag = f"clnrm/debian:test-{uuid.uuid4().hex[:8]}"
    spec = _test_spec("debian", tag)
    try:
        built, _ = _build_one(docker_client, spec, force=False, sink=lambda n, m: None, pull=True)
        image = docker_client.images.get(tag)
        assert image.labels[_debian.BASE_LABEL] == fake_base
        assert "LANG=C.UTF-8" in image.attrs["Config"]["Env"]
        assert "docker-clean" in run_in(docker_client, tag, ["ls", "/etc/apt/apt.conf.d"])
        # a later plain build (no --pull) keeps the pulled base instead of debootstrapping
        kept, _ = _build_one(docker_client, spec, force=False, sink=lambda n, m: None)
        assert kept.cached and kept.image_id == built.image_id
    finally:
        _remove_tag(docker_client, tag)
        _remove_tag(docker_client, fake_base)


def test_pull_without_a_reachable_registry_is_one_error_with_a_hint(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clnrm.images import _debian
    from clnrm.images._build import _build_one

    monkeypatch.setattr(_debian, "REGISTRY_BASE", "localhost:9/clnrm-absent/debian:1")
    tag = f"clnrm/debian:test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BackendError) as caught:
        _build_one(docker_client, _test_spec("debian", tag), force=False,
                   sink=lambda n, m: None, pull=True)
    assert "docker pull localhost:9/clnrm-absent/debian:1" in (caught.value.hint or "")
    assert not docker_client.api.images(name=tag)


def _remove_tag(client: Any, tag: str) -> None:
    import docker.errors

    try:
        client.images.remove(tag)
    except docker.errors.APIError:
        pass
