"""Spans are the truth: the span model, the OTLP receiver, trace files.

Import-light: the receiver (grpc, protobuf) loads only when a run starts one.
"""

from __future__ import annotations

from clnrm.otel.span import Span, SpanEvent

__all__ = ["Span", "SpanEvent"]
