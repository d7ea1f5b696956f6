"""Spans are the truth: the span model, the OTLP receiver, trace files.

Import-light: the receiver (grpc, protobuf) and the trace-file parsers load on
first use, through ``__getattr__``, never for ``import clnrm.otel``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from clnrm.otel.span import Span, SpanEvent

_LAZY = {
    "OtlpReceiver": "clnrm.otel.receiver",
    "SpanSink": "clnrm.otel.sink",
    "JsonlSpanSink": "clnrm.otel.sink",
    "InMemorySpanSink": "clnrm.otel.sink",
    "load_trace_file": "clnrm.otel.tracefile",
    "OtlpDecodeError": "clnrm.otel.decode",
    "span_digest": "clnrm.otel.digest",
}

__all__ = [
    "InMemorySpanSink",
    "JsonlSpanSink",
    "OtlpDecodeError",
    "OtlpReceiver",
    "Span",
    "SpanEvent",
    "SpanSink",
    "load_trace_file",
    "span_digest",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clnrm.otel' has no attribute {name!r}")
