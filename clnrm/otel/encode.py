"""Spans back into OTLP: the inverse of :mod:`clnrm.otel.decode`.

Used to export what a run received (OTLP JSON is what other tools import),
by the ingest benchmark, and by tests, which check that encode-then-decode
gives back the same spans.  Spans that share a resource and scope are grouped
under one ``ResourceSpans``/``ScopeSpans``, as an SDK would send them.
Byte attributes cannot round-trip: decoding already turned them into hex text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, cast

from clnrm.otel.decode import KINDS, STATUSES
from clnrm.otel.span import Span

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

_KIND_NUMBER: Final = {k: i for i, k in enumerate(KINDS)}
_STATUS_NUMBER: Final = {s: i for i, s in enumerate(STATUSES)}


def _groups(spans: Iterable[Span]) -> dict[str, dict[str | None, list[Span]]]:
    groups: dict[str, dict[str | None, list[Span]]] = {}
    for span in spans:
        key = json.dumps(span.resource, sort_keys=True, default=str)
        groups.setdefault(key, {}).setdefault(span.scope, []).append(span)
    return groups


def request_from_spans(spans: Iterable[Span]) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` protobuf message holding ``spans``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    for by_scope in _groups(spans).values():
        rs = request.resource_spans.add()
        first = next(iter(by_scope.values()))[0]
        _pb_attrs(rs.resource.attributes, first.resource)
        for scope, members in by_scope.items():
            ss = rs.scope_spans.add()
            if scope is not None:
                ss.scope.name = scope
            for span in members:
                pb = ss.spans.add(
                    trace_id=bytes.fromhex(span.trace_id), span_id=bytes.fromhex(span.span_id),
                    parent_span_id=bytes.fromhex(span.parent_span_id or ""), name=span.name,
                    kind=_KIND_NUMBER.get(span.kind, 0),
                    start_time_unix_nano=span.start_time_unix_nano or 0,
                    end_time_unix_nano=span.end_time_unix_nano or 0)
                pb.status.code = cast("Status.StatusCode.ValueType",
                                      _STATUS_NUMBER.get(span.status, 0))
                pb.status.message = span.status_message
                _pb_attrs(pb.attributes, span.attributes)
                for event in span.events:
                    ev = pb.events.add(name=event.name, time_unix_nano=event.time_unix_nano or 0)
                    _pb_attrs(ev.attributes, event.attributes)
    return request


def _pb_attrs(target: Any, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        kv = target.add(key=key)
        _pb_value(kv.value, value)


def _pb_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, list | tuple):
        target.array_value.SetInParent()
        for item in value:
            _pb_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        _pb_attrs(target.kvlist_value.values, value)
    elif value is not None:
        target.string_value = str(value)


def otlp_json_from_spans(spans: Iterable[Span]) -> dict[str, Any]:
    """The same request in the OTLP/JSON mapping (hex ids, 64-bit ints as strings)."""
    resource_spans = []
    for by_scope in _groups(spans).values():
        first = next(iter(by_scope.values()))[0]
        scope_spans = []
        for scope, members in by_scope.items():
            scope_spans.append({"scope": {"name": scope or ""},
                                "spans": [_json_span(s) for s in members]})
        resource_spans.append({"resource": {"attributes": _json_attrs(first.resource)},
                               "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans}


def _json_span(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id, "spanId": span.span_id,
        "parentSpanId": span.parent_span_id or "", "name": span.name,
        "kind": _KIND_NUMBER.get(span.kind, 0),
        "startTimeUnixNano": str(span.start_time_unix_nano or 0),
        "endTimeUnixNano": str(span.end_time_unix_nano or 0),
        "attributes": _json_attrs(span.attributes),
        "status": {"code": _STATUS_NUMBER.get(span.status, 0), "message": span.status_message},
    }
    if span.events:
        out["events"] = [{"name": e.name, "timeUnixNano": str(e.time_unix_nano or 0),
                          "attributes": _json_attrs(e.attributes)} for e in span.events]
    return out


def _json_attrs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _json_value(v)} for k, v in attrs.items()]


def _json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else
                ("Infinity" if value > 0 else "-Infinity")}  # proto3 JSON spelling
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_json_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _json_attrs(value)}}
    return {} if value is None else {"stringValue": str(value)}
