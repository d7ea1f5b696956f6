#!/usr/bin/env python3
"""clnrm-emit-spans: an instrumented program for tests of span validation.

Emits a tree of spans described as JSON with the real OpenTelemetry SDK and a
real OTLP exporter (HTTP or gRPC), configured from the standard OTEL_* variables
clnrm injects, joined to the test's trace through TRACEPARENT. It exists so the
self-test can check every validator against spans that crossed the wire.

    clnrm-emit-spans [--protocol http|grpc] '<json>'

JSON: a span or a list of spans, each
  {"name": str, "kind": "server|client|internal|producer|consumer",
   "attrs": {...}, "events": [str], "status": "OK|ERROR|UNSET",
   "sleep_ms": int, "children": [...]}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(prog="clnrm-emit-spans")
    parser.add_argument("--protocol", choices=["http", "grpc"], default="http")
    parser.add_argument("spec")
    args = parser.parse_args()

    from opentelemetry import propagate
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=os.environ["CLNRM_OTLP_GRPC_ENDPOINT"],
                                    insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("clnrm-emit-spans")
    parent = propagate.extract({"traceparent": os.environ.get("TRACEPARENT", "")})

    def emit(node: dict, context=None) -> None:
        kind = getattr(SpanKind, str(node.get("kind", "internal")).upper())
        with tracer.start_as_current_span(node["name"], context=context, kind=kind,
                                          attributes=node.get("attrs") or {}) as span:
            for event in node.get("events") or []:
                span.add_event(event)
            time.sleep(node.get("sleep_ms", 1) / 1000)
            for child in node.get("children") or []:
                emit(child)
            status = str(node.get("status", "UNSET")).upper()
            if status != "UNSET":
                span.set_status(Status(getattr(StatusCode, status)))

    spec = json.loads(args.spec)
    for node in spec if isinstance(spec, list) else [spec]:
        emit(node, parent)
    provider.shutdown()
    print(f"emitted over {args.protocol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
