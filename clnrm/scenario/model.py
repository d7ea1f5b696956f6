"""Typed model of a ``.clnrm.toml`` test file.

The model follows upstream clnrm's serde structs (see ``shared/UPSTREAM.md``) so
upstream files load unchanged, and adds the keys upstream documented but never
read (``depends_on``, ``command``, step ``timeout``...) as real, executed fields.
Every model forbids extra keys; the loader turns those errors into warnings
(or errors with ``--strict``) so an unknown key is always reported, never
silently dropped.

RUNNER CONTRACT: the classes and fields marked "runner" below are what the
runner and backends read; keep their names and types stable.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Base for every table: unknown keys are reported by the loader."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class HealthCheck(Model):
    """runner: readiness probe run inside the service container.

    ``cmd`` is exec'd (no shell) until it exits 0, every ``interval`` seconds,
    at most ``retries`` times; each attempt is limited to ``timeout`` seconds.
    """

    cmd: list[str]
    interval: float = 1.0
    timeout: float = 5.0
    retries: int = 30


class Volume(Model):
    host_path: str
    container_path: str
    read_only: bool = False


class ServiceConfig(Model):
    """runner: one ``[services.NAME]`` / ``[service.NAME]`` table."""

    plugin: str = "generic_container"
    image: str | None = None
    command: list[str] | None = None  # runner: replaces the image CMD
    args: list[str] | None = None  # upstream spelling; used as command when command is unset
    entrypoint: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[int] = Field(default_factory=list)  # container ports (never published to host)
    volumes: list[Volume] = Field(default_factory=list)
    health_check: HealthCheck | None = None
    depends_on: list[str] = Field(default_factory=list)
    workdir: str | None = None
    # upstream plugin-specific keys, kept so upstream files load
    username: str | None = None
    password: str | None = None
    strict: bool | None = None
    wait_for_span: str | None = None
    wait_for_span_timeout_secs: int | None = None


class Step(Model):
    """runner: one ``[[steps]]`` entry, exec'd in ``service`` or the default step container."""

    name: str
    command: list[str]  # runner: argv; a TOML string is loaded as ["sh", "-c", string]
    service: str | None = None
    expected_output_regex: str | None = None
    expected_output_regex_not: str | None = None
    expected_exit_code: int = 0
    continue_on_failure: bool = False
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = None  # runner: seconds; TOML accepts 30, "30s", "5m"
    description: str | None = None


class ScenarioBlock(Model):
    """runner: one ``[[scenario]]``: ``run`` (shell string) in ``service``, or nested steps."""

    name: str
    service: str | None = None
    run: str | None = None
    steps: list[Step] = Field(default_factory=list)
    concurrent: bool = False
    timeout_ms: int | None = None
    expected_exit_code: int = 0
    expected_output_regex: str | None = None


class Scenario(Model):
    """runner: a whole test file after rendering and normalisation.

    ``name``/``description``/``timeout`` are resolved from ``[meta]`` or
    ``[test.metadata]``; ``services`` merges ``[services]`` and ``[service]``.
    ``source`` is the file it came from (set by the loader, not from TOML).
    """

    name: str
    description: str | None = None
    timeout: float | None = None  # runner: whole-test limit in seconds
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    scenarios: list[ScenarioBlock] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
