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

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, field_validator, model_validator

from clnrm.scenario.coerce import (
    Command,
    EnvTable,
    Port,
    TextMap,
    health_check_shape,
    otlp_protocol,
    volume_spec,
)
from clnrm.scenario.durations import Duration
from clnrm.scenario.expect import Expect, Regex
from clnrm.scenario.layers import (
    Chaos,
    Intelligence,
    Layers,
    Orchestration,
    Performance,
    SelfHealing,
)
from clnrm.scenario.model_base import Model


def memory_size(value: object) -> object:
    """Compose's memory sizes: bytes as an int, or ``"512m"``, ``"1g"``, ``"64k"``, ``"100b"``."""
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("b") if value.strip().lower()[-2:] in (
            "kb", "mb", "gb") else value.strip().lower()
        units = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
        unit = units.get(text[-1:])
        number = text[:-1] if unit is not None else text
        try:
            return int(float(number) * (unit or 1))
        except ValueError:
            raise ValueError(f"not a memory size: {value!r:.40} (use e.g. 256m, 1g)") from None
    return value


IMAGE_OPTIONAL_PLUGINS: frozenset[str] = frozenset({"network_service", "local_process", "ollama"})
"""Plugins that can run without an ``image`` (they fall back to the default image or none)."""


def _one_spelling(data: Any, *pairs: tuple[str, str]) -> Any:
    """Refuse a table that gives both the canonical key and its accepted alias."""
    if isinstance(data, dict):
        for canonical, alias in pairs:
            if canonical in data and alias in data:
                raise ValueError(f"give either '{canonical}' or '{alias}', not both")
    return data


class HealthCheck(Model):
    """runner: readiness probe run inside the service container.

    ``cmd`` is exec'd (no shell) until it exits 0, every ``interval`` seconds,
    at most ``retries`` times; each attempt is limited to ``timeout`` seconds.
    Docker-compose's spelling (``healthcheck = {command = [...], interval =
    "10s"}``) is accepted; a plain string runs under ``sh -c``.
    """

    cmd: Command = Field(validation_alias=AliasChoices("cmd", "command", "test"))
    interval: Duration = 1.0
    timeout: Duration = 5.0
    retries: int = Field(default=30, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _spelling(cls, data: Any) -> Any:
        return _one_spelling(data, ("cmd", "command"), ("cmd", "test"))


def _one_or_many(value: object) -> object:
    """``readiness = {tcp = 5432}`` is the one-probe list ``[{tcp = 5432}]``."""
    return [value] if isinstance(value, dict) else value


READINESS_KINDS: tuple[str, ...] = ("tcp", "http", "command", "log", "span")
"""The keys that choose a readiness probe's kind; a probe table gives exactly one."""


class ReadinessProbe(Model):
    """runner: one condition a started service must meet before dependants start.

    Exactly one of ``tcp`` (port accepts a connection), ``http`` (GET of this
    path on ``port`` answers ``status``, default any 2xx/3xx), ``command``
    (exec'd in the service until it exits 0), ``log`` (a log line matches this
    regex) or ``span`` (a span of this name reached the test's receiver).
    ``timeout`` limits this probe alone; the service's start limit still applies.
    """

    tcp: Port | None = None
    http: str | None = None
    port: Port | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    command: Command | None = None
    log: Regex | None = None
    span: str | None = Field(default=None, min_length=1)
    timeout: Duration | None = None
    interval: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ReadinessProbe:
        given = [k for k in READINESS_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a readiness probe needs exactly one of "
                             f"{', '.join(READINESS_KINDS)}; got "
                             f"{', '.join(given) if given else 'none'}")
        if self.http is not None and not self.http.startswith("/"):
            raise ValueError(f"http must be a path starting with '/', got {self.http!r:.60}")
        if (self.port is not None or self.status is not None) and self.http is None:
            raise ValueError("'port' and 'status' belong to an http probe")
        if self.interval is not None and self.command is None:
            raise ValueError("'interval' belongs to a command probe")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in READINESS_KINDS if getattr(self, k) is not None)


class Volume(Model):
    """A bind mount; the string form ``"host:container[:ro]"`` is accepted too."""

    host_path: str = Field(min_length=1)
    container_path: str = Field(min_length=1)
    read_only: bool = False

    @field_validator("container_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"container_path must be absolute, got {value!r:.80}")
        return value


def _build_shape(value: object) -> object:
    """``build = "./app"`` is compose's short form of ``build = {context = "./app"}``."""
    return {"context": value} if isinstance(value, str) else value


class Build(Model):
    """runner: build the service's image from the user's own code (compose's ``build``).

    ``context`` is a folder, relative to the test file; ``dockerfile`` is relative to
    the context; ``args`` are build args; ``target`` a stage. The image is built
    before the run (``clnrm.images._user``), cached by a hash of all of these.
    """

    context: str = Field(min_length=1)
    dockerfile: str = Field(default="Dockerfile", min_length=1)
    args: TextMap = Field(default_factory=dict)
    target: str | None = Field(default=None, min_length=1)


class ServiceConfig(Model):
    """runner: one ``[services.NAME]`` / ``[service.NAME]`` table.

    Accepted alternative spellings (mapped, no warning): ``environment`` for
    ``env``, ``working_dir`` for ``workdir``, ``healthcheck`` for
    ``health_check``.  ``type`` is informational, as upstream: the plugin is
    chosen by ``plugin`` only.
    """

    plugin: str = Field(default="generic_container", min_length=1)
    image: str | None = None
    build: Annotated[Build | None, BeforeValidator(_build_shape)] = None  # built before the run
    command: Command | None = None  # runner: replaces the image CMD
    args: list[str] | None = None  # upstream spelling; used as command when command is unset
    entrypoint: list[str] | None = None
    env: EnvTable = Field(default_factory=dict, validation_alias=AliasChoices("env", "environment"))
    ports: list[Port] = Field(default_factory=list)  # container ports (never published to host)
    volumes: list[Annotated[Volume, BeforeValidator(volume_spec)]] = Field(default_factory=list)
    health_check: Annotated[HealthCheck | None, BeforeValidator(health_check_shape)] = Field(
        default=None, validation_alias=AliasChoices("health_check", "healthcheck")
    )
    depends_on: list[str] = Field(default_factory=list)
    readiness: Annotated[list[ReadinessProbe], BeforeValidator(_one_or_many)] = Field(
        default_factory=list)  # runner: every probe must hold, in order
    workdir: str | None = Field(
        default=None, validation_alias=AliasChoices("workdir", "working_dir")
    )
    # compose's resource keys: memory = "256m" (bytes, k/m/g suffixes), cpus = 0.5 (cores);
    # restart = "no" | "always" | "on-failure[:N]" | "unless-stopped"
    memory: Annotated[int | None, BeforeValidator(memory_size)] = Field(
        default=None, ge=6 * 2**20, validation_alias=AliasChoices("memory", "mem_limit"))
    cpus: float | None = Field(default=None, gt=0, le=1024)
    restart: str | None = Field(default=None,
                                pattern=r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
    type: str | None = None  # informational (upstream ignores it too)
    description: str | None = None
    # upstream plugin-specific keys, kept so upstream files load
    username: str | None = None
    password: str | None = None
    strict: bool | None = None
    wait_for_span: str | None = None
    wait_for_span_timeout_secs: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _spelling(cls, data: Any) -> Any:
        return _one_spelling(
            data,
            ("env", "environment"),
            ("workdir", "working_dir"),
            ("health_check", "healthcheck"),
            ("image", "build"),
        )

    @property
    def image_required(self) -> bool:
        return self.plugin not in IMAGE_OPTIONAL_PLUGINS and self.build is None


class Step(Model):
    """runner: one ``[[steps]]`` entry, exec'd in ``service`` or the default step container."""

    name: str = Field(min_length=1)
    command: Command  # runner: argv; a TOML string is loaded as ["sh", "-c", string]
    service: str | None = None
    expected_output_regex: Regex | None = None
    expected_output_regex_not: Regex | None = None
    expected_exit_code: int = 0
    continue_on_failure: bool = False
    workdir: str | None = None
    env: EnvTable = Field(default_factory=dict)
    timeout: Duration | None = None  # runner: seconds; TOML accepts 30, "30s", "5m"
    description: str | None = None
    retry_on_failure: bool = False  # upstream files use it; upstream never read it
    max_retries: int | None = Field(default=None, ge=0)


class ScenarioPolicy(Model):
    """Upstream ``[scenario.policy]``; parsed and checked, enforced by later layers."""

    security_level: Literal["low", "medium", "high"] | None = None
    max_execution_time: Duration | None = None
    max_memory_mb: int | None = Field(default=None, ge=1)
    max_cpu_usage: float | None = Field(default=None, ge=0, le=1)
    allowed_network_hosts: list[str] = Field(default_factory=list)
    disallowed_commands: list[str] = Field(default_factory=list)


class Artifacts(Model):
    """``collect = ["spans:default", "logs:all"]``: what to keep from a scenario run."""

    collect: list[str]


class ScenarioBlock(Model):
    """runner: one ``[[scenario]]``: ``run`` (shell string) in ``service``, or nested steps."""

    name: str = Field(min_length=1)
    service: str | None = None
    run: str | None = None
    steps: list[Step] = Field(default_factory=list)
    concurrent: bool = False
    timeout_ms: int | None = Field(default=None, ge=0)
    expected_exit_code: int = 0
    expected_output_regex: Regex | None = None
    description: str | None = None
    policy: ScenarioPolicy | None = None
    artifacts: Artifacts | None = None


class OtelPropagators(Model):
    use: list[str] = Field(default_factory=list)


class OtelConfig(Model):
    """``[otel]``: how the system under test should export spans.

    ``exporter`` is optional here (upstream required it): when absent the
    runner's default applies.
    """

    exporter: (
        Literal["stdout", "otlp", "otlp-http", "otlp-grpc", "jaeger", "zipkin", "none"] | None
    ) = None
    endpoint: str | None = None
    protocol: Annotated[
        Literal["http/protobuf", "grpc", "http/json"] | None, BeforeValidator(otlp_protocol)
    ] = None
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    resources: TextMap = Field(default_factory=dict)
    headers: TextMap = Field(default_factory=dict)
    propagators: OtelPropagators | None = None


def _rfc3339(value: object) -> object:
    """Accept a TOML datetime or an RFC 3339 string; keep it as the string upstream wrote."""
    if isinstance(value, datetime):
        text = value.isoformat()
        return text.replace("+00:00", "Z")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError as exc:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r:.60}") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp needs a timezone (e.g. 'Z'): {value!r:.60}")
    return value


class Determinism(Model):
    """``[determinism]``: seed for every random choice, and a frozen wall clock."""

    seed: int | None = Field(default=None, ge=0, lt=2**64)
    freeze_clock: Annotated[str | None, BeforeValidator(_rfc3339)] = None


class ReportConfig(Model):
    """``[report]``: file paths for the JSON report, JUnit XML and the span digest."""

    json_path: str | None = Field(default=None, alias="json")
    junit: str | None = None
    digest: str | None = None


class Limits(Model):
    """``[limits]``: resource limits for the containers of this test."""

    cpu_millicores: int | None = Field(default=None, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)


class LoadWarning(Model):
    """Something the loader accepted but wants the author to see (e.g. an unknown key)."""

    message: str
    file: str | None = None
    line: int | None = None
    key_path: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" [{self.key_path}]" if self.key_path else ""
        text = f"{where}:{key} {self.message}"
        return f"{text}\nHint: {self.hint}" if self.hint else text


class Scenario(Model):
    """runner: a whole test file after rendering and normalisation.

    ``name``/``description``/``timeout`` are resolved from ``[meta]`` or
    ``[test.metadata]``; ``services`` merges ``[services]`` and ``[service]``.
    ``source`` is the file it came from (set by the loader, not from TOML);
    ``warnings`` are what the loader reported without failing.
    """

    name: str
    description: str | None = None
    timeout: float | None = None  # runner: whole-test limit in seconds
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    scenarios: list[ScenarioBlock] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    version: str | None = None
    author: str | None = None
    tags: list[str] = Field(default_factory=list)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    determinism: Determinism | None = None
    otel: OtelConfig | None = None
    report: ReportConfig | None = None
    limits: Limits | None = None
    expect: Expect = Field(default_factory=Expect)
    otel_validation: dict[str, Any] | None = None
    assertions: dict[str, Any] | list[dict[str, Any]] | None = None
    layers: Layers | None = None
    orchestration: Orchestration | None = None
    chaos: Chaos | None = None
    performance: Performance | None = None
    self_healing: SelfHealing | None = None
    intelligence: Intelligence | None = None
    templated: bool = False
    warnings: list[LoadWarning] = Field(default_factory=list)

    @property
    def expectations_only(self) -> bool:
        """Nothing to run, only ``[[expect.*]]`` to judge: usable with ``--traces`` alone."""
        return not self.steps and not self.scenarios

    def layer_enabled(self, layer: str) -> bool:
        """Whether a layer is on: :func:`clnrm.layers.layer_active`, the one rule the
        run, the runner and the swarm's architect all follow."""
        from clnrm.layers import layer_active

        return layer_active(self, layer)
