"""``clnrm import compose``: a docker-compose file as a first ``.clnrm.toml``.

Compose users start from what they have. What has a clnrm meaning is translated
(``image``, ``build``, ``command``, ``entrypoint``, ``environment``, ``env_file``,
``ports``/``expose``, ``depends_on`` with conditions, ``healthcheck``, bind ``volumes``,
``working_dir``); everything else becomes a TOML comment naming the key plus a warning,
so nothing is dropped silently. Host-mount safety is not bypassed: a sensitive bind is
written as is and the loader refuses it as it would in a hand-written file.

Condition mapping (clnrm starts a dependant when its dependency is *ready*; a service
with a ``health_check`` is ready when it passes, else when it is running):

* ``service_started``: ``depends_on``; if the dependency has a healthcheck clnrm waits
  for it too (stricter than compose; noted in a comment).
* ``service_healthy``: ``depends_on`` plus the dependency's ``health_check``.
* ``service_completed_successfully``: no equivalent (clnrm services are long-running);
  ``depends_on`` plus a warning.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from clnrm.errors import ScenarioError
from clnrm.scenario.durations import parse_duration

_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_DEFAULTED: Final = re.compile(r"\$\{(\w+):?-([^}]*)\}")
_VARIABLE: Final = re.compile(r"\$\{\w+\}|\$[A-Za-z_]\w*")
_CONDITIONS: Final = ("service_started", "service_healthy", "service_completed_successfully")

_IGNORED_WHY: Final = {
    "networks": "clnrm puts each test's services on its own isolated network",
    "container_name": "clnrm names containers per run",
    "restart": "test containers are never restarted",
    "labels": "clnrm labels its containers itself",
    "hostname": "a service is reachable by its service name",
    "profiles": "every service of the file starts",
    "deploy": "no orchestrator: limits go in [limits]",
    "logging": "clnrm collects logs itself",
    "pull_policy": "clnrm never pulls",
}


@dataclass
class ComposeImport:
    """The TOML text written and the warnings to show (each names the compose key)."""

    text: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Service:
    lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def import_compose(path: Path, *, output: Path | None = None) -> ComposeImport:
    """Translate the compose file at ``path``; relative paths are written for ``output``'s folder.

    Raises ``ScenarioError`` (file and line) for YAML that does not parse or has no
    ``services`` mapping.
    """
    document = _load_yaml(path)
    compose_dir = path.resolve().parent
    out_dir = (output or path).resolve().parent
    state = _State(path=path, compose_dir=compose_dir, out_dir=out_dir)
    services = document["services"]
    health = {name: bool(_health_cmd(spec.get("healthcheck")))
              for name, spec in services.items() if isinstance(spec, dict)}
    head = [
        f"# Imported from {path.name} by `clnrm import compose`; edit freely.",
        "# clnrm never pulls: an image that is not local fails the run with a hint; map it",
        "# with `clnrm run --image-map postgres:16=<local image>` or build it (build = ...).",
        "[meta]",
        f"name = {_toml(_test_name(document, path))}",
        f"description = {_toml(f'services of {path.name}')}",
        "",
    ]
    for key in document:
        if key not in ("services", "version", "name") and not str(key).startswith("x-"):
            why = "clnrm creates its own" if key in ("networks", "volumes") else "no equivalent"
            head.append(f"# compose top-level key '{key}' not imported: {why}")
    body: list[str] = []
    for name, spec in services.items():
        if not isinstance(spec, dict):
            raise ScenarioError(f"service '{name}' is not a mapping", file=str(path),
                                key_path=f"services.{name}")
        service = _service(state, str(name), spec, health)
        body += ["", f"[services.{_key(str(name))}]", *service.comments, *service.lines]
    body += ["", *_placeholder_step(services)]
    return ComposeImport(text="\n".join(head + body) + "\n", warnings=state.warnings)


@dataclass
class _State:
    path: Path
    compose_dir: Path
    out_dir: Path
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def warn(self, where: str, message: str) -> str:
        self.warnings.append(f"{self.path}: {where}: {message}")
        return f"# compose {where}: {message}"


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    from clnrm.paths import read_regular_file

    data = read_regular_file(path, limit=16 << 20, what="compose file")
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ScenarioError(f"not valid YAML: {exc.problem}", file=str(path),
                            line=mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"not valid YAML: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text: {exc.reason}", file=str(path)) from None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict) \
            or not document["services"]:
        raise ScenarioError("a compose file needs a 'services' mapping with at least one service",
                            file=str(path), key_path="services")
    return document


def _service(state: _State, name: str, spec: dict[str, Any], health: dict[str, bool]) -> _Service:
    out = _Service()
    where = f"services.{name}"
    handled = {"image", "build", "command", "entrypoint", "environment", "env_file", "ports",
               "expose", "depends_on", "healthcheck", "volumes", "working_dir"}
    if "build" in spec:
        out.lines += _build(state, where, spec["build"])
        if "image" in spec:
            out.comments.append(f"# compose image {spec['image']!r} names the built image; clnrm "
                                "tags builds clnrm/build-<service>:<content hash>")
    elif "image" in spec:
        out.lines.append(f"image = {_toml(str(spec['image']))}")
    for key, target in (("entrypoint", "entrypoint"), ("command", "command")):
        if spec.get(key) is not None:
            out.lines.append(f"{target} = {_toml(_argv(spec[key]))}")
    if spec.get("working_dir"):
        out.lines.append(f"workdir = {_toml(str(spec['working_dir']))}")
    env = _environment(state, where, spec)
    out.comments += state.notes
    state.notes.clear()
    if env:
        out.lines.append(f"env = {_toml(env)}")
    ports = _ports(state, where, [*(spec.get("ports") or []), *(spec.get("expose") or [])])
    if ports:
        out.lines.append(f"ports = {_toml(ports)}")
    volumes = _volumes(state, where, spec.get("volumes") or [], out)
    if volumes:
        out.lines.append(f"volumes = {_toml(volumes)}")
    out.lines += _depends_on(state, where, spec.get("depends_on"), health, out)
    out.lines += _healthcheck(state, where, spec.get("healthcheck"), out)
    for key in spec:
        if key in handled or str(key).startswith("x-"):
            continue
        why = _IGNORED_WHY.get(key)
        if key == "networks":
            out.comments.append(f"# compose {where}.networks ignored: {why}")
        elif why:
            out.comments.append(state.warn(f"{where}.{key}", f"not imported ({why})"))
        else:
            out.comments.append(state.warn(f"{where}.{key}",
                                           "not imported (no clnrm equivalent)"))
    return out


def _build(state: _State, where: str, build: Any) -> list[str]:
    spec = {"context": build} if isinstance(build, str) else dict(build or {})
    context = (state.compose_dir / _expand(state, f"{where}.build", str(spec.get("context", "."))))
    table: dict[str, Any] = {"context": os.path.relpath(context.resolve(), state.out_dir)}
    if spec.get("dockerfile"):
        table["dockerfile"] = str(spec["dockerfile"])
    args = spec.get("args") or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) if "=" in item else (item, None) for item in args)
    kept = {}
    for key, value in args.items():
        if value is None:
            state.warn(f"{where}.build.args.{key}", "has no value (compose reads the host's "
                       "environment); not imported")
        else:
            kept[str(key)] = _expand(state, f"{where}.build.args.{key}", _text(value))
    if kept:
        table["args"] = kept
    if spec.get("target"):
        table["target"] = str(spec["target"])
    lines = [f"build = {_toml(table)}"]
    for key in spec:
        if key not in ("context", "dockerfile", "args", "target"):
            lines.insert(0, state.warn(f"{where}.build.{key}",
                                       "not imported (no clnrm equivalent)"))
    return lines


def _argv(value: Any) -> list[str]:
    """Compose splits a string command like a shell would (no shell runs it)."""
    return shlex.split(value) if isinstance(value, str) else [_text(v) for v in value]


def _environment(state: _State, where: str, spec: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    files = spec.get("env_file") or []
    for entry in [files] if isinstance(files, str | dict) else files:
        name = entry.get("path") if isinstance(entry, dict) else entry
        file = state.compose_dir / str(name)
        if not file.is_file():
            state.warn(f"{where}.env_file", f"{name} not found; its variables are not imported")
            continue
        state.notes.append(f"# compose {where}.env_file {name}: its variables are written "
                           "into env below")
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                env[key.strip()] = value.strip().strip("\"'")
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    for key, value in raw.items():
        if value is None:
            state.warn(f"{where}.environment.{key}", "has no value (compose passes the host's); "
                       "not imported")
            continue
        env[str(key)] = _expand(state, f"{where}.environment.{key}", _text(value))
    return env


def _ports(state: _State, where: str, items: list[Any]) -> list[int]:
    from clnrm.scenario.coerce import container_port

    ports: list[int] = []
    for item in items:
        value = item.get("target") if isinstance(item, dict) else item
        try:
            port = container_port(str(value) if not isinstance(value, int) else value)
        except ValueError:
            state.warn(f"{where}.ports", f"{item!r} not imported (only single ports)")
            continue
        if isinstance(port, int) and port not in ports:
            ports.append(port)
    return ports


def _volumes(state: _State, where: str, items: list[Any], out: _Service) -> list[str]:
    mounts: list[str] = []
    for item in items:
        if isinstance(item, dict):
            if item.get("type", "volume") != "bind":
                out.comments.append(state.warn(f"{where}.volumes", f"{item.get('type')} "
                                    f"{item.get('target')} not imported (containers are fresh)"))
                continue
            source, target, ro = str(item["source"]), str(item["target"]), item.get("read_only")
        else:
            parts = str(item).split(":")
            if len(parts) == 1 or not parts[0].startswith((".", "/", "~")):
                out.comments.append(state.warn(f"{where}.volumes", f"{item!r} not imported: "
                                    "named and anonymous volumes start empty in a test anyway"))
                continue
            source, target, ro = parts[0], parts[1], len(parts) > 2 and parts[2] == "ro"
        host = (state.compose_dir / os.path.expanduser(source)).resolve()
        mounts.append(f"{host}:{target}" + (":ro" if ro else ""))
    return mounts


def _depends_on(state: _State, where: str, value: Any, health: dict[str, bool],
                out: _Service) -> list[str]:
    if not value:
        return []
    table = {name: {"condition": "service_started"} for name in value} \
        if isinstance(value, list) else value
    names = []
    for name, options in table.items():
        condition = (options or {}).get("condition", "service_started")
        names.append(str(name))
        if condition not in _CONDITIONS:
            out.comments.append(state.warn(f"{where}.depends_on.{name}",
                                           f"unknown condition {condition!r}; imported as started"))
        elif condition == "service_healthy" and not health.get(name):
            out.comments.append(state.warn(f"{where}.depends_on.{name}", "service_healthy, but "
                                           f"'{name}' has no healthcheck: waits until it runs"))
        elif condition == "service_healthy":
            out.comments.append(f"# compose {where}.depends_on.{name}: service_healthy, i.e. "
                                f"starts once the health_check of '{name}' passes")
        elif condition == "service_started" and health.get(name):
            out.comments.append(f"# compose {where}.depends_on.{name}: service_started; clnrm "
                                f"also waits for the health_check of '{name}'")
        elif condition == "service_completed_successfully":
            out.comments.append(state.warn(
                f"{where}.depends_on.{name}", "service_completed_successfully has no clnrm "
                f"equivalent: '{where.split('.')[-1]}' starts once '{name}' is running; "
                "run a one-shot job as a [[steps]] entry instead"))
    return [f"depends_on = {_toml(names)}"]


def _health_cmd(check: Any) -> list[str] | str | None:
    if not isinstance(check, dict) or check.get("disable"):
        return None
    test = check.get("test")
    if isinstance(test, str):
        return test  # compose: a string is CMD-SHELL
    if not isinstance(test, list) or not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return " ".join(str(t) for t in test[1:])
    return [str(t) for t in (test[1:] if test[0] == "CMD" else test)]


def _healthcheck(state: _State, where: str, check: Any, out: _Service) -> list[str]:
    cmd = _health_cmd(check)
    if cmd is None:
        if isinstance(check, dict):
            out.comments.append(f"# compose {where}.healthcheck is disabled: none imported")
        return []
    table: dict[str, Any] = {"cmd": cmd}
    for key in ("interval", "timeout"):
        if check.get(key) is not None:
            table[key] = _text(check[key])
    retries = int(check["retries"]) if check.get("retries") is not None else None
    if check.get("start_period") is not None:
        interval = parse_duration(check.get("interval", 1.0))
        extra = math.ceil(parse_duration(check["start_period"]) / max(interval, 0.001))
        retries = (retries if retries is not None else 3) + extra
        out.comments.append(f"# compose {where}.healthcheck.start_period "
                            f"{check['start_period']}: {extra} more retries")
    if retries is not None:
        table["retries"] = retries
    return [f"health_check = {_toml(table)}"]


def _placeholder_step(services: dict[str, Any]) -> list[str]:
    """One step that passes on any images, and an example aimed at the last service with a port."""
    target, port = next(iter(services)), "PORT"
    for name, spec in services.items():
        ports = _ports(_State(Path(), Path(), Path()), "", list(
            (spec.get("ports") or []) + (spec.get("expose") or [])) if isinstance(spec, dict)
            else [])
        if ports:
            target, port = name, str(ports[0])
    example = f'#   command = ["wget", "-q", "-O", "-", "http://{target}:{port}/"]'
    return [
        "# Compose has no steps: this one only shows where yours go. A step without",
        "# `service` runs in clnrm/busybox on the test network and reaches every service by",
        "# name; `service = \"NAME\"` runs it inside that service. For example:",
        example,
        "[[steps]]",
        'name = "placeholder"',
        'command = ["echo", "replace this step with what your test checks"]',
        "",
    ]


def _expand(state: _State, where: str, text: str) -> str:
    """``${VAR:-default}`` becomes its default; other variables stay literal (warned)."""
    text = _DEFAULTED.sub(lambda m: m.group(2), text)
    if _VARIABLE.search(text.replace("$$", "")):
        state.warn(where, f"{text!r} keeps a compose variable literally (not interpolated)")
    return text.replace("$$", "$")


def _test_name(document: dict[str, Any], path: Path) -> str:
    base = str(document.get("name") or path.resolve().parent.name or "compose")
    return re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_").lower() or "compose"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml(value: Any) -> str:
    """A TOML value: JSON's string escapes are valid TOML basic strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):  # TOML also wants DEL escaped, which JSON leaves raw
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")
