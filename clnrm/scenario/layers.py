"""Tables of the hyper-advanced layers: ``[layers]``, ``[orchestration]``, ``[chaos]``,
``[performance]``, ``[self_healing]``, ``[intelligence]``.

Upstream only ever *described* these (UPSTREAM.md section e: simulated or
absent), so there is no upstream shape to follow.  They are defined now, thin
and typed, so a test file can carry them before the layer that reads them
exists, and each later layer extends its own model instead of changing the
file format.  A layer is on when its table is present, unless ``[layers]``
says otherwise or the table sets ``enabled = false``.

Fault tables are the one deliberately open shape: every fault has a ``type``
plus parameters that only its fault plugin understands, so extra keys are
kept (``FaultSpec.params``) for the plugin to validate.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from clnrm.scenario.durations import Duration
from clnrm.scenario.model_base import Model


class Layers(Model):
    """Explicit switches; ``None`` means "on exactly when the layer's table is present"."""

    orchestration: bool | None = None
    chaos: bool | None = None
    performance: bool | None = None
    self_healing: bool | None = None
    intelligence: bool | None = None


SERVICE_EVENTS: tuple[str, ...] = ("start", "ready")
"""Moments of a service's life that temporal constraints can name."""


def _service_event(value: object) -> object:
    """``"db"`` means ``"db.ready"``; the suffix, when it is an event name, picks the moment."""
    if isinstance(value, str):
        text = value.strip()
        service, dot, event = text.rpartition(".")
        if not text:
            raise ValueError("name a service event such as 'db.ready'")
        if not dot or event not in SERVICE_EVENTS:
            return f"{text}.ready"
        if not service:
            raise ValueError(f"no service before '.{event}' in {value!r:.60}")
        return text
    return value


ServiceEvent = Annotated[str, BeforeValidator(_service_event)]
"""``"<service>.<start|ready>"``; a bare service name means its ``ready`` moment."""


def split_event(event: str) -> tuple[str, str]:
    """``"db.ready"`` -> ``("db", "ready")`` (the string was normalised on load)."""
    service, _, moment = event.rpartition(".")
    return service, moment


class TemporalConstraint(Model):
    """``[[orchestration.temporal]]``: ``then`` happens after ``first`` (and within ``within``).

    Checked after the run from the recorded service timeline, so it holds for
    what happened, not for what the scheduler intended.
    """

    first: ServiceEvent
    then: ServiceEvent
    within: Duration | None = None
    description: str | None = None


def _service_pair(value: list[str]) -> list[str]:
    if len(value) != 2 or not all(v.strip() for v in value) or value[0] == value[1]:
        raise ValueError(f"an edge is [caller, callee], two different service names; "
                         f"got {value!r:.80}")
    return value


ServicePair = Annotated[list[str], AfterValidator(_service_pair)]


class Topology(Model):
    """``[orchestration.topology]``: which service may call which.

    ``allow`` edges are ``[caller, callee]``.  With ``enforce`` each allowed
    pair shares a private network and nothing else is reachable; ``match``
    compares the allowed edges with the service graph seen in the spans:
    ``exact`` (no other edge, and every allowed edge seen), ``subset`` (no
    other edge) or ``off``.  ``entry`` lists the services the steps may reach
    (default: all).
    """

    allow: list[ServicePair] = Field(default_factory=list)
    enforce: bool = True
    match: Literal["exact", "subset", "off"] = "exact"
    entry: list[str] | None = None
    description: str | None = None


class Orchestration(Model):
    """How services of a test are started and checked, and how files are scheduled.

    ``temporal`` and ``topology`` are judged after each run; ``mode`` and the
    keys after it schedule whole files (read by the swarm layer).
    """

    enabled: bool = True
    temporal: list[TemporalConstraint] = Field(default_factory=list)
    topology: Topology | None = None
    mode: Literal["sequential", "parallel", "dag"] = "sequential"
    max_parallel: int | None = Field(default=None, ge=1)
    fail_fast: bool = False
    retries: int = Field(default=0, ge=0)
    timeout: Duration | None = None
    backend: str | None = None  # e.g. "local" or "ray"; resolved by the orchestration layer
    shard: str | None = None  # "i/m"

    @field_validator("shard")
    @classmethod
    def _shard_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise ValueError(f"shard must be 'i/m' with 1 <= i <= m, got {value!r:.40}")
        return value


_TRIGGER = re.compile(r"after_(steady_state|start)(?:_(\d+(?:\.\d+)?)(ms|s|m))?")
SCHEDULE_KEYS: frozenset[str] = frozenset({
    "type", "name", "target", "at", "after", "trigger", "duration", "every", "repeat",
    "window", "probability"})
"""Keys of a ``[[chaos.faults]]`` entry the engine reads; every other key is the fault's."""


class FaultSpec(Model):
    """One ``[[chaos.faults]]`` entry: ``type`` selects the fault plugin, the scheduling keys
    say when, and every other key is the plugin's typed config (checked on load against
    the plugin's own model, see :func:`clnrm.chaos.catalog.check_faults`).

    When: ``at`` seconds after the anchor (``after``: ``"start"`` of the experiment,
    which is ``"steady_state"`` too, since the experiment starts once the hypothesis
    holds, or ``"step:<name>"``: when that step starts); ``trigger =
    "after_steady_state_30s"`` is the same as ``after = "steady_state"``, ``at = 30``.
    ``window = [a, b]`` instead of ``at`` picks the moment at random in ``[a, b]``
    from the seed.  ``duration`` is how long it stays (default: until the steps end);
    ``every`` + ``repeat`` inject it again; ``probability`` makes each occurrence a
    seeded coin toss.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(min_length=1)
    name: str | None = None
    target: str | None = None  # a declared service
    at: Duration | None = None
    after: str = "start"
    trigger: str | None = None
    duration: Duration | None = None
    every: Duration | None = Field(default=None, gt=0)
    repeat: int = Field(default=1, ge=1, le=10_000)
    window: list[Duration] | None = None
    probability: float | None = Field(default=None, ge=0, le=1)

    @field_validator("after")
    @classmethod
    def _anchor(cls, value: str) -> str:
        text = value.strip()
        if text in ("start", "steady_state") or (text.startswith("step:") and text[5:].strip()):
            return text
        raise ValueError("after must be 'start', 'steady_state' or 'step:<step name>', "
                         f"got {value!r:.60}")

    @field_validator("window")
    @classmethod
    def _window(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 2 or value[0] > value[1]):
            raise ValueError("window is [earliest, latest], e.g. [\"2s\", \"5s\"]")
        return value

    @model_validator(mode="after")
    def _trigger_and_repeat(self) -> FaultSpec:
        if self.trigger is not None:
            match = _TRIGGER.fullmatch(self.trigger.strip())
            if not match:
                raise ValueError("trigger must look like 'after_steady_state_30s' or "
                                 f"'after_start_500ms', got {self.trigger!r:.60}")
            self.after = match.group(1)
            if match.group(2):
                scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(3)]
                self.at = float(match.group(2)) * scale
        if self.repeat > 1 and self.every is None:
            raise ValueError("repeat needs every (the time between occurrences)")
        if self.window is not None and self.at is not None:
            raise ValueError("give at or window, not both")
        return self

    @property
    def label(self) -> str:
        return self.name or (f"{self.type}:{self.target}" if self.target else self.type)

    @property
    def params(self) -> dict[str, Any]:
        """Plugin-specific keys (everything not modelled above)."""
        return dict(self.model_extra or {})


class HttpProbe(Model):
    """``http = { service = "gateway", port = 8080, path = "/items" }``: a request from the
    host to the service's address; ok when the status is expected (and the body matches)."""

    service: str
    port: int = Field(ge=1, le=65535)
    path: str = "/"
    method: Literal["GET", "POST", "PUT", "DELETE", "HEAD"] = "GET"
    body: str | None = None
    expect_status: list[int] = Field(default_factory=lambda: [200])
    body_regex: str | None = None


class TcpProbe(Model):
    """``tcp = { service = "db", port = 5432 }``: ok when a connection is accepted."""

    service: str
    port: int = Field(ge=1, le=65535)


class ChaosProbe(Model):
    """``[[chaos.probes]]``: something checked every ``every`` from before the first fault
    until after the last rollback; resilience expectations and the steady-state hypothesis
    are judged on its samples."""

    name: str = Field(min_length=1)
    http: HttpProbe | None = None
    tcp: TcpProbe | None = None
    command: list[str] | None = None  # exec'd in ``service`` (or the step container)
    service: str | None = None
    expected_exit_code: int = 0
    every: Duration = Field(default=0.2, gt=0)
    timeout: Duration = Field(default=2.0, gt=0)

    @field_validator("command", mode="before")
    @classmethod
    def _shell(cls, value: object) -> object:
        return ["sh", "-c", value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> ChaosProbe:
        kinds = [k for k in ("http", "tcp", "command") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"probe '{self.name}' needs exactly one of http, tcp or command"
                             + (f" (has {', '.join(kinds)})" if kinds else ""))
        return self


class Chaos(Model):
    """Faults to inject while the steps run, probes to watch, and the steady-state
    hypothesis (probe names) checked before the first fault and after the last rollback.
    Faults are always rolled back: ``rollback = false`` is refused, not honoured."""

    enabled: bool = True
    seed: int | None = Field(default=None, ge=0)
    faults: list[FaultSpec] = Field(default_factory=list)
    probes: list[ChaosProbe] = Field(default_factory=list)
    steady_state: list[str] = Field(default_factory=list)
    steady_state_samples: int = Field(default=3, ge=1, le=100)
    recovery_timeout: Duration = Field(default=30.0, gt=0)
    duration: Duration | None = None  # the experiment lasts at least this long
    rollback: bool = True

    @field_validator("rollback")
    @classmethod
    def _always_rolled_back(cls, value: bool) -> bool:
        if not value:
            raise ValueError("faults are always rolled back; remove rollback = false")
        return value

    @model_validator(mode="after")
    def _names(self) -> Chaos:
        probes = [p.name for p in self.probes]
        dupes = sorted({n for n in probes if probes.count(n) > 1})
        if dupes:
            raise ValueError(f"probe names must be unique: {', '.join(dupes)}")
        unknown = [n for n in self.steady_state if n not in probes]
        if unknown:
            raise ValueError(f"steady_state names probes that are not declared: "
                             f"{', '.join(unknown)} (declared: {', '.join(probes) or 'none'})")
        labels = [f.label for f in self.faults]
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise ValueError(f"two faults share the name {dupes[0]!r}: give each a unique name")
        return self


class PerformanceLoad(Model):
    """``[performance.load]``: an open-loop HTTP workload sent from the host while the
    steps run (:class:`clnrm.perf.load.LoadDriver`).  Requests leave on a schedule fixed
    by ``rate_rps``, ``arrival`` and ``seed`` whether or not earlier ones have answered,
    so a stall shows as many slow requests, not as one.  ``warmup`` seconds are sent
    first and not measured; ``concurrency`` caps open connections."""

    service: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    path: str = "/"
    method: Literal["GET", "POST", "PUT", "DELETE", "HEAD"] = "GET"
    body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    rate_rps: float = Field(default=20.0, gt=0, le=5000)
    duration: Duration = Field(default=5.0, gt=0, le=3600)
    warmup: Duration = Field(default=0.0, ge=0, le=600)
    seed: int | None = Field(default=None, ge=0)  # default: the test's seed
    arrival: Literal["constant", "poisson"] = "poisson"
    concurrency: int = Field(default=16, ge=1, le=1024)
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path must start with '/', got {value!r:.60}")
        return value


PERF_METRIC_KINDS: tuple[str, ...] = ("latency", "throughput", "load", "cpu", "memory")
"""What ``[performance] metrics`` may name (a kind, or one metric such as
``"latency:GET /items"``); the first three are compared with the baseline."""


class Performance(Model):
    """Measure the run (span latencies, throughput, container stats, an optional load) and
    judge it against the baseline kept in the shared memory (see docs/performance.md).

    ``iterations`` passes of the steps are measured after ``warmup`` unmeasured passes,
    all in one live system.  A metric regresses when it is worse with statistical
    significance (``alpha``, corrected across metrics) *and* beyond the allowed
    percentage: ``p95_latency_increase_max_percent`` for latencies (p95),
    ``throughput_decrease_max_percent`` for throughput (mean).  ``fail_on_regression
    = false`` reports regressions without failing the test.  Each latency's p95 is also
    tested (beyond +50 %): reported, failing only with ``fail_on_tail = true``.
    ``spans`` limits the compared latencies (default: every server and client span name
    seen in both runs).
    ``baseline`` reads the baseline from a JSON file instead of the memory;
    ``record_baseline`` makes this run the baseline even when one exists;
    ``history`` is how many past runs are kept for change-point detection.
    ``regression_threshold_pct`` is the older spelling of the latency threshold.
    """

    enabled: bool = True
    iterations: int = Field(default=1, ge=1, le=1000)
    warmup: int = Field(default=0, ge=0, le=1000)
    baseline: str | None = None  # path of a baseline file (clnrm perf baseline show -f json)
    record_baseline: bool = False
    regression_threshold_pct: float | None = Field(default=None, ge=0)
    metrics: list[str] = Field(default_factory=list)
    p95_latency_increase_max_percent: float | None = Field(default=None, ge=0)
    throughput_decrease_max_percent: float | None = Field(default=None, ge=0, le=100)
    fail_on_regression: bool = True
    # each latency's p95 is also tested (beyond +50 %); reported, failing only when true
    # (clnrm.perf.judge.TAIL_MIN_EFFECT_PCT: the tail moves with the machine's load)
    fail_on_tail: bool = False
    alpha: float = Field(default=0.01, gt=0, lt=1)
    spans: list[str] = Field(default_factory=list)
    load: PerformanceLoad | None = None
    stats: bool = True
    history: int = Field(default=20, ge=0, le=1000)
    # runs a new baseline collects before runs are judged, and the newest baseline runs
    # used as the reference (clnrm.perf.judge.FILL_RUNS, docs/performance.md)
    baseline_runs: int = Field(default=10, ge=1, le=100)

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: list[str]) -> list[str]:
        for name in value:
            kind = name.partition(":")[0].strip()
            if kind not in PERF_METRIC_KINDS:
                raise ValueError(f"unknown metric {name!r}: name a kind "
                                 f"({', '.join(PERF_METRIC_KINDS)}) or a metric such as "
                                 "'latency:GET /items'")
        return value

    @property
    def latency_threshold_pct(self) -> float | None:
        """The allowed p95 increase: the new key, else the older ``regression_threshold_pct``."""
        if self.p95_latency_increase_max_percent is not None:
            return self.p95_latency_increase_max_percent
        return self.regression_threshold_pct


class SelfHealing(Model):
    """Remediations the run may apply when a step or service fails."""

    enabled: bool = True
    max_attempts: int = Field(default=3, ge=0)
    strategies: list[str] = Field(default_factory=list)  # e.g. restart_service, retry_step
    backoff: Duration | None = None


class IntelligenceGeneration(Model):
    """``[intelligence.generation]``: how tests are mined from traces (docs/intelligence.md);
    unset keys keep ``clnrm generate``'s defaults."""

    min_pattern_frequency: float | None = Field(default=None, gt=0, le=1)
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    include_error_scenarios: bool | None = None


class Intelligence(Model):
    """Tests learned from traces: the swarm's intelligence agent mines the orchestration run's
    spans; never required to pass a test.  The generation keys may sit in the table itself
    or in ``[intelligence.generation]`` (which wins)."""

    enabled: bool = True
    provider: str | None = None
    model: str | None = None
    endpoint: str | None = None
    features: list[str] = Field(default_factory=list)
    min_pattern_frequency: float | None = Field(default=None, gt=0, le=1)
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    include_error_scenarios: bool | None = None
    generation: IntelligenceGeneration | None = None

    def mining_settings(self) -> dict[str, Any]:
        """The generation keys the file sets, ``[intelligence.generation]`` over the table."""
        keys = ("min_pattern_frequency", "confidence_threshold", "include_error_scenarios")
        found = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.generation is not None:
            found |= {k: getattr(self.generation, k) for k in keys
                      if getattr(self.generation, k) is not None}
        return found
