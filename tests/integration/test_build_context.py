"""Services built from a user's context (``build = {...}``) on the real engine.

Each test builds a tiny context ``FROM clnrm/busybox:latest`` under its own tmp folder
and service name, and removes the images it built, so parallel runs never share a tag.
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm.images._user import BUILD_CONTEXT_LABEL, build_service_images
from clnrm.scenario import load_scenario
from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("local_images", "no_leaks")

DOCKERFILE = """\
ARG BASE=clnrm/busybox:latest
FROM ${BASE}
ARG GREETING=unset
COPY hello.txt /hello.txt
RUN echo "greeting=$GREETING" > /greeting.txt
"""

TEST = """\
[meta]
name = "built_service"

[services.{service}]
build = {{ context = "app", args = {{ GREETING = "{greeting}" }} }}
command = ["sleep", "600"]

[[steps]]
name = "file_and_arg_reach_the_image"
service = "{service}"
command = ["cat", "/hello.txt", "/greeting.txt"]
expected_output_regex = "^{content}\\ngreeting={greeting}$"
"""


@pytest.fixture
def project(tmp_path: Path, docker_client: Any) -> Iterator[tuple[Path, str]]:
    """A test file with a build context beside it; the images built from it go afterwards."""
    service = "app" + secrets.token_hex(3)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "app" / "hello.txt").write_text("hello-v1\n")
    test = tmp_path / "t.clnrm.toml"
    test.write_text(TEST.format(service=service, greeting="hola", content="hello-v1"))
    yield test, service
    context = str((tmp_path / "app").resolve())
    for image in docker_client.images.list(filters={"label": f"{BUILD_CONTEXT_LABEL}={context}"}):
        docker_client.images.remove(image.id, force=True)


def _build(test: Path, client: Any) -> list[str]:
    events: list[str] = []
    build_service_images([load_scenario(test)], client, on_event=lambda t, m: events.append(m))
    return events


def test_built_service_runs_and_second_run_hits_the_cache(project: tuple[Path, str]) -> None:
    test, service = project
    first = run_cli("-v", "run", str(test))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "build.built" in first.stderr and f"clnrm/build-{service}:" in first.stderr
    second = run_cli("-v", "run", str(test))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "build.cached" in second.stderr and "build.built" not in second.stderr


def test_changed_file_rebuilds_and_replaces_the_old_image(
        project: tuple[Path, str], docker_client: Any) -> None:
    test, service = project
    built = _build(test, docker_client)
    assert any(m.startswith(f"{service}: building clnrm/build-{service}:") for m in built)
    assert any("cached" in m for m in _build(test, docker_client))
    old_tag = next(m.split()[2] for m in built if "building" in m)
    (test.parent / "app" / "hello.txt").write_text("hello-v2\n")
    rebuilt = _build(test, docker_client)
    new_tag = next(m.split()[2] for m in rebuilt if "building" in m)
    assert new_tag != old_tag
    assert not docker_client.images.list(name=old_tag), "the replaced build should be gone"
    test.write_text(TEST.format(service=service, greeting="hola", content="hello-v2"))
    res = run_cli("run", str(test))
    assert res.returncode == 0, res.stdout + res.stderr


def test_build_args_reach_the_build_and_are_part_of_the_key(
        project: tuple[Path, str], docker_client: Any) -> None:
    test, service = project
    assert any("building" in m for m in _build(test, docker_client))
    test.write_text(TEST.format(service=service, greeting="bonjour", content="hello-v1"))
    assert any("building" in m for m in _build(test, docker_client))
    res = run_cli("run", str(test))
    assert res.returncode == 0, res.stdout + res.stderr


def test_ignored_file_does_not_rebuild(project: tuple[Path, str], docker_client: Any) -> None:
    test, _ = project
    context = test.parent / "app"
    (context / ".dockerignore").write_text("*.log\nnotes/\n")
    assert any("building" in m for m in _build(test, docker_client))
    (context / "debug.log").write_text("noise")
    (context / "notes").mkdir()
    (context / "notes" / "todo.txt").write_text("noise")
    assert any("cached" in m for m in _build(test, docker_client))


def test_base_image_not_local_is_a_located_error_and_image_map_fixes_it(
        project: tuple[Path, str]) -> None:
    test, _ = project
    dockerfile = test.parent / "app" / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.replace("clnrm/busybox:latest", "alpine:3.19"))
    res = run_cli("run", str(test))
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{dockerfile}:2" in res.stderr and "'alpine:3.19'" in res.stderr
    assert "--image-map alpine:3.19=clnrm/busybox:latest" in res.stderr
    assert "Traceback" not in res.stderr
    mapped = run_cli("run", str(test), "--image-map", "alpine:3.19=clnrm/busybox:latest")
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr


def test_missing_context_is_a_located_error(tmp_path: Path) -> None:
    test = tmp_path / "t.clnrm.toml"
    test.write_text(textwrap.dedent("""\
        [meta]
        name = "no_context"
        [services.app]
        build = "nowhere"
        [[steps]]
        name = "s"
        service = "app"
        command = ["true"]
        """))
    res = run_cli("run", str(test))
    assert res.returncode == 2
    assert "services.app.build.context" in res.stderr and "nowhere" in res.stderr


COMPOSE = """\
services:
  db:
    image: clnrm/busybox:latest
    command: sh -c "sleep 1 && touch /tmp/ready && exec sleep 600"
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 500ms
      retries: 40
  web:
    build:
      context: ./web
      args:
        GREETING: compose
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["18080:8080"]
    environment: [MODE=test]
    restart: always
    depends_on:
      db:
        condition: service_healthy
"""


def test_imported_compose_file_runs_on_docker(tmp_path: Path, docker_client: Any) -> None:
    """A compose file with a build and a healthcheck condition, imported and run as is
    (plus one real step): the build args reach the image, web starts after db is healthy."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(
        'FROM clnrm/busybox:latest\nARG GREETING=unset\n'
        'RUN mkdir /www && echo "hello $GREETING" > /www/index.html\n')
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(COMPOSE)
    out = tmp_path / "app.clnrm.toml"
    try:
        res = run_cli("import", "compose", str(compose), "-o", str(out))
        assert res.returncode == 0, res.stderr
        assert "services.web.restart" in res.stderr
        out.write_text(out.read_text() + textwrap.dedent("""
            [[steps]]
            name = "fetch"
            command = ["wget", "-q", "-O", "-", "http://web:8080/"]
            expected_output_regex = "^hello compose$"
            """))
        run = run_cli("run", str(out), "--format", "json")
        assert run.returncode == 0, run.stdout + run.stderr
        [test] = json.loads(run.stdout)["tests"]
        timeline = {t["service"]: t for t in test["services_timeline"]}
        assert timeline["web"]["depends_on"] == ["db"]
        assert timeline["web"]["start_s"] >= timeline["db"]["ready_s"]
    finally:
        context = str((tmp_path / "web").resolve())
        for image in docker_client.images.list(
                filters={"label": f"{BUILD_CONTEXT_LABEL}={context}"}):
            docker_client.images.remove(image.id, force=True)
