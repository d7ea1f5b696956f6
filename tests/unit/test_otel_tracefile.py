"""Trace files (OTLP JSON, Jaeger JSON, spans.jsonl) load by content; bad ones are located."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clnrm.errors import ScenarioError
from clnrm.otel.encode import otlp_json_from_spans
from clnrm.otel.sink import JsonlSpanSink
from clnrm.otel.span import Span, SpanEvent
from clnrm.otel.tracefile import load_trace_file

TRACE = "0af7651916cd43dd8448eb211c80319c"
FIXTURE_REUSE = HealthCheck.function_scoped_fixture  # tmp_path is only a folder to write into


def otlp_doc(n: int = 2, trace: str = TRACE) -> dict[str, Any]:
    spans = [{"traceId": trace, "spanId": f"{i + 1:016x}", "name": f"op{i}", "kind": 2,
              "parentSpanId": f"{i:016x}" if i else "",
              "startTimeUnixNano": str(1000 + i), "endTimeUnixNano": str(2000 + i),
              "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}]}
             for i in range(n)]
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": spans}]}]}


def jaeger_doc() -> dict[str, Any]:
    return {"data": [{"traceID": TRACE[1:], "spans": [
        {"traceID": TRACE[1:], "spanID": "7ad6b7169203331", "operationName": "GET /",
         "references": [], "startTime": 1_700_000_000_000_000, "duration": 1500,
         "tags": [{"key": "span.kind", "type": "string", "value": "server"},
                  {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                  {"key": "otel.status_description", "type": "string", "value": "boom"},
                  {"key": "otel.scope.name", "type": "string", "value": "flask"},
                  {"key": "retries", "type": "int64", "value": 2},
                  {"key": "ratio", "type": "float64", "value": 0.5},
                  {"key": "cached", "type": "bool", "value": False},
                  {"key": "blob", "type": "binary", "value": "AQI="}],
         "logs": [{"timestamp": 1_700_000_000_000_100, "fields": [
             {"key": "event", "type": "string", "value": "exception"},
             {"key": "exception.type", "type": "string", "value": "KeyError"}]}],
         "processID": "p1"},
        {"traceID": TRACE[1:], "spanID": "1", "operationName": "SELECT",
         "references": [{"refType": "FOLLOWS_FROM", "traceID": TRACE, "spanID": "99"},
                        {"refType": "CHILD_OF", "traceID": TRACE[1:],
                         "spanID": "7ad6b7169203331"}],
         "startTime": 1_700_000_000_000_200, "duration": 10, "tags": [],
         "processID": "p2"}],
        "processes": {"p1": {"serviceName": "api", "tags": [
            {"key": "host.name", "type": "string", "value": "h1"}]},
                      "p2": {"serviceName": "db", "tags": []}}}]}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_trace_file(path)
    return info.value


# -- formats -------------------------------------------------------------------------


def test_otlp_json_document_loads_with_resource_and_scope(tmp_path: Path) -> None:
    spans = load_trace_file(write(tmp_path, "t.json", json.dumps(otlp_doc(), indent=2)))
    assert [s.name for s in spans] == ["op0", "op1"]
    assert spans[1].parent_span_id == spans[0].span_id and spans[0].parent_span_id is None
    assert spans[0].kind == "server" and spans[0].resource == {"service.name": "api"}
    assert spans[0].scope == "lib" and spans[0].attributes == {"http.route": "/x"}


def test_otlp_json_lines_as_the_collector_file_exporter_writes(tmp_path: Path) -> None:
    text = json.dumps(otlp_doc(2)) + "\n\n" + json.dumps(otlp_doc(3, "1" * 32)) + "\n"
    spans = load_trace_file(write(tmp_path, "traces.json", text))
    assert [s.name for s in spans] == ["op0", "op1", "op0", "op1", "op2"]


def test_jaeger_json_maps_tags_references_logs_and_processes(tmp_path: Path) -> None:
    root, child = load_trace_file(write(tmp_path, "jaeger.json", json.dumps(jaeger_doc())))
    assert root.trace_id == TRACE and root.span_id == "07ad6b7169203331"
    assert (root.kind, root.status, root.status_message, root.scope) == (
        "server", "ERROR", "boom", "flask")
    assert root.start_time_unix_nano == 1_700_000_000_000_000_000
    assert root.duration_ms == 1.5
    assert root.attributes["retries"] == 2 and root.attributes["ratio"] == 0.5
    assert root.attributes["cached"] is False and root.attributes["blob"] == "0102"
    assert root.events == [SpanEvent("exception", 1_700_000_000_000_100_000,
                                     {"exception.type": "KeyError"})]
    assert root.resource == {"host.name": "h1", "service.name": "api"}
    assert child.parent_span_id == root.span_id and child.span_id == "0000000000000001"
    assert child.kind == "internal" and child.status == "UNSET"
    assert child.resource == {"service.name": "db"}


def test_spans_jsonl_written_by_the_sink_loads_back_identically(tmp_path: Path) -> None:
    original = [
        Span(name="a", trace_id=TRACE, span_id="00f067aa0ba902b7", kind="client", status="OK",
             start_time_unix_nano=1, end_time_unix_nano=5, attributes={"n": [1, 2], "m": {"k": 1}},
             events=[SpanEvent("e", 3, {"x": "y"})], resource={"service.name": "api"},
             scope="lib"),
        Span(name="b", trace_id=TRACE, span_id="b7ad6b7169203331",
             parent_span_id="00f067aa0ba902b7"),
    ]
    with JsonlSpanSink(tmp_path / "run" / "spans.jsonl") as sink:
        sink.write(original[:1])
        sink.write(original[1:])
    assert load_trace_file(tmp_path / "run" / "spans.jsonl") == original


def test_upstream_stdout_span_lines_load_with_status_fallback(tmp_path: Path) -> None:
    line = {"name": "x", "trace_id": TRACE.upper(), "span_id": "B7AD6B7169203331",
            "parent_span_id": "", "kind": "SERVER", "attributes": {"otel.status_code": "ERROR"},
            "events": ["started"], "resource_attributes": {"service.name": "api"}}
    [span] = load_trace_file(write(tmp_path, "out.jsonl", json.dumps(line) + "\n"))
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        TRACE, "b7ad6b7169203331", None)
    assert (span.kind, span.status) == ("server", "ERROR")
    assert span.events == [SpanEvent("started")] and span.service_name == "api"


@pytest.mark.parametrize("text", ["", "\n  \n", "\ufeff \t"])
def test_empty_or_blank_file_is_refused_as_holding_no_spans(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "spans.jsonl", text)
    err = error(path)
    assert str(err).startswith(f"{path}: no spans: the trace file ")


# -- malformed input: located ScenarioErrors ------------------------------------------------


def test_bad_id_in_pretty_otlp_json_names_file_line_and_key_path(tmp_path: Path) -> None:
    doc = otlp_doc(4)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][3]["traceId"] = "xyz"
    text = json.dumps(doc, indent=2)
    path = write(tmp_path, "t.json", text)
    err = error(path)
    expected_line = [line.strip() for line in text.splitlines()].index('"traceId": "xyz",') + 1
    assert err.line == expected_line
    assert err.key_path == "resourceSpans[0].scopeSpans[0].spans[3].traceId"
    assert str(err).startswith(
        f"{path}:{expected_line}: [resourceSpans[0].scopeSpans[0].spans[3].traceId] OTLP JSON: "
        "must be 32 hex digits (OTLP/JSON ids are hex, not base64), got 'xyz'")
    assert "Hint: OTLP JSON follows the proto3 JSON mapping" in str(err)


def test_missing_field_points_at_the_enclosing_object(tmp_path: Path) -> None:
    doc = otlp_doc(2)
    del doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"]
    text = json.dumps(doc, indent=1)
    err = error(write(tmp_path, "t.json", text))
    assert err.key_path == "resourceSpans[0].scopeSpans[0].spans[1].spanId"
    assert "required field is missing" in str(err)
    assert text.splitlines()[err.line - 1].strip() == "{"  # the span object's first line


def test_truncated_json_names_line_and_column(tmp_path: Path) -> None:
    text = json.dumps(otlp_doc(), indent=2)[:-40]
    path = write(tmp_path, "cut.json", text)
    err = error(path)
    assert err.line == len(text.splitlines()) or err.line == len(text.splitlines()) + 1
    assert str(err).startswith(f"{path}:{err.line}: invalid JSON: ")
    assert "(column " in str(err)


def test_bad_line_in_json_lines_names_that_line(tmp_path: Path) -> None:
    good = json.dumps({"name": "a", "trace_id": TRACE, "span_id": "b7ad6b7169203331"})
    bad = json.dumps({"name": "b", "trace_id": TRACE, "span_id": "b7ad6b7169203331",
                      "kind": "srv"})
    path = write(tmp_path, "spans.jsonl", f"{good}\n{good}\n\n{bad}\n")
    err = error(path)
    assert (err.line, err.key_path) == (4, "kind")
    assert str(err).startswith(f"{path}:4: [kind] spans.jsonl: Input should be 'internal'")


def test_broken_json_line_names_line_and_column(tmp_path: Path) -> None:
    good = json.dumps({"name": "a", "trace_id": TRACE, "span_id": "b7ad6b7169203331"})
    path = write(tmp_path, "spans.jsonl", f"{good}\n{{\"name\": \"b\", \n")
    err = error(path)
    assert str(err).startswith(f"{path}:2: invalid JSON: Expecting property name enclosed in "
                               "double quotes (column 15)")


def test_jaeger_tag_of_the_wrong_type_is_located(tmp_path: Path) -> None:
    doc = jaeger_doc()
    doc["data"][0]["spans"][1]["tags"] = [{"key": "n", "type": "int64", "value": "many"}]
    text = json.dumps(doc, indent=1)
    path = write(tmp_path, "jaeger.json", text)
    err = error(path)
    assert err.key_path == "data[0].spans[1].tags[0]"
    assert f"{path}:{err.line}: [data[0].spans[1].tags[0]] Jaeger JSON: tag 'n' is declared " \
           "int64 but holds 'many'" in str(err)
    assert text.splitlines()[err.line - 1].strip() == "{"
    assert '"key": "n"' in text.splitlines()[err.line]


def test_unknown_json_object_lists_the_formats(tmp_path: Path) -> None:
    err = error(write(tmp_path, "x.json", '{\n  "foo": 1\n}\n'))
    assert "not a trace export: top-level keys ['foo']" in str(err)
    assert "Hint: clnrm reads OTLP JSON" in str(err) and "Jaeger JSON" in str(err)


def test_unknown_json_lines_record_lists_the_formats(tmp_path: Path) -> None:
    err = error(write(tmp_path, "x.jsonl", '{"level": "info", "msg": "hi"}\n'))
    assert str(err).startswith(f"{tmp_path / 'x.jsonl'}:1: not a trace record: keys "
                               "['level', 'msg']")


def test_json_array_is_rejected(tmp_path: Path) -> None:
    err = error(write(tmp_path, "x.json", "[1, 2]"))
    assert "must hold a JSON object (or one per line)" in str(err) and err.line == 1


def test_binary_file_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b'{"a": 1}\n\xff\xfe')
    err = error(path)
    assert err.line == 2 and "not UTF-8 text" in str(err)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    err = error(tmp_path / "nope.json")
    assert "cannot read trace file: No such file or directory" in str(err)


# -- property tests ------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(st.text(max_size=300))
def test_any_text_loads_or_fails_with_a_scenario_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_trace_file(path)
    except ScenarioError as exc:
        assert exc.file == path


_mutations = st.sampled_from(["traceId", "spanId", "kind", "startTimeUnixNano", "attributes",
                              "name", "status", "events"])


@settings(max_examples=150, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(_mutations, st.one_of(st.none(), st.integers(), st.text(max_size=6), st.booleans(),
                             st.lists(st.integers(), max_size=2), st.just({"x": 1})))
def test_mutated_otlp_field_loads_or_names_its_key_path(tmp_path: Path, field: str,
                                                         value: Any) -> None:
    doc = otlp_json_from_spans([Span(name="a", trace_id=TRACE, span_id="b7ad6b7169203331")])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0][field] = value
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    try:
        load_trace_file(path)
    except ScenarioError as exc:
        assert exc.key_path and exc.key_path.startswith(
            f"resourceSpans[0].scopeSpans[0].spans[0].{field}")
        assert exc.line is not None and exc.line > 1


# -- values past what OTLP can hold, dangling process ids, repeated span ids, depth -------------

U64 = 2**64 - 1


def test_otlp_start_time_beyond_uint64_is_located(tmp_path: Path) -> None:
    doc = otlp_doc(2)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = str(U64)
    load_trace_file(write(tmp_path, "ok.json", json.dumps(doc, indent=1)))  # the largest fits
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = str(U64 + 1)
    text = json.dumps(doc, indent=1)
    err = error(write(tmp_path, "t.json", text))
    assert err.key_path == "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano"
    assert str(U64 + 1) in text.splitlines()[err.line - 1]
    assert "less than or equal to 18446744073709551615" in str(err)


def test_spans_jsonl_time_beyond_uint64_is_located(tmp_path: Path) -> None:
    good = {"name": "a", "trace_id": TRACE, "span_id": "b7ad6b7169203331"}
    bad = {**good, "span_id": "b7ad6b7169203332", "end_time_unix_nano": U64 + 1}
    err = error(write(tmp_path, "s.jsonl", f"{json.dumps(good)}\n{json.dumps(bad)}\n"))
    assert (err.line, err.key_path) == (2, "end_time_unix_nano")


def test_jaeger_time_beyond_uint64_nanoseconds_is_located(tmp_path: Path) -> None:
    from clnrm.otel.jaeger import MAX_MICROS

    doc = jaeger_doc()
    doc["data"][0]["spans"][1]["startTime"] = MAX_MICROS + 1
    err = error(write(tmp_path, "j.json", json.dumps(doc, indent=1)))
    assert err.key_path == "data[0].spans[1].startTime"
    doc = jaeger_doc()
    doc["data"][0]["spans"][1]["startTime"] = MAX_MICROS - 5
    text = json.dumps(doc, indent=1)
    err = error(write(tmp_path, "j.json", text))  # its duration of 10 us runs past uint64
    assert err.key_path == "data[0].spans[1].duration"
    assert '"duration": 10' in text.splitlines()[err.line - 1]
    assert "past the largest time OTLP can hold" in str(err)


def test_jaeger_span_naming_an_unknown_process_is_located(tmp_path: Path) -> None:
    doc = jaeger_doc()
    doc["data"][0]["spans"][1]["processID"] = "p9"
    text = json.dumps(doc, indent=1)
    path = write(tmp_path, "j.json", text)
    err = error(path)
    assert err.key_path == "data[0].spans[1].processID"
    assert '"processID": "p9"' in text.splitlines()[err.line - 1]
    assert "processID 'p9' is not one of this trace's processes (p1, p2)" in str(err)
    err = error(write(tmp_path, "j.jsonl", json.dumps(doc) + "\n"))  # one export per line
    assert (err.line, err.key_path) == (1, "data[0].spans[1].processID")
    del doc["data"][0]["spans"][1]["processID"]  # no processID at all: an empty resource
    [_, child] = load_trace_file(write(tmp_path, "j.json", json.dumps(doc)))
    assert child.resource == {}


def test_duplicate_span_id_in_spans_jsonl_names_both_lines(tmp_path: Path) -> None:
    rows = [{"name": n, "trace_id": TRACE, "span_id": sid} for n, sid in
            (("a", "b7ad6b7169203331"), ("b", "00f067aa0ba902b7"), ("c", "B7AD6B7169203331"))]
    path = write(tmp_path, "s.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    err = error(path)
    assert (err.line, err.key_path) == (3, "span_id")
    assert str(err).startswith(f"{path}:3: [span_id] duplicate span id b7ad6b7169203331 in "
                               f"trace {TRACE} (first at line 1)")


def test_duplicate_span_id_in_otlp_json_is_located(tmp_path: Path) -> None:
    doc = otlp_doc(3)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[2]["spanId"] = spans[0]["spanId"]
    text = json.dumps(doc, indent=1)
    err = error(write(tmp_path, "t.json", text))
    assert err.key_path == "resourceSpans[0].scopeSpans[0].spans[2].spanId"
    assert text.splitlines()[err.line - 1].strip() == f'"spanId": "{spans[0]["spanId"]}",'
    lines = json.dumps(otlp_doc(2)) + "\n" + json.dumps(otlp_doc(2)) + "\n"
    err = error(write(tmp_path, "t.jsonl", lines))  # the same request twice
    assert (err.line, err.key_path) == (2, "resourceSpans[0].scopeSpans[0].spans[0].spanId")


def test_duplicate_span_id_in_jaeger_json_is_located(tmp_path: Path) -> None:
    doc = jaeger_doc()
    doc["data"][0]["spans"][1]["spanID"] = "7AD6B7169203331"
    err = error(write(tmp_path, "j.json", json.dumps(doc, indent=1)))
    assert err.key_path == "data[0].spans[1].spanID" and "duplicate span id" in str(err)


def test_same_span_id_in_two_traces_is_fine(tmp_path: Path) -> None:
    text = json.dumps(otlp_doc(2)) + "\n" + json.dumps(otlp_doc(2, "1" * 32)) + "\n"
    assert len(load_trace_file(write(tmp_path, "t.jsonl", text))) == 4


def _chain_file(tmp_path: Path, depth: int) -> Path:
    path = tmp_path / f"chain{depth}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(depth):
            fh.write(json.dumps({"name": f"s{i}", "trace_id": TRACE, "span_id": f"{i + 1:016x}",
                                 "parent_span_id": f"{i:016x}" if i else None}) + "\n")
    return path


def test_span_tree_deeper_than_the_cap_is_refused_at_its_deepest_span(tmp_path: Path) -> None:
    from clnrm.otel.digest import MAX_SPAN_DEPTH

    assert len(load_trace_file(_chain_file(tmp_path, MAX_SPAN_DEPTH))) == MAX_SPAN_DEPTH
    path = _chain_file(tmp_path, MAX_SPAN_DEPTH + 1)
    err = error(path)
    assert err.line == MAX_SPAN_DEPTH + 1
    assert str(err) == (f"{path}:{MAX_SPAN_DEPTH + 1}: span 's{MAX_SPAN_DEPTH}' is nested "
                        f"{MAX_SPAN_DEPTH + 1} levels deep; clnrm judges span trees at most "
                        f"{MAX_SPAN_DEPTH} levels deep")
