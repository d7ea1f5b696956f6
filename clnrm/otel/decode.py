"""OTLP trace payloads (protobuf and OTLP/JSON) into :class:`~clnrm.otel.span.Span`.

This is the receiver's hot path: a run may push hundreds of thousands of
spans, so both decoders read fields directly (no ``MessageToDict``, no
per-span model instances).  JSON is validated by one pydantic ``TypeAdapter``
over the typed shapes in :mod:`clnrm.otel.otlp_json`, which parses in Rust and
names the exact key path of a problem; the protobuf path relies on the
protobuf runtime (upb) for the wire format and checks id lengths itself.

Both decoders raise :class:`OtlpDecodeError`, never anything else, for bad
input: the receiver turns it into the protocol's error answer and
:mod:`clnrm.otel.tracefile` into a located :class:`~clnrm.errors.ScenarioError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from clnrm.otel.otlp_json import REQUEST_ADAPTER
from clnrm.otel.span import AttrValue, Span, SpanEvent

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
"""Span kind by its OTLP enum number (0..5); other numbers decode as ``unspecified``."""
STATUSES: Final = ("UNSET", "OK", "ERROR")
"""Span status by its OTLP status code (0..2)."""

_KIND_BY_NAME: Final = {f"SPAN_KIND_{k.upper()}": k for k in KINDS}
_STATUS_BY_NAME: Final = {f"STATUS_CODE_{s}": s for s in STATUSES}
_FALLBACK_STATUS: Final = {
    **{s: s for s in STATUSES}, **{f"STATUS_CODE_{s}": s for s in STATUSES}}
_LINE_COL: Final = re.compile(r"line (\d+) column (\d+)")


class OtlpDecodeError(ValueError):
    """A payload is not a valid OTLP trace export.

    ``key_path`` names the field (``resourceSpans[0].scopeSpans[0].spans[3].traceId``)
    when the structure is at fault; ``line``/``column`` are set (1-based) when the
    JSON text itself is broken.
    """

    def __init__(self, message: str, *, key_path: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key_path = key_path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"{self.key_path}: {self.message}" if self.key_path else self.message


def status_from_attributes(attributes: Mapping[str, Any]) -> str:
    """Upstream's status fallback for sources without an OTLP status.

    ``otel.status_code`` first, then ``status``; only values naming a status
    (``OK``, ``error``, ``STATUS_CODE_ERROR``...) count, anything else (an HTTP
    ``status`` of 200, say) leaves the span ``UNSET``.
    """
    for key in ("otel.status_code", "status"):
        value = attributes.get(key)
        if isinstance(value, str):
            found = _FALLBACK_STATUS.get(value.upper())
            if found is not None:
                return found
    return "UNSET"


# -- protobuf ----------------------------------------------------------------------


def spans_from_protobuf(data: bytes) -> list[Span]:
    """Decode a serialized ``ExportTraceServiceRequest``."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise OtlpDecodeError(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return spans_from_request(request)


def spans_from_request(request: ExportTraceServiceRequest) -> list[Span]:
    """Convert a request message already parsed (or built, as :mod:`clnrm.otel.encode` does)."""
    out: list[Span] = []
    append = out.append
    kinds = KINDS
    statuses = STATUSES
    for ri, rs in enumerate(request.resource_spans):
        resource = _pb_attrs(rs.resource.attributes)
        for si, ss in enumerate(rs.scope_spans):
            scope = ss.scope.name or None
            for pi, sp in enumerate(ss.spans):
                trace_id = sp.trace_id
                span_id = sp.span_id
                parent = sp.parent_span_id
                if len(trace_id) != 16 or len(span_id) != 8 or (parent and len(parent) != 8):
                    raise _bad_pb_id(ri, si, pi, trace_id, span_id, parent)
                attrs = _pb_attrs(sp.attributes)
                status = sp.status
                code = status.code
                kind = sp.kind
                start = sp.start_time_unix_nano
                end = sp.end_time_unix_nano
                events = sp.events
                # positional, in Span's field order: keywords cost 2x on this hot path
                append(Span(
                    sp.name,
                    trace_id.hex(),
                    span_id.hex(),
                    parent.hex() if parent else None,
                    start or None,
                    end or None,
                    kinds[kind] if 0 <= kind < 6 else "unspecified",
                    statuses[code] if 0 < code < 3 else status_from_attributes(attrs),
                    status.message,
                    attrs,
                    [SpanEvent(ev.name, ev.time_unix_nano or None, _pb_attrs(ev.attributes))
                     for ev in events] if events else [],
                    resource.copy(),
                    scope,
                ))
    return out


def _bad_pb_id(ri: int, si: int, pi: int, trace_id: bytes, span_id: bytes,
               parent: bytes) -> OtlpDecodeError:
    path = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
    for field, value, size in (("traceId", trace_id, 16), ("spanId", span_id, 8),
                               ("parentSpanId", parent, 8)):
        if len(value) != size and (field != "parentSpanId" or value):
            return OtlpDecodeError(f"must be {size} bytes, got {len(value)}",
                                   key_path=f"{path}.{field}")
    return OtlpDecodeError("invalid id", key_path=path)  # pragma: no cover - unreachable


def _pb_attrs(kvs: Iterable[KeyValue]) -> dict[str, AttrValue]:
    # inlined scalar case: attributes are ~80% of decode time (measured, bench/ingest.py)
    out: dict[str, AttrValue] = {}
    scalars = _PB_SCALARS
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        out[kv.key] = getattr(v, which) if which in scalars else _pb_value(v)
    return out


_PB_SCALARS: Final = frozenset({"string_value", "int_value", "bool_value", "double_value"})


def _pb_value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "bool_value":
        return v.bool_value
    if which == "double_value":
        return v.double_value
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return None


# -- OTLP/JSON ---------------------------------------------------------------------


def spans_from_json(data: bytes | str) -> list[Span]:
    """Decode one OTLP/JSON ``ExportTraceServiceRequest`` document."""
    try:
        request = REQUEST_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise otlp_error_from_validation(exc, data) from None
    return spans_from_json_object(request)


def spans_from_json_object(request: Mapping[str, Any]) -> list[Span]:
    """Convert a request already validated by ``REQUEST_ADAPTER`` (normalised keys)."""
    out: list[Span] = []
    append = out.append
    for rs in request.get("resourceSpans", ()):
        resource = _json_attrs(rs.get("resource", {}).get("attributes", ()))
        for ss in rs.get("scopeSpans", ()):
            scope = ss.get("scope", {}).get("name") or None
            for sp in ss.get("spans", ()):
                attrs = _json_attrs(sp.get("attributes", ()))
                status = sp.get("status", {})
                code = status.get("code", 0)
                if code.__class__ is str:
                    code = STATUSES.index(_STATUS_BY_NAME[code])
                kind = sp.get("kind", 0)
                if kind.__class__ is str:
                    kind_name = _KIND_BY_NAME[kind]
                else:
                    kind_name = KINDS[kind] if 0 <= kind < 6 else "unspecified"
                parent = sp.get("parentSpanId")
                events = sp.get("events")
                append(Span(
                    name=sp.get("name", ""),
                    trace_id=sp["traceId"].lower(),
                    span_id=sp["spanId"].lower(),
                    parent_span_id=parent.lower() if parent else None,
                    start_time_unix_nano=sp.get("startTimeUnixNano") or None,
                    end_time_unix_nano=sp.get("endTimeUnixNano") or None,
                    kind=kind_name,
                    status=STATUSES[code] if 0 < code < 3 else status_from_attributes(attrs),
                    status_message=status.get("message", ""),
                    attributes=attrs,
                    events=[SpanEvent(e.get("name", ""), e.get("timeUnixNano") or None,
                                      _json_attrs(e.get("attributes", ()))) for e in events]
                    if events else [],
                    resource=dict(resource),
                    scope=scope,
                ))
    return out


def _json_attrs(kvs: Iterable[Mapping[str, Any]]) -> dict[str, AttrValue]:
    return {kv["key"]: _json_value(kv.get("value")) for kv in kvs}


def _json_value(v: Mapping[str, Any] | None) -> Any:
    # the adapter keeps only the one key that was set, already converted
    if not v:
        return None
    for key, value in v.items():
        if key == "arrayValue":
            return [_json_value(x) for x in value.get("values", ())]
        if key == "kvlistValue":
            return {kv["key"]: _json_value(kv.get("value")) for kv in value.get("values", ())}
        return value
    return None  # pragma: no cover - loop returns on the first key


# -- errors ------------------------------------------------------------------------


def key_path(loc: Iterable[str | int]) -> str:
    """pydantic ``loc`` -> ``resourceSpans[0].scopeSpans[0].spans[3].traceId``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def otlp_error_from_validation(exc: ValidationError, data: bytes | str) -> OtlpDecodeError:
    """The first problem of a failed validation, located as precisely as JSON allows."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "json_invalid":
        return json_syntax_error(data, str(err.get("ctx", {}).get("error", err["msg"])))
    return OtlpDecodeError(friendly_message(err), key_path=key_path(clean_loc(err["loc"])) or None)


def json_syntax_error(data: bytes | str, fallback: str) -> OtlpDecodeError:
    """Locate broken JSON with the stdlib parser, whose errors carry line and column."""
    try:
        json.loads(data)
    except json.JSONDecodeError as exc:
        return OtlpDecodeError(f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno)
    except (UnicodeDecodeError, RecursionError) as exc:
        return OtlpDecodeError(f"invalid JSON: {exc}")
    match = _LINE_COL.search(fallback)
    if match:
        return OtlpDecodeError(f"invalid JSON: {fallback}", line=int(match[1]),
                               column=int(match[2]))
    return OtlpDecodeError(f"invalid JSON: {fallback}")


def friendly_message(err: Mapping[str, Any]) -> str:
    """pydantic's wording, except where it would confuse (id patterns, OTLP enums)."""
    loc = clean_loc(err["loc"])
    last = loc[-1] if loc else ""
    got = err.get("input")
    otlp = bool(loc) and loc[0] in ("resourceSpans", "resource_spans")
    if err["type"] == "string_pattern_mismatch" and isinstance(last, str) and last.endswith("Id"):
        size = 32 if last == "traceId" else 16
        return (f"must be {size} hex digits (OTLP/JSON ids are hex, not base64), "
                f"got {_short(got)}")
    if otlp and last in ("kind", "code") and err["type"] in ("int_parsing", "literal_error",
                                                             "int_type"):
        names = sorted(_KIND_BY_NAME if last == "kind" else _STATUS_BY_NAME)
        return f"must be an enum number or one of {', '.join(names)}, got {_short(got)}"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return f"{err['msg']}, got {_short(got)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def clean_loc(loc: Iterable[str | int]) -> list[str | int]:
    """pydantic's ``loc`` without the union members and validator names it adds."""
    return [p for p in loc if isinstance(p, int) or not (
        p in ("int", "str", "float", "bool", "none") or p.startswith(
            ("literal[", "constrained-str", "function-", "nullable[", "typed-dict",
             "json-or-python")))]
