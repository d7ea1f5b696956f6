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
    self_ms: DurationBounds | None = None
    """Ours: the span's own time, its duration minus the union of its children's intervals
    (clipped to the span, overlapping children counted once), in ms.  A service's own
    delay hides in ``duration_ms`` behind its callees' spread; its self time does not."""
    status: SpanStatus | None = None  # ours: checked on the same span as the rest
    description: str | None = None


class OrderExpectation(Model):
    """``must_precede = [[a, b]]``: some ``a`` ends before some ``b`` starts.

    ``must_follow = [[a, b]]`` is the same with the names swapped.  ``every = true``
    (ours; default false, upstream's existential rule) makes each rule of the table
    universal: *every* ``a`` ends before *every* ``b`` starts, per trace.  The
    existential rule cannot see two calls of a repeated name change places (one ``a``
    still precedes one ``b``); the universal one can.
    """

    must_precede: list[Edge] = Field(default_factory=list)
    must_follow: list[Edge] = Field(default_factory=list)
    every: bool = False
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


PERF_EXPECT_METRICS: tuple[str, ...] = ("duration_ms", "throughput_rps", "error_rate",
                                         "run_duration_ms")
"""What ``[[expect.performance]] metric`` may be."""


def _perf_metric(value: str) -> str:
    text = value.strip().lower()
    if text not in PERF_EXPECT_METRICS:
        raise ValueError(f"metric must be one of {', '.join(PERF_EXPECT_METRICS)}, "
                         f"got {value!r:.40}")
    return text


class PerformanceExpectation(Model):
    """A latency/throughput budget for spans or the whole run (judged by the performance
    layer, docs/performance.md).

    ``metric``: ``duration_ms`` of spans named ``span`` (at ``percentile``, else every
    span: the bounds then hold for the fastest and the slowest), ``throughput_rps``
    (spans named ``span`` per second of the measured window; without ``span``, the
    requests), ``error_rate`` (0..1, ERROR spans named ``span``, else of the requests),
    or ``run_duration_ms`` (the test).  ``min``/``max`` are inclusive absolute bounds;
    ``max_regression_pct`` compares the statistic (``percentile``, default p95; the mean
    for throughput) with the baseline in the shared memory, significance-tested like
    ``[performance]`` (``alpha``), or with the one in the ``baseline`` file.
    """

    name: str | None = None
    span: str | None = None
    metric: Annotated[str, AfterValidator(_perf_metric)] = "duration_ms"
    percentile: float | None = Field(default=None, gt=0, le=100)
    max: float | None = Field(default=None, ge=0)
    min: float | None = Field(default=None, ge=0)
    max_regression_pct: float | None = Field(default=None, ge=0)
    alpha: float | None = Field(default=None, gt=0, lt=1)
    baseline: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _judgeable(self) -> PerformanceExpectation:
        if self.metric == "duration_ms" and not self.span:
            raise ValueError("metric duration_ms needs span = \"<span name>\"")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.metric == "error_rate" and self.max is not None and self.max > 1:
            raise ValueError("error_rate is a share between 0 and 1")
        if self.max is None and self.min is None and self.max_regression_pct is None:
            raise ValueError("give max, min or max_regression_pct: nothing to judge")
        if self.max_regression_pct is not None and not (
                self.metric == "duration_ms"
                or (self.metric == "throughput_rps" and self.span is None)):
            raise ValueError("max_regression_pct is judged for duration_ms of a span and for "
                             "throughput_rps of the requests (no span): the metrics the "
                             "baseline keeps")
        return self


class ResilienceExpectation(Model):
    """How the system must behave under the injected faults (judged by the chaos layer).

    The window is while ``fault`` was applied (a ``[[chaos.faults]]`` name or type;
    default: every fault).  Probe-based figures use ``probe`` (default: every probe);
    ``span`` judges the success rate on spans of that name instead (ERROR status =
    failure).  ``max_downtime_ms``: the longest stretch of failed probe samples;
    ``max_failover_time_ms``: from injection until the first success after the first
    failure (0 when nothing failed); ``full_recovery_time_ms`` / ``recovers_within``:
    from the rollback until the probes pass again;
    ``recovers_from_container_kill``: after a kill/stop/oom fault the target runs
    again and the steady state holds after the rollback; ``must_emit``: span or span
    event names seen while the fault was applied (a fallback's event, say).
    """

    name: str | None = None
    fault: str | None = None
    probe: str | None = None
    span: str | None = None
    recovers_from_container_kill: bool | None = None
    max_downtime_ms: float | None = Field(default=None, ge=0)
    max_failover_time_ms: float | None = Field(default=None, ge=0)
    min_success_rate_during: float | None = Field(default=None, ge=0, le=1)
    full_recovery_time_ms: float | None = Field(default=None, ge=0)
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
