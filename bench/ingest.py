"""Ingest rate of clnrm's OTLP receiver over OTLP/HTTP protobuf.

A second process (this file with ``--send``) POSTs pre-built payloads of 512
spans (the OTel SDK's default export batch) over one keep-alive connection,
as an SDK exporter would, and times them; each answer comes only after the
receiver decoded the batch, wrote it to ``spans.jsonl`` and stored it, so the
rate is end-to-end.  Baseline, measured in the same run with the same sender
and payloads: a stdlib HTTP server that reads and discards the body, i.e. the
transport's own cost.  Rounds alternate between the two; medians are compared.

Target 100,000 spans/s with the sink (issue #20; it was 50,000): a test emits
hundreds to a few thousand spans, and one
instrumented Python service produces at most a few tens of thousands per
second (span creation and export in the SDK cost about as much as decoding),
so even at 50k/s ingesting a busy test's 10k spans takes 0.2 s of one core, well
under one container start, and the receiver is never what a run waits on.
The discard ratio is informative only: a server that parses nothing will
always be an order of magnitude faster.  README quotes ``spans_per_s`` and
``ratio_vs_discard_server``.

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET = 100_000
BATCH = 512


def build_payloads(total: int, batch: int) -> list[bytes]:
    """Realistic spans: server/client pairs, 6 attributes, an event on every 8th span."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, float):
            return KeyValue(key=key, value=AnyValue(double_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    resource = Resource(attributes=[kv("service.name", "bench-api"), kv("service.version", "1.2.3"),
                                    kv("telemetry.sdk.language", "python")])
    payloads = []
    start = 1_700_000_000_000_000_000
    for first in range(0, total, batch):
        spans = []
        for i in range(first, min(first + batch, total)):
            trace_id = (i // 4 + 1).to_bytes(16, "big")
            parent = i.to_bytes(8, "big") if i % 4 else b""  # span i-1 has id i
            span = Span(
                trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), parent_span_id=parent,
                name=f"GET /api/items/{i % 50}", kind=Span.SPAN_KIND_SERVER if i % 2 else
                Span.SPAN_KIND_CLIENT, start_time_unix_nano=start + i * 1000,
                end_time_unix_nano=start + i * 1000 + 750,
                attributes=[kv("http.request.method", "GET"), kv("http.route", "/api/items/{id}"),
                            kv("http.response.status_code", 200), kv("server.port", 8080),
                            kv("cache.hit", i % 3 == 0), kv("db.duration_ms", 1.25)],
                status=Status(code=Status.STATUS_CODE_OK))
            if i % 8 == 0:
                span.events.add(name="cache.miss", time_unix_nano=start + i * 1000 + 10,
                                attributes=[kv("key", f"item:{i}")])
            spans.append(span)
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=resource, scope_spans=[ScopeSpans(
                scope=InstrumentationScope(name="bench", version="1"), spans=spans)])])
        payloads.append(request.SerializeToString())
    return payloads


# -- sender (runs in the second process) ----------------------------------------------


def send(host: str, port: int, payload_file: str) -> None:
    data = Path(payload_file).read_bytes()
    payloads, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        payloads.append(data[offset + 4: offset + 4 + size])
        offset += 4 + size
    conn = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Content-Type": "application/x-protobuf"}
    started = time.perf_counter()
    for body in payloads:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"server answered {response.status}")
    print(json.dumps({"seconds": time.perf_counter() - started}))


def run_sender(port: int, payload_file: Path) -> float:
    res = subprocess.run([sys.executable, __file__, "--send", f"127.0.0.1:{port}",
                          str(payload_file)], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        sys.exit(f"sender failed: {res.stdout}{res.stderr}")
    return float(json.loads(res.stdout.strip().splitlines()[-1])["seconds"])


# -- the two servers ---------------------------------------------------------------------


class _Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def discard_round(payload_file: Path) -> float:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        return run_sender(server.server_address[1], payload_file)
    finally:
        server.shutdown()
        server.server_close()


def receiver_round(payload_file: Path, total: int, tmp: Path, *, with_sink: bool) -> float:
    from clnrm.otel.receiver import OtlpReceiver
    from clnrm.otel.sink import JsonlSpanSink

    sink_path = tmp / "spans.jsonl"
    sink_path.unlink(missing_ok=True)
    sink = JsonlSpanSink(sink_path) if with_sink else None
    try:
        with OtlpReceiver("127.0.0.1", sink=sink) as receiver:
            port = int(receiver.http_endpoint.rsplit(":", 1)[1])
            seconds = run_sender(port, payload_file)
            if receiver.span_count != total:
                sys.exit(f"receiver kept {receiver.span_count} spans, expected {total}")
    finally:
        if sink is not None:
            sink.close()
    if with_sink and sum(1 for _ in sink_path.open()) != total:
        sys.exit("spans.jsonl does not hold every span")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--send", nargs=2, metavar=("HOST:PORT", "PAYLOADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        host, port = args.send[0].rsplit(":", 1)
        send(host, int(port), args.send[1])
        return
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    payloads = build_payloads(args.spans, BATCH)
    size = sum(len(p) for p in payloads)
    print(f"{args.spans} spans in {len(payloads)} payloads of {BATCH} "
          f"({size / len(payloads) / 1024:.0f} KiB each)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        payload_file = tmp / "payloads.bin"
        payload_file.write_bytes(b"".join(struct.pack(">I", len(p)) + p for p in payloads))
        discard_round(payload_file)  # warm imports, page cache, sockets
        clnrm_s, bare_s, base_s = [], [], []
        for i in range(args.rounds):
            base_s.append(discard_round(payload_file))
            clnrm_s.append(receiver_round(payload_file, args.spans, tmp, with_sink=True))
            bare_s.append(receiver_round(payload_file, args.spans, tmp, with_sink=False))
            print(f"round {i + 1}: receiver+spans.jsonl {args.spans / clnrm_s[-1]:,.0f} spans/s, "
                  f"receiver only {args.spans / bare_s[-1]:,.0f} spans/s, "
                  f"discard server {args.spans / base_s[-1]:,.0f} spans/s", file=sys.stderr)
    rate = args.spans / statistics.median(clnrm_s)
    bare = args.spans / statistics.median(bare_s)
    base = args.spans / statistics.median(base_s)
    print(f"clnrm receiver (with spans.jsonl) {rate:,.0f} spans/s, without sink {bare:,.0f} "
          f"spans/s, discard server {base:,.0f} spans/s, ratio {rate / base:.3f} "
          f"(target >= {TARGET:,} spans/s)")
    print(json.dumps({"bench": "ingest", "spans": args.spans, "batch": BATCH,
                      "rounds": args.rounds, "spans_per_s": round(rate),
                      "spans_per_s_without_sink": round(bare),
                      "baseline_spans_per_s": round(base),
                      "ratio_vs_discard_server": round(rate / base, 4),
                      "target_spans_per_s": TARGET, "met": rate >= TARGET}))


if __name__ == "__main__":
    main()
