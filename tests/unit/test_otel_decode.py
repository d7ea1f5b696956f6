"""OTLP protobuf and OTLP/JSON payloads decode into spans that follow span.py's conventions."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from clnrm.otel.decode import (
    OtlpDecodeError,
    spans_from_json,
    spans_from_protobuf,
    status_from_attributes,
)
from clnrm.otel.encode import otlp_json_from_spans, request_from_spans
from clnrm.otel.span import Span, SpanEvent

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
PARENT = "00f067aa0ba902b7"


def pb_request(*spans: PbSpan, resource: list[KeyValue] | None = None,
               scope: str = "lib") -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(resource or [kv("service.name", AnyValue(string_value="api"))])
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.spans.extend(spans)
    return req.SerializeToString()


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def pb_span(**fields: Any) -> PbSpan:
    base: dict[str, Any] = {"trace_id": bytes.fromhex(TRACE), "span_id": bytes.fromhex(SPAN),
                            "name": "op"}
    return PbSpan(**{**base, **fields})


def json_request(*spans: dict[str, Any]) -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": list(spans)}]}]}).encode()


def json_span(**fields: Any) -> dict[str, Any]:
    return {"traceId": TRACE, "spanId": SPAN, "name": "op", **fields}


# -- protobuf ------------------------------------------------------------------------


def test_protobuf_span_fields_follow_span_conventions() -> None:
    [span] = spans_from_protobuf(pb_request(pb_span(
        parent_span_id=bytes.fromhex(PARENT), kind=PbSpan.SPAN_KIND_SERVER,
        start_time_unix_nano=10, end_time_unix_nano=2_000_010,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"))))
    assert span == Span(name="op", trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT,
                        start_time_unix_nano=10, end_time_unix_nano=2_000_010, kind="server",
                        status="ERROR", status_message="boom", resource={"service.name": "api"},
                        scope="lib")
    assert span.duration_ms == 2.0


def test_protobuf_root_span_has_none_parent_and_missing_times_are_none() -> None:
    [span] = spans_from_protobuf(pb_request(pb_span()))
    assert span.parent_span_id is None
    assert span.start_time_unix_nano is None and span.end_time_unix_nano is None


def test_protobuf_every_attribute_type_decodes_to_plain_values() -> None:
    attrs = [
        kv("s", AnyValue(string_value="text")),
        kv("b", AnyValue(bool_value=True)),
        kv("i", AnyValue(int_value=-(2**62))),
        kv("d", AnyValue(double_value=0.25)),
        kv("arr", AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1),
                                                          AnyValue(string_value="x")]))),
        kv("kv", AnyValue(kvlist_value=KeyValueList(values=[kv("inner", AnyValue(
            bool_value=False))]))),
        kv("bytes", AnyValue(bytes_value=b"\x01\xff")),
        kv("empty", AnyValue()),
    ]
    [span] = spans_from_protobuf(pb_request(pb_span(attributes=attrs)))
    assert span.attributes == {"s": "text", "b": True, "i": -(2**62), "d": 0.25,
                               "arr": [1, "x"], "kv": {"inner": False}, "bytes": "01ff",
                               "empty": None}


@pytest.mark.parametrize(("number", "kind"), [
    (0, "unspecified"), (1, "internal"), (2, "server"), (3, "client"), (4, "producer"),
    (5, "consumer"), (9, "unspecified")])
def test_protobuf_kind_numbers_map_to_lowercase_names(number: int, kind: str) -> None:
    [span] = spans_from_protobuf(pb_request(pb_span(kind=number)))
    assert span.kind == kind


def test_protobuf_events_resource_and_scope_are_kept() -> None:
    pb = pb_span()
    pb.events.add(name="retry", time_unix_nano=5, attributes=[kv("n", AnyValue(int_value=2))])
    [span] = spans_from_protobuf(pb_request(pb, scope="", resource=[
        kv("service.name", AnyValue(string_value="db")), kv("pid", AnyValue(int_value=7))]))
    assert span.events == [SpanEvent("retry", 5, {"n": 2})]
    assert span.resource == {"service.name": "db", "pid": 7}
    assert span.scope is None  # an empty scope name means none


@pytest.mark.parametrize(("code", "attrs", "expected"), [
    (Status.STATUS_CODE_OK, {"otel.status_code": "ERROR"}, "OK"),
    (Status.STATUS_CODE_ERROR, {"otel.status_code": "OK"}, "ERROR"),
    (Status.STATUS_CODE_UNSET, {"otel.status_code": "ERROR"}, "ERROR"),
    (Status.STATUS_CODE_UNSET, {"status": "ok"}, "OK"),
    (Status.STATUS_CODE_UNSET, {"otel.status_code": "OK", "status": "error"}, "OK"),
    (Status.STATUS_CODE_UNSET, {"status": "200"}, "UNSET"),
    (Status.STATUS_CODE_UNSET, {}, "UNSET"),
])
def test_status_attribute_fallback_applies_only_when_otlp_status_is_unset(
        code: int, attrs: dict[str, str], expected: str) -> None:
    pb = pb_span(status=Status(code=code),
                 attributes=[kv(k, AnyValue(string_value=v)) for k, v in attrs.items()])
    [span] = spans_from_protobuf(pb_request(pb))
    assert span.status == expected


def test_status_from_attributes_accepts_otlp_enum_spelling() -> None:
    assert status_from_attributes({"otel.status_code": "STATUS_CODE_ERROR"}) == "ERROR"
    assert status_from_attributes({"otel.status_code": 2}) == "UNSET"


def test_protobuf_garbage_is_a_decode_error() -> None:
    with pytest.raises(OtlpDecodeError, match="not an OTLP ExportTraceServiceRequest"):
        spans_from_protobuf(b"\xff\xff\xff garbage")


@pytest.mark.parametrize(("fields", "path", "size"), [
    ({"trace_id": b"\x01" * 8}, "spans[0].traceId", 16),
    ({"span_id": b""}, "spans[0].spanId", 8),
    ({"parent_span_id": b"\x01" * 4}, "spans[0].parentSpanId", 8),
])
def test_protobuf_wrong_id_length_names_the_field(fields: dict[str, bytes], path: str,
                                                  size: int) -> None:
    with pytest.raises(OtlpDecodeError) as info:
        spans_from_protobuf(pb_request(pb_span(**fields)))
    assert info.value.key_path == f"resourceSpans[0].scopeSpans[0].{path}"
    assert f"must be {size} bytes" in str(info.value)


# -- OTLP/JSON -----------------------------------------------------------------------


def test_json_request_decodes_like_protobuf() -> None:
    data = json_request(json_span(
        parentSpanId=PARENT.upper(), kind=2, startTimeUnixNano="10", endTimeUnixNano=2_000_010,
        status={"code": 2, "message": "boom"},
        events=[{"name": "retry", "timeUnixNano": "5",
                 "attributes": [{"key": "n", "value": {"intValue": "2"}}]}]))
    [span] = spans_from_json(data)
    assert span == Span(name="op", trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT,
                        start_time_unix_nano=10, end_time_unix_nano=2_000_010, kind="server",
                        status="ERROR", status_message="boom",
                        events=[SpanEvent("retry", 5, {"n": 2})],
                        resource={"service.name": "api"}, scope="lib")


def test_json_every_attribute_type_decodes_to_plain_values() -> None:
    attrs = [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "i", "value": {"intValue": "-4611686018427387904"}},
        {"key": "i2", "value": {"intValue": 7}},
        {"key": "d", "value": {"doubleValue": 0.25}},
        {"key": "inf", "value": {"doubleValue": "Infinity"}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": "1"},
                                                           {"stringValue": "x"}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [
            {"key": "inner", "value": {"boolValue": False}}]}}},
        {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x01\xff").decode()}},
        {"key": "empty", "value": {}},
        {"key": "absent"},
    ]
    [span] = spans_from_json(json_request(json_span(attributes=attrs)))
    assert span.attributes == {"s": "text", "b": True, "i": -(2**62), "i2": 7, "d": 0.25,
                               "inf": math.inf, "arr": [1, "x"], "kv": {"inner": False},
                               "bytes": "01ff", "empty": None, "absent": None}


@pytest.mark.parametrize(("kind", "expected"), [
    (1, "internal"), ("SPAN_KIND_CONSUMER", "consumer"), ("SPAN_KIND_PRODUCER", "producer"),
    ("3", "client"), (42, "unspecified")])
def test_json_kind_may_be_a_number_or_an_enum_name(kind: int | str, expected: str) -> None:
    [span] = spans_from_json(json_request(json_span(kind=kind)))
    assert span.kind == expected


@pytest.mark.parametrize(("status", "attrs", "expected"), [
    ({"code": "STATUS_CODE_OK"}, [], "OK"),
    ({"code": 0}, [{"key": "otel.status_code", "value": {"stringValue": "ERROR"}}], "ERROR"),
    ({}, [{"key": "status", "value": {"stringValue": "ok"}}], "OK"),
    ({"code": 1}, [{"key": "otel.status_code", "value": {"stringValue": "ERROR"}}], "OK"),
])
def test_json_status_and_fallback(status: dict[str, Any], attrs: list[Any],
                                  expected: str) -> None:
    [span] = spans_from_json(json_request(json_span(status=status, attributes=attrs)))
    assert span.status == expected


def test_json_accepts_snake_case_field_names_of_the_proto3_mapping() -> None:
    data = json.dumps({"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": TRACE, "span_id": SPAN, "parent_span_id": "", "name": "op",
        "start_time_unix_nano": "3", "attributes": [{"key": "a", "value": {
            "string_value": "x"}}]}]}]}]})
    [span] = spans_from_json(data)
    assert (span.trace_id, span.parent_span_id, span.start_time_unix_nano) == (TRACE, None, 3)
    assert span.attributes == {"a": "x"}


def test_json_base64_ids_are_rejected_with_a_hint() -> None:
    b64 = base64.b64encode(bytes.fromhex(TRACE)).decode()
    with pytest.raises(OtlpDecodeError) as info:
        spans_from_json(json_request(json_span(traceId=b64)))
    assert info.value.key_path == "resourceSpans[0].scopeSpans[0].spans[0].traceId"
    assert "must be 32 hex digits (OTLP/JSON ids are hex, not base64)" in info.value.message


@pytest.mark.parametrize(("span", "path", "text"), [
    ({"spanId": SPAN, "name": "x"}, "spans[0].traceId", "required field is missing"),
    (json_span(kind="SERVER"), "spans[0].kind", "one of SPAN_KIND_CLIENT"),
    (json_span(startTimeUnixNano="soon"), "spans[0].startTimeUnixNano", "valid integer"),
    (json_span(attributes=[{"key": "a", "value": {"intValue": "1.5"}}]),
     "spans[0].attributes[0].value.intValue", "valid integer"),
    (json_span(attributes=[{"key": "a", "value": {"bytesValue": "%%"}}]),
     "spans[0].attributes[0].value.bytesValue", "bytesValue must be base64"),
])
def test_json_structural_errors_name_the_key_path(span: dict[str, Any], path: str,
                                                  text: str) -> None:
    with pytest.raises(OtlpDecodeError) as info:
        spans_from_json(json_request(span))
    assert info.value.key_path == f"resourceSpans[0].scopeSpans[0].{path}"
    assert text in info.value.message


def test_json_syntax_error_has_line_and_column() -> None:
    with pytest.raises(OtlpDecodeError) as info:
        spans_from_json(b'{\n  "resourceSpans": [\n    {,\n')
    assert (info.value.line, info.value.column) == (3, 6)
    assert info.value.message.startswith("invalid JSON")


# -- round trips (property tests) ------------------------------------------------------

_hex = st.text("0123456789abcdef", min_size=1, max_size=1)
_scalar = st.one_of(st.text(max_size=8), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False))
_value = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)
_attrs = st.dictionaries(st.text(max_size=10), _value, max_size=5)
_nanos = st.one_of(st.none(), st.integers(1, 2**63))


@st.composite
def spans(draw: st.DrawFn) -> Span:
    ids = st.lists(_hex, min_size=16, max_size=16).map("".join)
    return Span(
        name=draw(st.text(max_size=12)),
        trace_id=draw(ids) + draw(ids), span_id=draw(ids),
        parent_span_id=draw(st.one_of(st.none(), ids)),
        start_time_unix_nano=draw(_nanos), end_time_unix_nano=draw(_nanos),
        kind=draw(st.sampled_from(["internal", "server", "client", "producer", "consumer",
                                   "unspecified"])),
        status=draw(st.sampled_from(["OK", "ERROR"])), status_message=draw(st.text(max_size=5)),
        attributes=draw(_attrs),
        events=draw(st.lists(st.builds(SpanEvent, st.text(max_size=5), _nanos, _attrs),
                             max_size=2)),
        resource=draw(st.dictionaries(st.text(max_size=8), _scalar, max_size=3)),
        scope=draw(st.one_of(st.none(), st.text(min_size=1, max_size=6))))


@settings(max_examples=150, deadline=None)
@given(st.lists(spans(), max_size=4))
def test_protobuf_encode_decode_round_trips(original: list[Span]) -> None:
    decoded = spans_from_protobuf(request_from_spans(original).SerializeToString())
    assert sorted(decoded, key=repr) == sorted(original, key=repr)


@settings(max_examples=150, deadline=None)
@given(st.lists(spans(), max_size=4))
def test_json_encode_decode_round_trips(original: list[Span]) -> None:
    decoded = spans_from_json(json.dumps(otlp_json_from_spans(original)))
    assert sorted(decoded, key=repr) == sorted(original, key=repr)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_protobuf_decoder_raises_only_decode_errors(data: bytes) -> None:
    try:
        spans_from_protobuf(data)
    except OtlpDecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
                        st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId",
                                         "spanId", "attributes", "key", "value", "kind"]),
                        inner, max_size=4)), max_leaves=12))
def test_json_decoder_raises_only_decode_errors(doc: Any) -> None:
    try:
        spans_from_json(json.dumps(doc))
    except OtlpDecodeError:
        pass
