"""What mining learns from traces: typed, serialisable patterns with their evidence.

Every pattern carries an :class:`Evidence`: how many traces (or spans) showed it,
out of how many it was judged on, and a confidence.  Two kinds of confidence are
used, and the writer only turns a pattern into an assertion when it reaches
``confidence_threshold``:

- *existential* ("some span named X with parent P appears"): the chance that an
  export of the same size shows it again, ``1 - (1 - p)^n`` with the frequency
  ``p = (k + 0.5) / (n + 1)`` shrunk towards the middle so one trace is never
  proof (1 of 1 gives 0.75, 2 of 2 gives 0.97, 4 of 80 gives 0.99);
- *universal* ("every span named X has status UNSET", "a ends before b starts in
  every trace holding both"): Laplace's rule of succession ``(m + 1) / (m + 2)``
  over the ``m`` observations that all agreed (18 agreeing spans give 0.95).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def existential_confidence(support: int, total: int, judged: int | None = None) -> float:
    """Chance that an export of ``judged`` traces (default ``total``) shows a pattern seen
    in ``support`` of ``total``."""
    if total <= 0 or support <= 0:
        return 0.0
    p = (support + 0.5) / (total + 1)
    return round(1.0 - (1.0 - p) ** (total if judged is None else judged), 4)


def universal_confidence(agreeing: int) -> float:
    """Rule of succession: the next observation agrees, after ``agreeing`` that all did."""
    return round((agreeing + 1) / (agreeing + 2), 4)


class MiningOptions(_Frozen):
    """The knobs of ``[intelligence.generation]`` and ``clnrm generate``'s flags."""

    min_pattern_frequency: float = Field(default=0.05, gt=0, le=1)
    """A pattern seen in fewer than this share of a request type's traces is dropped."""
    confidence_threshold: float = Field(default=0.95, ge=0, le=1)
    """Patterns below this confidence are kept in the pattern file but not asserted."""
    include_error_scenarios: bool = False
    """Also assert that failing paths (ERROR spans) keep appearing when they are frequent."""
    counts: bool = True
    """Assert span totals; they hold for an export with the same requests as the source."""
    export_share: float = Field(default=1.0, gt=0, le=1)
    """The exports the tests will judge hold this share of the source's traces: 1 for a
    corpus like the source, ``1/runs`` for ``--from`` (each run is judged alone).
    Confidences, counts and latency quantiles are computed for that size."""
    seed: int = 0
    """Seeds the split into independent halves (noise detection); same seed, same output."""
    max_forbidden_edges: int = Field(default=60, ge=0)


class Evidence(_Frozen):
    support: int = Field(ge=0)
    total: int = Field(ge=0)
    unit: Literal["traces", "spans"] = "traces"
    confidence: float = Field(ge=0, le=1)

    def comment(self) -> str:
        """What the generated file says above the assertion."""
        return (f"seen in {self.support}/{self.total} {self.unit}, "
                f"confidence {self.confidence:.2f}")


class SpanPattern(_Frozen):
    """A span of this name (and kind) under this parent appears in the request type."""

    name: str
    parent: str | None
    kind: str
    service: str | None = None
    attrs: dict[str, str] = Field(default_factory=dict)
    """Attributes constant on every such span (noise already removed)."""
    status: Literal["OK", "ERROR", "UNSET"] | None = None
    """The status most such spans carry, when an export almost surely shows one with it."""
    evidence: Evidence


class AttributeProfile(_Frozen):
    """How one attribute key of one span shape behaves, judged on two independent halves."""

    span: str
    parent: str | None
    key: str
    verdict: Literal["constant", "enumeration", "noise"]
    values: list[str] = Field(default_factory=list)
    """The value (constant) or the values (enumeration); empty for noise."""
    distinct: int
    reason: str
    dominant: str | None = None
    """An enumeration's value on most spans, asserted to appear when frequent enough."""
    dominant_confidence: float = 0.0
    evidence: Evidence


class OrderPattern(_Frozen):
    """Siblings under ``parent``: every ``first`` ends before any ``then`` starts."""

    first: str
    then: str
    parent: str
    evidence: Evidence


class CountPattern(_Frozen):
    """How many spans of a name an export with the source's requests holds."""

    name: str
    per_trace_min: int
    per_trace_max: int
    """Per trace of this request type."""
    gte: int
    lte: int
    also_in: list[str] = Field(default_factory=list)
    """Other request types making spans of this name (their share is in the total)."""
    evidence: Evidence


class StatusPattern(_Frozen):
    name: str
    status: Literal["OK", "ERROR", "UNSET"]
    evidence: Evidence


class ErrorRatePattern(_Frozen):
    name: str
    errors: int
    spans: int
    rate: float
    """Frequent enough (with ``include_error_scenarios``) to assert an ERROR span appears."""
    assert_error_path: bool = False
    evidence: Evidence


class WindowPattern(_Frozen):
    outer: str
    contains: list[str]
    evidence: Evidence


class LatencyPattern(_Frozen):
    """A fast-path envelope: at least one span of ``name`` finishes within ``max_ms``.

    ``quantile`` is chosen from the sample size so that a same-sized export of the
    unchanged system almost surely has a span that fast, and ``tolerance`` from the
    spread between two independent halves; a service that got much slower has
    none left under the bound.
    """

    name: str
    spans: int
    p50_ms: float
    p95_ms: float
    quantile: float
    quantile_ms: float
    tolerance: float
    max_ms: float
    evidence: Evidence
    basis: str = "quantile"
    """``quantile``: ``quantile_ms`` is the sample's ``quantile``; ``floor``: it is the
    slower half's fastest span (the tighter model wins, see ``mine._floor``)."""


class ForbiddenEdge(_Frozen):
    """``parent`` (service ``from_service``) was never seen calling ``to_service``."""

    parent: str
    child: str
    from_service: str
    to_service: str
    evidence: Evidence


class RequestTypePatterns(_Frozen):
    """Everything mined for one request type (one root span name and service)."""

    key: str
    root: str
    service: str | None
    traces: int
    spans: list[SpanPattern] = Field(default_factory=list)
    attributes: list[AttributeProfile] = Field(default_factory=list)
    order: list[OrderPattern] = Field(default_factory=list)
    counts: list[CountPattern] = Field(default_factory=list)
    status: list[StatusPattern] = Field(default_factory=list)
    error_rates: list[ErrorRatePattern] = Field(default_factory=list)
    windows: list[WindowPattern] = Field(default_factory=list)
    latency: list[LatencyPattern] = Field(default_factory=list)
    self_time: list[LatencyPattern] = Field(default_factory=list)
    """Envelopes of spans' self time (``self_ms``), mined like ``latency``; only for names
    whose spans have children (a leaf's self time is its duration)."""
    forbidden: list[ForbiddenEdge] = Field(default_factory=list)


class MinedPatterns(_Frozen):
    """The result of mining one corpus: the input of the test writer."""

    source: str
    options: MiningOptions
    traces: int
    spans: int
    request_types: list[RequestTypePatterns]


__all__ = [
    "AttributeProfile",
    "CountPattern",
    "ErrorRatePattern",
    "Evidence",
    "ForbiddenEdge",
    "LatencyPattern",
    "MinedPatterns",
    "MiningOptions",
    "OrderPattern",
    "RequestTypePatterns",
    "SpanPattern",
    "StatusPattern",
    "WindowPattern",
    "existential_confidence",
    "universal_confidence",
]
