"""The one span type every layer reads: validators, reports, performance, healer.

A plain slotted dataclass rather than a pydantic model because runs and
benchmarks hold up to millions of them; file formats that carry spans
(``spans.jsonl``, OTLP JSON, Jaeger JSON) are parsed into it by
:mod:`clnrm.otel.tracefile` and the receiver, which own validation.

Conventions (all parsers must produce these):
- ids are lowercase hex strings (trace 32 chars, span 16); ``parent_span_id``
  is ``None`` for a root span (never ``""``);
- times are integer Unix nanoseconds, ``None`` when the source had none;
- ``kind`` is one of ``internal server client producer consumer unspecified``
  (upstream clnrm's lower-case spelling);
- ``status`` is ``UNSET``, ``OK`` or ``ERROR``: the OTLP status field, or, for
  sources without one, upstream's attribute fallback (``otel.status_code``,
  then ``status``);
- attribute values are plain Python values (str, bool, int, float, or lists
  of those, or a dict for an OTLP kvlist), never OTLP ``{"stringValue": ...}``
  wrappers;
- ``resource`` holds resource attributes (``service.name``...), same typing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

AttrValue = str | bool | int | float | list[Any] | dict[str, Any] | None
"""A span or resource attribute value after decoding."""


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_unix_nano: int | None = None
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    start_time_unix_nano: int | None = None
    end_time_unix_nano: int | None = None
    kind: str = "internal"
    status: str = "UNSET"
    status_message: str = ""
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, AttrValue] = field(default_factory=dict)
    scope: str | None = None

    @property
    def duration_ms(self) -> float | None:
        """Duration, or None when a timestamp is missing or the end precedes the start."""
        if self.start_time_unix_nano is None or self.end_time_unix_nano is None:
            return None
        if self.end_time_unix_nano < self.start_time_unix_nano:
            return None
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e6

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``spans.jsonl`` and reports (one key per field)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        """Inverse of :meth:`to_dict`; callers validate untrusted input first."""
        events = [SpanEvent(**e) for e in data.get("events") or []]
        return cls(**{**data, "events": events})
