"""The test file exactly as TOML shapes it, before normalisation.

Validating this model (rather than :class:`~clnrm.scenario.model.Scenario`)
keeps pydantic's error locations identical to the TOML key paths, so every
error can be pointed at a line.  :mod:`clnrm.scenario.normalise` then folds
the spellings together (``[meta]``/``[test.metadata]``, ``[services]``/
``[service]``) into a ``Scenario``.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from clnrm.scenario.durations import Duration
from clnrm.scenario.expect import Expect
from clnrm.scenario.layers import (
    Chaos,
    Intelligence,
    Layers,
    Orchestration,
    Performance,
    SelfHealing,
)
from clnrm.scenario.model import (
    Determinism,
    Limits,
    OtelConfig,
    OtelPropagators,
    ReportConfig,
    ScenarioBlock,
    ServiceConfig,
    Step,
)
from clnrm.scenario.model_base import Model


class Meta(Model):
    """``[meta]`` (upstream v1 spelling).  Upstream required ``version``; we do not."""

    name: str | None = None
    version: str | None = None
    description: str | None = None
    timeout: Duration | None = None
    author: str | None = None
    tags: list[str] = Field(default_factory=list)


class TestMetadata(Model):
    """``[test.metadata]`` (upstream v0.4 spelling); ``timeout`` is a whole-test limit."""

    __test__ = False  # not a pytest class, despite the name

    name: str | None = None
    description: str | None = None
    timeout: Duration | None = Field(
        default=None, validation_alias=AliasChoices("timeout", "timeout_seconds")
    )
    version: str | None = None
    author: str | None = None
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _one_timeout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timeout" in data and "timeout_seconds" in data:
            raise ValueError("give either 'timeout' or 'timeout_seconds', not both")
        return data


class TestSection(Model):
    """``[test]``: normally just ``[test.metadata]``.

    Upstream rejected ``[test]`` with ``name``/``description`` written directly
    in it; the intent is plain, so we read those keys as if they were under
    ``[test.metadata]``.
    """

    __test__ = False

    metadata: TestMetadata | None = None
    name: str | None = None
    description: str | None = None
    timeout: Duration | None = None
    assertions: dict[str, Any] | None = None  # informational, like top-level [assertions]


class OtelValidation(Model):
    """Upstream's legacy ``[otel_validation]`` (used only by its ``dry-run``); kept loosely typed.

    Known keys are type-checked; other keys are kept as written (this table
    grew ad-hoc keys upstream and nothing here executes it).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    enabled: bool = True
    validate_spans: bool | None = None
    validate_traces: bool | None = None
    validate_exports: bool | None = None
    validate_performance: bool | None = None
    max_overhead_ms: float | None = Field(default=None, ge=0)
    expected_spans: list[dict[str, Any]] = Field(default_factory=list)
    expected_traces: list[dict[str, Any]] = Field(default_factory=list)
    expect_graph: dict[str, Any] | None = None
    expect_counts: dict[str, Any] | None = None
    expect_windows: list[dict[str, Any]] | None = None
    expect_hermeticity: dict[str, Any] | None = None
    expect_order: dict[str, Any] | None = None
    expect_status: dict[str, Any] | None = None


class RawTestFile(Model):
    """Every top-level table a test file may have, shaped as in TOML."""

    meta: Meta | None = None
    test: TestSection | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    service: dict[str, ServiceConfig] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    scenario: list[ScenarioBlock] = Field(default_factory=list)
    otel: OtelConfig | None = None
    otel_headers: dict[str, str] = Field(default_factory=dict)
    otel_propagators: OtelPropagators | None = None
    otel_validation: OtelValidation | None = None
    determinism: Determinism | None = None
    report: ReportConfig | None = None
    limits: Limits | None = None
    expect: Expect | None = None
    assertions: Any = None
    layers: Layers | None = None
    orchestration: Orchestration | None = None
    chaos: Chaos | None = None
    performance: Performance | None = None
    self_healing: SelfHealing | None = None
    intelligence: Intelligence | None = None
    # Opt-in to bind mounts of sensitive host paths (clnrm.scenario.mounts); off by default.
    allow_host_mounts: bool = False

    @field_validator("assertions")
    @classmethod
    def _assertions_shape(cls, value: Any) -> Any:
        # Never evaluated (as upstream); accepted as a table or an array of tables.
        if value is None or isinstance(value, dict):
            return value
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
        raise ValueError("[assertions] must be a table (or an array of tables)")
