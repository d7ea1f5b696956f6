"""Span sinks: spans.jsonl holds exactly Span.to_dict() per line, whole lines, thread-safe."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel.sink import (
    InMemorySpanSink,
    JsonlSpanSink,
    SpanSink,
    encode_jsonl,
    span_record,
)
from clnrm.otel.span import Span, SpanEvent
from clnrm.otel.tracefile import load_trace_file

TRACE = "0af7651916cd43dd8448eb211c80319c"

_attr = st.recursive(st.one_of(st.text(max_size=6), st.booleans(), st.integers(),
                               st.floats(allow_nan=False), st.none()),
                     lambda inner: st.lists(inner, max_size=3), max_leaves=5)
_attrs = st.dictionaries(st.text(max_size=6), _attr, max_size=4)


@settings(max_examples=100, deadline=None)
@given(name=st.text(max_size=10), attrs=_attrs, resource=_attrs,
       events=st.lists(st.builds(SpanEvent, st.text(max_size=4),
                                 st.one_of(st.none(), st.integers(0, 2**63)), _attrs),
                       max_size=2),
       kind=st.sampled_from(["internal", "server", "client"]),
       scope=st.one_of(st.none(), st.text(max_size=4)))
def test_span_record_is_exactly_to_dict(name: str, attrs: dict, resource: dict,  # type: ignore[type-arg]
                                        events: list[SpanEvent], kind: str,
                                        scope: str | None) -> None:
    span = Span(name=name, trace_id=TRACE, span_id="b7ad6b7169203331", kind=kind,
                attributes=attrs, resource=resource, events=events, scope=scope)
    assert span_record(span) == span.to_dict()
    assert json.loads(encode_jsonl([span])) == json.loads(json.dumps(span.to_dict()))


def test_jsonl_is_one_compact_ascii_object_per_line() -> None:
    spans = [Span(name="ünï", trace_id=TRACE, span_id=f"{i + 1:016x}") for i in range(3)]
    text = encode_jsonl(spans)
    assert text.endswith("\n") and text.count("\n") == 3 and text.isascii()
    assert [json.loads(line)["name"] for line in text.splitlines()] == ["ünï"] * 3
    assert encode_jsonl([]) == ""


def test_jsonl_sink_creates_its_file_at_once_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "spans.jsonl"
    with JsonlSpanSink(path) as sink:
        assert path.exists() and path.read_text() == ""
        sink.write([Span(name="x", trace_id=TRACE, span_id="b7ad6b7169203331")])
        assert sink.written == 1
    with JsonlSpanSink(path) as sink:
        sink.write([Span(name="y", trace_id=TRACE, span_id="b7ad6b7169203332")])
    assert [s.name for s in load_trace_file(path)] == ["x", "y"]


def test_jsonl_sink_lines_never_interleave_under_concurrent_batches(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    with JsonlSpanSink(path) as sink:
        def writer(k: int) -> None:
            for b in range(20):
                sink.write([Span(name=f"t{k}-b{b}-{i}", trace_id=TRACE,
                                 span_id=f"{k * 10000 + b * 100 + i + 1:016x}",
                                 attributes={"pad": "x" * 500}) for i in range(50)])
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    spans = load_trace_file(path)
    assert len(spans) == 4 * 20 * 50
    for k in range(4):  # each batch stays contiguous and in order
        names = [s.name for s in spans if s.name.startswith(f"t{k}-b0-")]
        assert names == [f"t{k}-b0-{i}" for i in range(50)]


def test_non_finite_floats_survive_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    with JsonlSpanSink(path) as sink:
        sink.write([Span(name="x", trace_id=TRACE, span_id="b7ad6b7169203331",
                         attributes={"nan": math.nan, "inf": math.inf})])
    [span] = load_trace_file(path)
    assert math.isnan(span.attributes["nan"]) and span.attributes["inf"] == math.inf  # type: ignore[arg-type]


def test_closed_sink_refuses_writes(tmp_path: Path) -> None:
    sink = JsonlSpanSink(tmp_path / "spans.jsonl")
    sink.close()
    sink.close()
    with pytest.raises(ValueError, match="is closed"):
        sink.write([Span(name="x", trace_id=TRACE, span_id="b7ad6b7169203331")])


def test_sinks_satisfy_the_protocol(tmp_path: Path) -> None:
    memory = InMemorySpanSink()
    with JsonlSpanSink(tmp_path / "s.jsonl") as jsonl:
        assert isinstance(memory, SpanSink) and isinstance(jsonl, SpanSink)
    memory.write([Span(name="a", trace_id=TRACE, span_id="b7ad6b7169203331")])
    memory.write([])
    assert [s.name for s in memory.spans] == ["a"] and len(memory.batches) == 2


def test_lines_the_fast_encoder_cannot_write_exactly_fall_back_per_line() -> None:
    spans = [Span(name="plain", trace_id=TRACE, span_id="b7ad6b7169203331",
                  attributes={"n": 1.5, "none": None}),
             Span(name="ünï", trace_id=TRACE, span_id="b7ad6b7169203332"),
             Span(name="nan", trace_id=TRACE, span_id="b7ad6b7169203333",
                  attributes={"x": [1, math.inf]}),
             Span(name="big", trace_id=TRACE, span_id="b7ad6b7169203334",
                  attributes={"x": 2**70})]
    text = encode_jsonl(spans)
    assert text.isascii() and "\\u00fc" in text and "Infinity" in text
    lines = text.splitlines()
    assert len(lines) == 4
    for line, span in zip(lines, spans, strict=True):
        assert json.loads(line) == json.loads(json.dumps(span.to_dict()))


@pytest.mark.parametrize("where", ["attributes", "resource", "event"])
def test_a_non_finite_float_is_found_among_none_fields(where: str) -> None:
    """A NaN that orjson writes as ``null`` is told from the span's own None fields
    (root parent, missing times and scope, event without time) by counting them."""
    values = {"n": None, "x": [1.0, -math.inf]}
    span = Span(name="x", trace_id=TRACE, span_id="b7ad6b7169203331", scope=None,
                attributes=values if where == "attributes" else {"n": None},
                resource=values if where == "resource" else {},
                events=[SpanEvent("e", None, values if where == "event" else {})])
    line = encode_jsonl([span])
    assert "-Infinity" in line
    assert json.loads(line) == json.loads(json.dumps(span.to_dict()))


def test_none_fields_alone_keep_the_fast_line() -> None:
    span = Span(name="x", trace_id=TRACE, span_id="b7ad6b7169203331",
                events=[SpanEvent("e")], attributes={"n": None, "f": 1.5})
    assert encode_jsonl([span]) == json.dumps(span.to_dict(), separators=(",", ":")) + "\n"
