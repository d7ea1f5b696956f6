"""Typed shape of an OTLP/JSON ``ExportTraceServiceRequest``.

TypedDicts rather than models: validation stays in pydantic-core (Rust) end to
end and yields plain dicts, with no model instance (and, bytes values aside, no Python
validator call) per span or attribute, which is what lets a 100k-span file load in about
a second; :mod:`clnrm.otel.decode` turns the result into spans.

What the OTLP/JSON spec (and the proto3 JSON mapping) allows, we accept:
lowerCamelCase keys and the original snake_case names, 64-bit integers as
JSON strings or numbers, enums as numbers or names, ``"NaN"``/``"Infinity"``
doubles.  Ids are hex, as OTLP/JSON requires (not proto3's base64).  Unknown
keys (``links``, ``traceState``, ``droppedAttributesCount``...) are ignored
so newer exporters keep working.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final, Literal, Required

from pydantic import AfterValidator, AliasChoices, Field, StringConstraints, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12


def _alias(camel: str, snake: str) -> AliasChoices:
    return AliasChoices(camel, snake)


def _base64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise ValueError("bytesValue must be base64") from None


TraceIdHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]
"""A 16-byte trace id as 32 hex digits."""
SpanIdHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{16}$")]
"""An 8-byte span id as 16 hex digits."""
ParentIdHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-fA-F]{16})?$")]
"""A parent span id; empty for a root span."""
UnixNano = Annotated[int, Field(ge=0, le=2**64 - 1)]
"""Unix nanoseconds, a proto ``fixed64`` (so at most 2**64 - 1); 0 means "not recorded"."""
KindValue = (int | Literal["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
                           "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"])
"""``kind`` as its enum number or name."""
StatusCodeValue = int | Literal["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
"""``status.code`` as its enum number or name."""


class AnyValue(TypedDict, total=False):
    """One attribute value: exactly one key is expected, the first one wins."""

    stringValue: Annotated[str, Field(validation_alias=_alias("stringValue", "string_value"))]
    boolValue: Annotated[bool, Field(validation_alias=_alias("boolValue", "bool_value"))]
    intValue: Annotated[int, Field(validation_alias=_alias("intValue", "int_value"))]
    doubleValue: Annotated[float, Field(validation_alias=_alias("doubleValue", "double_value"))]
    arrayValue: Annotated[ArrayValue, Field(validation_alias=_alias("arrayValue", "array_value"))]
    kvlistValue: Annotated[KeyValueList,
                           Field(validation_alias=_alias("kvlistValue", "kvlist_value"))]
    bytesValue: Annotated[str, AfterValidator(_base64_to_hex),
                          Field(validation_alias=_alias("bytesValue", "bytes_value"))]


class ArrayValue(TypedDict, total=False):
    values: list[AnyValue]


class KeyValue(TypedDict, total=False):
    key: Required[str]
    value: AnyValue


class KeyValueList(TypedDict, total=False):
    values: list[KeyValue]


class Status(TypedDict, total=False):
    code: StatusCodeValue
    message: str


class Event(TypedDict, total=False):
    name: str
    timeUnixNano: Annotated[UnixNano, Field(validation_alias=_alias("timeUnixNano",
                                                                     "time_unix_nano"))]
    attributes: list[KeyValue]


class OtlpSpan(TypedDict, total=False):
    traceId: Required[Annotated[TraceIdHex, Field(validation_alias=_alias("traceId",
                                                                           "trace_id"))]]
    spanId: Required[Annotated[SpanIdHex, Field(validation_alias=_alias("spanId", "span_id"))]]
    parentSpanId: Annotated[ParentIdHex, Field(validation_alias=_alias("parentSpanId",
                                                                        "parent_span_id"))]
    name: str
    kind: KindValue
    startTimeUnixNano: Annotated[UnixNano, Field(validation_alias=_alias(
        "startTimeUnixNano", "start_time_unix_nano"))]
    endTimeUnixNano: Annotated[UnixNano, Field(validation_alias=_alias(
        "endTimeUnixNano", "end_time_unix_nano"))]
    attributes: list[KeyValue]
    events: list[Event]
    status: Status


class Scope(TypedDict, total=False):
    name: str
    version: str


class Resource(TypedDict, total=False):
    attributes: list[KeyValue]


class ScopeSpans(TypedDict, total=False):
    scope: Scope
    spans: list[OtlpSpan]


class ResourceSpans(TypedDict, total=False):
    resource: Resource
    scopeSpans: Annotated[list[ScopeSpans], Field(validation_alias=_alias("scopeSpans",
                                                                           "scope_spans"))]


class ExportTraceServiceRequest(TypedDict, total=False):
    resourceSpans: Annotated[list[ResourceSpans], Field(validation_alias=_alias(
        "resourceSpans", "resource_spans"))]


REQUEST_ADAPTER: Final = TypeAdapter(ExportTraceServiceRequest)
"""Validates one request from JSON text or from already parsed JSON."""
