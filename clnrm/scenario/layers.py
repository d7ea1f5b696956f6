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
kept (``Fault.params``) for the plugin to validate.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator

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


class Fault(Model):
    """One ``[[chaos.faults]]`` entry: ``type`` selects the fault plugin, the rest is its input."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(min_length=1)
    name: str | None = None
    target: str | None = None  # a declared service
    at: Duration | None = None  # offset from the start of the run
    duration: Duration | None = None
    probability: float | None = Field(default=None, ge=0, le=1)

    @property
    def params(self) -> dict[str, Any]:
        """Plugin-specific keys (everything not modelled above)."""
        return dict(self.model_extra or {})


class Chaos(Model):
    """Faults to inject while the scenarios run; rolled back when the run ends."""

    enabled: bool = True
    seed: int | None = Field(default=None, ge=0)
    faults: list[Fault] = Field(default_factory=list)
    steady_state: list[str] = Field(default_factory=list)  # step names that must pass before/after
    rollback: bool = True


class Performance(Model):
    """Repeat runs to measure timings and compare them with a recorded baseline."""

    enabled: bool = True
    iterations: int = Field(default=1, ge=1)
    warmup: int = Field(default=0, ge=0)
    baseline: str | None = None  # path of a baseline file
    record_baseline: bool = False
    regression_threshold_pct: float | None = Field(default=None, ge=0)
    metrics: list[str] = Field(default_factory=list)


class SelfHealing(Model):
    """Remediations the run may apply when a step or service fails."""

    enabled: bool = True
    max_attempts: int = Field(default=3, ge=0)
    strategies: list[str] = Field(default_factory=list)  # e.g. restart_service, retry_step
    backoff: Duration | None = None


class Intelligence(Model):
    """Analysis of results (failure triage, flakiness); never required to pass a test."""

    enabled: bool = True
    provider: str | None = None
    model: str | None = None
    endpoint: str | None = None
    features: list[str] = Field(default_factory=list)
