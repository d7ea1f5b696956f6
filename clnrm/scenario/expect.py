"""The ``[[expect.*]]`` tables: what the spans of a run must show.

Shapes follow upstream's serde structs (``config/otel.rs``) so upstream files
load unchanged; the semantics each validator gives them are in
``shared/UPSTREAM.md`` section c.  Two hyper-advanced tables are added,
``[[expect.performance]]`` and ``[[expect.resilience]]``, typed loosely enough
for the performance and chaos layers to grow into without a format change.
Rules that can be checked without spans (enum values, ``gte <= lte``, edges of
exactly two names, regexes that compile) are checked here, at load time.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from clnrm.scenario.coerce import TextMap, lower_text, upper_text
from clnrm.scenario.durations import Duration
from clnrm.scenario.model_base import Model

SpanKind: TypeAlias = Annotated[
    Literal["internal", "server", "client", "producer", "consumer"], BeforeValidator(lower_text)
]
"""OTel span kind as upstream spells it (lower case; input is case-insensitive)."""

SpanStatus: TypeAlias = Annotated[Literal["OK", "ERROR", "UNSET"], BeforeValidator(upper_text)]
"""Span status code; input is case-insensitive like upstream's check."""


def _edge(value: list[str]) -> list[str]:
    if len(value) != 2 or not all(name.strip() for name in value):
        raise ValueError(f"an edge must be exactly two non-empty span names, got {value!r:.80}")
    return value


Edge: TypeAlias = Annotated[list[str], AfterValidator(_edge)]
"""``["parent_or_first", "child_or_second"]``."""


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from exc
    except (RecursionError, OverflowError) as exc:
        raise ValueError("regular expression is too complex to compile") from exc
    return value


Regex: TypeAlias = Annotated[str, AfterValidator(_regex)]
"""A Python ``re`` pattern, compiled at load time so a typo fails before any container starts."""


class SpanAttrs(Model):
    """``attrs.all``: every pair must match; ``attrs.any``: at least one must."""

    all: TextMap = Field(default_factory=dict)
    any: TextMap = Field(default_factory=dict)


class SpanEvents(Model):
    """Event names on the span: ``any`` needs one of them, ``all`` needs each."""

    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)


class DurationBounds(Model):
    """Span duration in milliseconds, both bounds inclusive."""

    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> DurationBounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class CountBound(Model):
    """``eq`` wins over ``gte``/``lte`` (upstream semantics); ``gte`` must not exceed ``lte``."""

    gte: int | None = Field(default=None, ge=0)
    lte: int | None = Field(default=None, ge=0)
    eq: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> CountBound:
        if self.gte is not None and self.lte is not None and self.gte > self.lte:
            raise ValueError(f"gte ({self.gte}) must not exceed lte ({self.lte})")
        return self


class SpanExpectation(Model):
    """One ``[[expect.span]]``: a span that must exist, and what it must look like."""

    name: str
    parent: str | None = None
    kind: SpanKind | None = None
    attrs: SpanAttrs | None = None
    events: SpanEvents | None = None
    duration_ms: DurationBounds | None = None
    status: SpanStatus | None = None  # ours: checked on the same span as the rest
    description: str | None = None


class OrderExpectation(Model):
    """``must_precede = [[a, b]]``: some ``a`` ends before some ``b`` starts.

    ``must_follow = [[a, b]]`` is the same with the names swapped.
    """

    must_precede: list[Edge] = Field(default_factory=list)
    must_follow: list[Edge] = Field(default_factory=list)
    description: str | None = None


class StatusExpectation(Model):
    """``all`` applies to every span; ``by_name`` keys are glob patterns."""

    all: SpanStatus | None = None
    by_name: dict[str, SpanStatus] = Field(default_factory=dict)
    description: str | None = None


class CountExpectation(Model):
    """Totals over the whole trace, and per exact span name."""

    spans_total: CountBound | None = None
    events_total: CountBound | None = None
    errors_total: CountBound | None = None
    by_name: dict[str, CountBound] = Field(default_factory=dict)
    description: str | None = None


class WindowExpectation(Model):
    """Each span named in ``contains`` lies within the first ``outer`` span's time window."""

    outer: str
    contains: list[str]
    description: str | None = None


class GraphExpectation(Model):
    """Parent/child edges that must (or must not) appear; ``acyclic`` checks parent links."""

    must_include: list[Edge] = Field(default_factory=list)
    must_not_cross: list[Edge] = Field(default_factory=list)
    acyclic: bool | None = None
    description: str | None = None


class ResourceAttrsRule(Model):
    must_match: TextMap = Field(default_factory=dict)


class SpanAttrsRule(Model):
    forbid_keys: list[str] = Field(default_factory=list)


class HermeticityExpectation(Model):
    """No span may reach outside the sandbox; resource attributes must match.

    Upstream's flat aliases ``resource_attrs_must_match`` and
    ``span_attrs_forbid_keys`` are folded into the nested tables on load.
    """

    no_external_services: bool | None = None
    resource_attrs: ResourceAttrsRule | None = None
    span_attrs: SpanAttrsRule | None = None
    resource_attrs_must_match: TextMap | None = Field(default=None, exclude=True)
    span_attrs_forbid_keys: list[str] | None = Field(default=None, exclude=True)
    description: str | None = None

    @model_validator(mode="after")
    def _fold_aliases(self) -> HermeticityExpectation:
        if self.resource_attrs_must_match:
            rule = self.resource_attrs or ResourceAttrsRule()
            rule.must_match = {**self.resource_attrs_must_match, **rule.must_match}
            self.resource_attrs = rule
        if self.span_attrs_forbid_keys:
            keys = self.span_attrs or SpanAttrsRule()
            keys.forbid_keys = [*self.span_attrs_forbid_keys, *keys.forbid_keys]
            self.span_attrs = keys
        self.resource_attrs_must_match = None
        self.span_attrs_forbid_keys = None
        return self


class PerformanceExpectation(Model):
    """Hyper-advanced: a latency/throughput budget for spans or the whole run.

    ``metric`` names what is measured (``duration_ms`` of spans named
    ``span``, or ``run_duration_ms``); bounds are inclusive;
    ``max_regression_pct`` compares against a recorded baseline.
    """

    name: str | None = None
    span: str | None = None
    metric: str = "duration_ms"
    percentile: float | None = Field(default=None, gt=0, le=100)
    max: float | None = Field(default=None, ge=0)
    min: float | None = Field(default=None, ge=0)
    max_regression_pct: float | None = Field(default=None, ge=0)
    baseline: str | None = None
    description: str | None = None


class ResilienceExpectation(Model):
    """Hyper-advanced: how the system must behave under an injected fault.

    ``fault`` names a ``[[chaos.faults]]`` entry (by ``name`` or ``type``);
    ``recovers_within`` is a duration; ``max_error_rate`` is 0..1.
    """

    name: str | None = None
    fault: str | None = None
    recovers_within: Duration | None = None
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    steady_state: list[str] = Field(default_factory=list)
    must_emit: list[str] = Field(default_factory=list)
    description: str | None = None


class Expect(Model):
    """Every expectation table of one test file (all optional)."""

    span: list[SpanExpectation] = Field(default_factory=list)
    order: OrderExpectation | None = None
    status: StatusExpectation | None = None
    counts: CountExpectation | None = None
    window: list[WindowExpectation] = Field(default_factory=list)
    graph: GraphExpectation | None = None
    hermeticity: HermeticityExpectation | None = None
    performance: list[PerformanceExpectation] = Field(default_factory=list)
    resilience: list[ResilienceExpectation] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when the file asks nothing of its spans."""
        return not any(getattr(self, name) for name in type(self).model_fields)


__all__: list[str] = [
    "CountBound",
    "CountExpectation",
    "DurationBounds",
    "Edge",
    "Expect",
    "GraphExpectation",
    "HermeticityExpectation",
    "OrderExpectation",
    "PerformanceExpectation",
    "Regex",
    "ResilienceExpectation",
    "ResourceAttrsRule",
    "SpanAttrs",
    "SpanAttrsRule",
    "SpanEvents",
    "SpanExpectation",
    "SpanKind",
    "SpanStatus",
    "StatusExpectation",
    "WindowExpectation",
]
