"""Jaeger JSON (the query API's and UI's "download JSON" shape) into spans.

Mirrors how the OpenTelemetry collector translates Jaeger to OTLP, so a trace
exported either way validates the same: the ``span.kind`` tag gives the kind,
``otel.status_code``/``otel.status_description`` the status, ``otel.scope.name``
(or the older ``otel.library.name``) the scope, the first ``CHILD_OF``
reference within the same trace the parent, and the process (service name and
tags) the resource.  Tags stay in ``attributes`` too, so nothing is lost.
Ids are zero-padded to OTLP width (Jaeger may drop leading zeros).

Times must fit OTLP's uint64 nanoseconds once multiplied from microseconds,
and a span's ``processID`` must name a process of its trace: both are
:class:`JaegerValueError` naming the key path (``data[0].spans[3].processID``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Final, Required

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from clnrm.otel.decode import status_from_attributes
from clnrm.otel.span import AttrValue, Span, SpanEvent

_KINDS: Final = frozenset({"internal", "server", "client", "producer", "consumer"})
_US: Final = 1000  # Jaeger times are microseconds
MAX_MICROS: Final = (2**64 - 1) // _US
"""Latest Jaeger time (microseconds) whose nanoseconds still fit OTLP's uint64."""
Micros = Annotated[int, Field(ge=0, le=MAX_MICROS)]
"""A Jaeger time or duration in microseconds."""


class JaegerValueError(ValueError):
    """A validated export still cannot be converted; ``loc`` is the key path of the culprit."""

    def __init__(self, message: str, loc: list[str | int]) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc


class _RawTag(TypedDict, total=False):
    key: Required[str]
    type: str
    value: str | bool | int | float | None


def _tag(tag: _RawTag) -> tuple[str, AttrValue]:
    """Check a tag's value against its declared type and return ``(key, value)``."""
    kind = tag.get("type", "string").lower()
    value = tag.get("value")
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int64":
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float64":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif kind == "binary":
        try:
            value = base64.b64decode(str(value), validate=True).hex()
            ok = True
        except (binascii.Error, ValueError):
            ok = False
    else:
        raise ValueError(f"unknown tag type {kind!r} (string, bool, int64, float64, binary)")
    if not ok:
        raise ValueError(f"tag {tag['key']!r} is declared {kind} but holds {value!r}")
    return tag["key"], value


Tag = Annotated[_RawTag, AfterValidator(_tag)]
"""A ``{key, type, value}`` tag, validated into ``(key, value)``."""
HexId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{1,32}$")]
"""A Jaeger id: hex, possibly without its leading zeros."""


class JaegerReference(TypedDict, total=False):
    refType: Required[str]
    traceID: HexId
    spanID: Required[HexId]


class JaegerLog(TypedDict, total=False):
    timestamp: Micros
    fields: list[Tag]


class JaegerSpan(TypedDict, total=False):
    traceID: Required[HexId]
    spanID: Required[HexId]
    parentSpanID: HexId
    operationName: Required[str]
    references: list[JaegerReference] | None
    startTime: Micros
    duration: Micros
    tags: list[Tag] | None
    logs: list[JaegerLog] | None
    processID: str


class JaegerProcess(TypedDict, total=False):
    serviceName: str
    tags: list[Tag] | None


class JaegerTrace(TypedDict, total=False):
    traceID: HexId
    spans: Required[list[JaegerSpan]]
    processes: dict[str, JaegerProcess] | None


class JaegerExport(TypedDict, total=False):
    data: Required[list[JaegerTrace]]


JAEGER_ADAPTER: Final = TypeAdapter(JaegerExport)
"""Validates a whole Jaeger JSON export."""


def spans_from_jaeger(export: JaegerExport) -> list[Span]:
    """Convert a validated export; a span without a processID just has an empty resource."""
    out: list[Span] = []
    for ti, trace in enumerate(export["data"]):
        resources = {pid: _resource(proc) for pid, proc in (trace.get("processes") or {}).items()}
        for si, sp in enumerate(trace["spans"]):
            trace_id = sp["traceID"].lower().zfill(32)
            attrs: dict[str, AttrValue] = dict(sp.get("tags") or ())  # type: ignore[arg-type]
            start = sp.get("startTime")
            duration = sp.get("duration")
            if start and duration is not None and start + duration > MAX_MICROS:
                raise JaegerValueError(
                    f"startTime + duration ({start + duration} us) is past the largest time "
                    f"OTLP can hold ({MAX_MICROS} us)", ["data", ti, "spans", si, "duration"])
            process = sp.get("processID")
            if process is not None and process not in resources:
                known = ", ".join(sorted(resources)) or "none"
                raise JaegerValueError(
                    f"processID {process!r} is not one of this trace's processes ({known})",
                    ["data", ti, "spans", si, "processID"])
            kind = attrs.get("span.kind")
            scope = attrs.get("otel.scope.name", attrs.get("otel.library.name"))
            out.append(Span(
                name=sp["operationName"],
                trace_id=trace_id,
                span_id=sp["spanID"].lower().zfill(16),
                parent_span_id=_parent(sp, trace_id),
                start_time_unix_nano=start * _US if start else None,
                end_time_unix_nano=(start + duration) * _US if start and duration is not None
                else None,
                kind=kind.lower() if isinstance(kind, str) and kind.lower() in _KINDS
                else "internal",
                status=status_from_attributes(attrs),
                status_message=str(attrs.get("otel.status_description") or ""),
                attributes=attrs,
                events=[_event(log) for log in sp.get("logs") or ()],
                resource=dict(resources.get(process or "", {})),
                scope=scope if isinstance(scope, str) else None,
            ))
    return out


def _parent(sp: JaegerSpan, trace_id: str) -> str | None:
    for ref in sp.get("references") or ():
        same_trace = ref.get("traceID") is None or ref["traceID"].lower().zfill(32) == trace_id
        if ref["refType"].upper() == "CHILD_OF" and same_trace:
            return ref["spanID"].lower().zfill(16)
    parent = sp.get("parentSpanID")  # pre-1.0 Jaeger field
    if parent and int(parent, 16):
        return parent.lower().zfill(16)
    return None


def _resource(proc: JaegerProcess) -> dict[str, AttrValue]:
    resource: dict[str, AttrValue] = dict(proc.get("tags") or ())  # type: ignore[arg-type]
    if "serviceName" in proc:
        resource["service.name"] = proc["serviceName"]
    return resource


def _event(log: JaegerLog) -> SpanEvent:
    fields: dict[str, Any] = dict(log.get("fields") or ())  # type: ignore[arg-type]
    name = fields.pop("event", None)
    ts = log.get("timestamp")
    return SpanEvent(name=name if isinstance(name, str) else "log",
                     time_unix_nano=ts * _US if ts else None, attributes=fields)
