"""``clnrm import compose``: realistic compose files round-trip into loadable ``.clnrm.toml``.

Each compose file is imported, the output loaded with ``load_scenario`` (the real loader:
it must validate), and its services compared field by field with the compose input.
"""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clnrm.compose_import import import_compose
from clnrm.errors import ScenarioError
from clnrm.scenario import load_scenario
from tests.conftest import run_cli

WEB_DB = """\
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: example
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 2s
      timeout: 3s
      retries: 10
  cache:
    image: redis:7
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
  migrate:
    image: myapp:latest
    command: ["./manage.py", "migrate"]
    depends_on:
      db:
        condition: service_healthy
  web:
    image: myapp:latest
    ports: ["8000:8000"]
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
      migrate:
        condition: service_completed_successfully
"""

BUILD_ARGS = """\
services:
  api:
    build:
      context: ./api
      dockerfile: docker/Dockerfile.prod
      target: runtime
      args:
        PYTHON_VERSION: "3.12"
        GIT_SHA: abc123
    image: registry.example.com/api:dev
  worker:
    build: ./worker
    command: celery -A tasks worker --loglevel=info
  tools:
    build:
      context: .
      args:
        - MODE=ci
        - FROM_HOST
"""

ENV_FORMS = """\
name: envs
services:
  app:
    image: clnrm/busybox:latest
    env_file: app.env
    environment:
      - LOG_LEVEL=debug
      - EMPTY=
      - URL=http://db:5432/x?a=b
      - FROM_SHELL
  db:
    image: clnrm/busybox:latest
    environment:
      PORT: 5432
      VERBOSE: true
      PASSWORD: ${DB_PASSWORD:-changeme}
      TOKEN: ${TOKEN}
      LITERAL: "$$HOME"
"""

COMMANDS = """\
services:
  proxy:
    image: nginx:1.25
    entrypoint: /docker-entrypoint.sh
    command: nginx -g 'daemon off;'
    working_dir: /etc/nginx
    ports:
      - "127.0.0.1:8080:80/tcp"
      - target: 443
        published: 8443
    expose: ["9000"]
    volumes:
      - ./conf:/etc/nginx/conf.d:ro
      - type: bind
        source: ./html
        target: /usr/share/nginx/html
      - cache:/var/cache/nginx
    networks: [front]
    restart: always
    logging:
      driver: json-file
    healthcheck:
      test: curl -f http://localhost/ || exit 1
      start_period: 5s
  sidecar:
    image: clnrm/busybox:latest
    command: ["sh", "-c", "sleep 1000"]
    healthcheck:
      test: ["NONE"]
    depends_on: [proxy]
networks:
  front: {}
"""


def _import(tmp_path: Path, text: str, name: str = "docker-compose.yml") -> tuple[Any, Any, list]:
    compose = tmp_path / name
    compose.write_text(text)
    out = tmp_path / "out.clnrm.toml"
    result = import_compose(compose, output=out)
    out.write_text(result.text)
    return yaml.safe_load(text), load_scenario(out), result.warnings


def _health(check: dict[str, Any]) -> list[str]:
    test = check["test"]
    if isinstance(test, str):
        return ["sh", "-c", test]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    return test[1:]


def _compare_common(compose: dict[str, Any], scenario: Any) -> None:
    """What every round trip must keep: names, images, argv, deps and health commands."""
    assert set(scenario.services) == set(compose["services"])
    for name, spec in compose["services"].items():
        cfg = scenario.services[name]
        if "build" not in spec:
            assert cfg.image == spec["image"]
        if "command" in spec:
            want = spec["command"]
            assert cfg.command == (shlex.split(want) if isinstance(want, str) else want)
        deps = spec.get("depends_on") or []
        assert cfg.depends_on == list(deps)
        check = spec.get("healthcheck")
        if check and check["test"] != ["NONE"]:
            assert cfg.health_check is not None and cfg.health_check.cmd == _health(check)
        else:
            assert cfg.health_check is None


def test_web_db_with_healthcheck_conditions_round_trips(tmp_path: Path) -> None:
    compose, scenario, warnings = _import(tmp_path, WEB_DB)
    _compare_common(compose, scenario)
    db = scenario.services["db"].health_check
    assert (db.interval, db.timeout, db.retries) == (2.0, 3.0, 10)
    assert scenario.services["cache"].health_check.cmd == ["redis-cli", "ping"]
    assert scenario.services["web"].ports == [8000]
    assert scenario.services["db"].env == {"POSTGRES_PASSWORD": "example"}
    # service_completed_successfully has no clnrm meaning: said, not hidden
    assert [w for w in warnings if "service_completed_successfully" in w]
    assert "services.web.depends_on.migrate" in " ".join(warnings)
    text = (tmp_path / "out.clnrm.toml").read_text()
    assert "service_healthy, i.e. starts once the health_check of 'db' passes" in text
    assert "clnrm also waits for the health_check of 'cache'" in text


def test_build_with_args_round_trips(tmp_path: Path) -> None:
    compose, scenario, warnings = _import(tmp_path, BUILD_ARGS)
    _compare_common(compose, scenario)
    api = scenario.services["api"].build
    assert (api.context, api.dockerfile, api.target) == ("api", "docker/Dockerfile.prod",
                                                         "runtime")
    assert api.args == {"PYTHON_VERSION": "3.12", "GIT_SHA": "abc123"}
    assert scenario.services["api"].image is None
    assert scenario.services["worker"].build.context == "worker"
    assert scenario.services["tools"].build.args == {"MODE": "ci"}
    assert any("services.tools.build.args.FROM_HOST" in w for w in warnings)
    assert "names the built image" in (tmp_path / "out.clnrm.toml").read_text()


def test_build_context_is_relative_to_the_output_file(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    compose = tmp_path / "deploy" / "compose.yaml"
    compose.write_text("services:\n  api:\n    build: ../src\n")
    out = tmp_path / "tests" / "api.clnrm.toml"
    out.parent.mkdir()
    out.write_text(import_compose(compose, output=out).text)
    assert load_scenario(out).services["api"].build.context == "../src"


def test_env_as_list_map_and_env_file_round_trips(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("# comment\nexport FROM_FILE=1\nLOG_LEVEL=info\n")
    compose, scenario, warnings = _import(tmp_path, ENV_FORMS)
    _compare_common(compose, scenario)
    assert scenario.name == "envs"
    assert scenario.services["app"].env == {"FROM_FILE": "1", "LOG_LEVEL": "debug", "EMPTY": "",
                                            "URL": "http://db:5432/x?a=b"}
    assert scenario.services["db"].env == {"PORT": "5432", "VERBOSE": "true",
                                           "PASSWORD": "changeme", "TOKEN": "${TOKEN}",
                                           "LITERAL": "$HOME"}
    said = " ".join(warnings)
    assert "environment.FROM_SHELL" in said and "environment.TOKEN" in said
    assert "LITERAL" not in said


def test_commands_ports_volumes_and_unsupported_keys(tmp_path: Path) -> None:
    for folder in ("conf", "html"):
        (tmp_path / folder).mkdir()
    compose, scenario, warnings = _import(tmp_path, COMMANDS)
    _compare_common(compose, scenario)
    proxy = scenario.services["proxy"]
    assert proxy.command == ["nginx", "-g", "daemon off;"]
    assert proxy.entrypoint == ["/docker-entrypoint.sh"]
    assert proxy.workdir == "/etc/nginx"
    assert proxy.ports == [80, 443, 9000]
    assert [(v.host_path, v.container_path, v.read_only) for v in proxy.volumes] == [
        (str(tmp_path / "conf"), "/etc/nginx/conf.d", True),
        (str(tmp_path / "html"), "/usr/share/nginx/html", False)]
    assert proxy.health_check.retries == 3 + 5  # compose's 3, plus start_period 5 s at 1 s
    text = (tmp_path / "out.clnrm.toml").read_text()
    for key in ("restart", "logging", "networks"):
        assert f"# compose services.proxy.{key}" in text
    said = " ".join(warnings)
    assert "services.proxy.restart" in said and "services.proxy.logging" in said
    assert "cache:/var/cache/nginx" in said
    assert "services.proxy.networks" not in said  # ignored by design: a comment, no warning
    assert "# compose top-level key 'networks' not imported" in text


def test_sensitive_bind_mount_is_kept_and_still_refused(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  ci:\n    image: clnrm/busybox:latest\n    volumes:\n"
                       "      - /var/run/docker.sock:/var/run/docker.sock\n")
    out = tmp_path / "ci.clnrm.toml"
    res = run_cli("import", "compose", str(compose), "-o", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "does not validate" in res.stderr and "allow_host_mounts" in res.stderr
    assert "allow_host_mounts" not in out.read_text()


def test_cli_writes_a_file_that_validates_and_warns_on_stderr(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(WEB_DB)
    out = tmp_path / "web.clnrm.toml"
    res = run_cli("import", "compose", str(compose), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "warning:" in res.stderr and "service_completed_successfully" in res.stderr
    assert f"wrote {out}" in res.stdout
    assert run_cli("validate", str(out)).returncode == 0
    again = run_cli("import", "compose", str(compose), "-o", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    printed = run_cli("import", "compose", str(compose))
    assert printed.returncode == 0 and printed.stdout == out.read_text()


@pytest.mark.parametrize(("text", "where"), [
    ("services:\n  web:\n    image: a: b\n", ".yml:3"),
    ("version: '3'\n", "services"),
    ("services:\n  web: just-a-string\n", "services.web"),
])
def test_bad_compose_is_a_located_error(tmp_path: Path, text: str, where: str) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(text)
    with pytest.raises(ScenarioError) as info:
        import_compose(compose)
    assert where in str(info.value)
    res = run_cli("import", "compose", str(compose))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(compose) in res.stderr


def test_missing_compose_file_is_exit_2(tmp_path: Path) -> None:
    res = run_cli("import", "compose", str(tmp_path / "nope.yml"))
    assert res.returncode == 2 and "nope.yml" in res.stderr and "Traceback" not in res.stderr


def test_placeholder_step_is_documented(tmp_path: Path) -> None:
    _, scenario, _ = _import(tmp_path, textwrap.dedent(WEB_DB))
    [step] = scenario.steps
    assert step.name == "placeholder" and step.service is None
    assert "http://web:8000/" in (tmp_path / "out.clnrm.toml").read_text()


# YAML itself folds its extra line breaks (NEL, LS, PS) when dumping: not the writer's to keep
_TEXT = st.text(st.characters(blacklist_categories=("Cs",),
                              blacklist_characters="\x85\u2028\u2029"), max_size=30)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
                           _TEXT.filter(lambda t: "$" not in t), max_size=5),
       command=st.lists(_TEXT, min_size=1, max_size=4))
def test_any_env_and_argv_text_survives_the_toml_writer(tmp_path: Path, env: dict[str, str],
                                                        command: list[str]) -> None:
    compose = {"services": {"app": {"image": "clnrm/busybox:latest", "environment": env,
                                    "command": command}}}
    text = yaml.safe_dump(compose, allow_unicode=True)
    _, scenario, _ = _import(tmp_path, text)
    assert scenario.services["app"].env == env
    assert scenario.services["app"].command == command
