"""``build = {...}`` without an engine: the model, the context hash inputs, FROM rewriting."""

from __future__ import annotations

from pathlib import Path

import pytest

from clnrm.errors import ScenarioError
from clnrm.images._user import UserBuild, context_files, resolve_build, rewrite_dockerfile
from clnrm.scenario import load_scenario, loads_scenario

TEST = """\
[meta]
name = "b"
[services.app]
build = {build}
[[steps]]
name = "s"
service = "app"
command = ["true"]
"""


def _build(tmp_path: Path, dockerfile: str, args: dict[str, str] | None = None) -> UserBuild:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return UserBuild(service="app", test="t", source=None, context=tmp_path,
                     dockerfile=tmp_path / "Dockerfile", args=args or {}, target=None)


def test_build_short_form_is_the_context_and_replaces_image() -> None:
    sc = loads_scenario(TEST.format(build='"./app"'))
    assert sc.services["app"].build.context == "./app"
    assert sc.services["app"].build.dockerfile == "Dockerfile"
    assert sc.services["app"].image is None


def test_build_table_and_image_together_is_refused() -> None:
    with pytest.raises(ScenarioError, match="give either 'image' or 'build'"):
        loads_scenario(TEST.format(build='{ context = "." }\nimage = "x"'))


def test_build_args_are_text() -> None:
    sc = loads_scenario(TEST.format(build='{ context = ".", args = { N = 3, ON = true } }'))
    assert sc.services["app"].build.args == {"N": "3", "ON": "true"}


def test_unknown_build_key_is_reported() -> None:
    with pytest.raises(ScenarioError, match="cache_from"):
        loads_scenario(TEST.format(build='{ context = ".", cache_from = ["x"] }'), strict=True)


def test_dockerignore_excludes_globs_folders_and_negations(tmp_path: Path) -> None:
    for rel in ("Dockerfile", "app.py", "debug.log", "keep.log", "node_modules/x/y.js",
                "src/a.pyc", "src/b.py", ".git/HEAD"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text(
        "# comment\n*.log\n!keep.log\nnode_modules\n**/*.pyc\n/.git/\n")
    assert sorted(context_files(tmp_path)) == [
        ".dockerignore", "Dockerfile", "app.py", "keep.log", "src/b.py"]


def test_context_hash_inputs_change_with_content_and_mode(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo 1")
    first = context_files(tmp_path)
    (tmp_path / "run.sh").chmod(0o755)
    second = context_files(tmp_path)
    (tmp_path / "run.sh").write_text("echo 2")
    assert len({first["run.sh"], second["run.sh"], context_files(tmp_path)["run.sh"]}) == 3


def test_from_lines_substitute_args_skip_stages_and_apply_the_image_map(tmp_path: Path) -> None:
    build = _build(tmp_path, "ARG BASE=python:3.12\nARG TAG\n"
                             "FROM --platform=linux/amd64 ${BASE} AS deps\n"
                             "FROM deps AS test\nFROM scratch\n"
                             "FROM alpine:${TAG:-3.19}\nCOPY --from=deps /x /x\n",
                   args={"TAG": "3.20"})
    text, bases = rewrite_dockerfile(build, {"python:3.12": "clnrm/python-otel:latest"})
    assert bases == [("clnrm/python-otel:latest", 3), ("alpine:3.20", 6)]
    assert "FROM --platform=linux/amd64 clnrm/python-otel:latest AS deps\n" in text
    assert "FROM deps AS test\n" in text and "FROM alpine:${TAG:-3.19}\n" in text


def test_context_and_dockerfile_must_exist(tmp_path: Path) -> None:
    test = tmp_path / "t.clnrm.toml"
    test.write_text(TEST.format(build='{ context = "app", dockerfile = "Dockerfile.dev" }'))
    sc = load_scenario(test)
    with pytest.raises(ScenarioError) as missing:
        resolve_build(sc, "app", sc.services["app"].build)
    assert "services.app.build.context" in str(missing.value)
    (tmp_path / "app").mkdir()
    with pytest.raises(ScenarioError) as no_file:
        resolve_build(sc, "app", sc.services["app"].build)
    assert "services.app.build.dockerfile" in str(no_file.value)
    (tmp_path / "app" / "Dockerfile.dev").write_text("FROM scratch\n")
    resolved = resolve_build(sc, "app", sc.services["app"].build)
    assert resolved.context == tmp_path / "app"
    assert resolved.repository == "clnrm/build-app"


def test_build_on_the_local_backend_is_a_clear_error(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    test = tmp_path / "t.clnrm.toml"
    test.write_text(TEST.format(build='"app"'))
    res = run_cli("run", str(test), "--backend", "local")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "services.app.build" in res.stderr and "--backend docker" in res.stderr
    assert "Traceback" not in res.stderr
