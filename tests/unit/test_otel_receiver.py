"""The OTLP receiver over real sockets: HTTP (urllib, http.client), gRPC, and the OTel SDK."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.testing import capture_logs

from clnrm.errors import BackendError
from clnrm.otel.encode import otlp_json_from_spans, request_from_spans
from clnrm.otel.receiver import OtlpReceiver
from clnrm.otel.sink import InMemorySpanSink, JsonlSpanSink
from clnrm.otel.span import Span
from clnrm.otel.tracefile import load_trace_file

TRACE = "0af7651916cd43dd8448eb211c80319c"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def make_spans(n: int, name: str = "op", first_id: int = 1) -> list[Span]:
    return [Span(name=f"{name}{i}", trace_id=TRACE, span_id=f"{first_id + i:016x}",
                 attributes={"i": i}, resource={"service.name": "api"}) for i in range(n)]


def protobuf(spans: list[Span]) -> bytes:
    return request_from_spans(spans).SerializeToString()


def post(receiver: OtlpReceiver, body: bytes, ctype: str = "application/x-protobuf", *,
         path: str = "/v1/traces", headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, str, bytes]:
    req = urllib.request.Request(receiver.http_endpoint + path, data=body, method=method,
                                 headers={"Content-Type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(max_body_bytes=64 * 1024) as rcv:
        yield rcv


# -- OTLP/HTTP -----------------------------------------------------------------------


def test_protobuf_post_is_acknowledged_with_an_empty_protobuf_response(
        receiver: OtlpReceiver) -> None:
    status, ctype, body = post(receiver, protobuf(make_spans(3)))
    assert (status, ctype, body) == (200, "application/x-protobuf", b"")
    assert [s.name for s in receiver.spans()] == ["op0", "op1", "op2"]
    assert receiver.span_count == 3


def test_json_post_is_acknowledged_in_json(receiver: OtlpReceiver) -> None:
    body = json.dumps(otlp_json_from_spans(make_spans(2))).encode()
    status, ctype, answer = post(receiver, body, "application/json; charset=utf-8")
    assert (status, ctype, json.loads(answer)) == (200, "application/json", {})
    assert receiver.spans() == make_spans(2)


def test_gzip_bodies_are_inflated(receiver: OtlpReceiver) -> None:
    status, _, _ = post(receiver, gzip.compress(protobuf(make_spans(5))),
                        headers={"Content-Encoding": "gzip"})
    assert status == 200 and receiver.span_count == 5


def test_malformed_protobuf_gets_400_with_rpc_status_and_one_warning(
        receiver: OtlpReceiver) -> None:
    with capture_logs() as logs:
        status, ctype, body = post(receiver, b"\xff\xff not protobuf")
    assert (status, ctype) == (400, "application/x-protobuf")
    rpc = RpcStatus.FromString(body)
    assert rpc.code == 3 and "not an OTLP ExportTraceServiceRequest" in rpc.message
    [line] = logs
    assert line["event"] == "otlp.payload_rejected" and line["log_level"] == "warning"
    assert line["status"] == "400" and line["transport"] == "http"
    assert receiver.rejected_count == 1
    assert post(receiver, protobuf(make_spans(1)))[0] == 200  # still serving


def test_malformed_json_gets_400_naming_the_field(receiver: OtlpReceiver) -> None:
    doc = otlp_json_from_spans(make_spans(1))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "nothex"
    status, ctype, body = post(receiver, json.dumps(doc).encode(), "application/json")
    assert (status, ctype) == (400, "application/json")
    answer = json.loads(body)
    assert answer["code"] == 3
    assert answer["message"].startswith(
        "resourceSpans[0].scopeSpans[0].spans[0].spanId: must be 16 hex digits")
    status, _, body = post(receiver, b'{"resourceSpans": [', "application/json")
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]


def test_oversized_body_gets_413_and_the_connection_stays_usable(
        receiver: OtlpReceiver) -> None:
    conn = http.client.HTTPConnection(receiver.http_endpoint.removeprefix("http://"), timeout=10)
    big = protobuf(make_spans(2000))
    assert len(big) > receiver.max_body_bytes
    with capture_logs() as logs:
        conn.request("POST", "/v1/traces", body=big,
                     headers={"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        rpc = RpcStatus.FromString(resp.read())
    assert resp.status == 413 and rpc.code == 8
    assert "exceeds the limit of 65536 bytes" in rpc.message
    assert logs[0]["status"] == "413"
    conn.request("POST", "/v1/traces", body=protobuf(make_spans(1)),
                 headers={"Content-Type": "application/x-protobuf"})
    assert conn.getresponse().status == 200  # same keep-alive connection
    conn.close()


def test_gzip_bomb_is_stopped_at_the_limit(receiver: OtlpReceiver) -> None:
    bomb = gzip.compress(b"\x00" * (10 * 1024 * 1024))
    assert len(bomb) < receiver.max_body_bytes
    status, _, body = post(receiver, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "decompressed body exceeds" in RpcStatus.FromString(body).message


def test_bad_gzip_is_400(receiver: OtlpReceiver) -> None:
    status, _, _ = post(receiver, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert status == 400


@pytest.mark.parametrize(("kwargs", "code", "text"), [
    ({"ctype": "text/plain"}, 415, "unsupported Content-Type 'text/plain'"),
    ({"headers": {"Content-Encoding": "br"}}, 415, "unsupported Content-Encoding 'br'"),
    ({"path": "/v1/metrics"}, 404, "no OTLP endpoint at '/v1/metrics'"),
    ({"method": "PUT"}, 405, "PUT not allowed on /v1/traces"),
])
def test_wrong_requests_get_their_status_codes(receiver: OtlpReceiver, kwargs: dict[str, Any],
                                               code: int, text: str) -> None:
    status, _, body = post(receiver, protobuf(make_spans(1)), **kwargs)
    message = (json.loads(body)["message"] if body.startswith(b"{")
               else RpcStatus.FromString(body).message)
    assert status == code and text in message
    assert receiver.span_count == 0
    assert post(receiver, protobuf(make_spans(1)))[0] == 200


def test_other_signal_paths_are_logged_once(receiver: OtlpReceiver) -> None:
    with capture_logs() as logs:
        for _ in range(3):
            assert post(receiver, b"", path="/v1/metrics")[0] == 404
    assert [e["reason"] for e in logs] == [
        "no OTLP endpoint at '/v1/metrics' (traces go to /v1/traces)"]
    assert receiver.rejected_count == 3


def test_chunked_upload_is_accepted(receiver: OtlpReceiver) -> None:
    body = protobuf(make_spans(4))
    conn = http.client.HTTPConnection(receiver.http_endpoint.removeprefix("http://"), timeout=10)
    conn.request("POST", "/v1/traces", body=iter([body[:10], body[10:]]),
                 headers={"Content-Type": "application/x-protobuf"}, encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert receiver.span_count == 4


def test_garbage_request_line_is_answered_without_a_traceback(receiver: OtlpReceiver,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    host, port = receiver.http_endpoint.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        assert b"400" in sock.recv(1024)
    assert "Traceback" not in capsys.readouterr().err
    assert post(receiver, protobuf(make_spans(1)))[0] == 200


def test_concurrent_posts_all_arrive() -> None:
    sink = InMemorySpanSink()
    with OtlpReceiver(sink=sink) as rcv:
        def push(k: int) -> None:
            for _ in range(10):
                assert post(rcv, protobuf(make_spans(20, name=f"t{k}-")))[0] == 200
        threads = [threading.Thread(target=push, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert rcv.span_count == 6 * 10 * 20
    assert len(sink.batches) == 60 and len(sink.spans) == 1200


# -- readiness, sink, lifecycle ----------------------------------------------------------


def test_wait_for_wakes_as_soon_as_spans_arrive(receiver: OtlpReceiver) -> None:
    woke: list[float] = []

    def waiter() -> None:
        assert receiver.wait_for(lambda spans: any(s.name == "op2" for s in spans), 10)
        woke.append(time.monotonic())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.1)
    sent = time.monotonic()
    post(receiver, protobuf(make_spans(3)))
    thread.join(5)
    assert woke and woke[0] - sent < 0.5


def test_wait_for_count_times_out_with_false(receiver: OtlpReceiver) -> None:
    post(receiver, protobuf(make_spans(2)))
    assert receiver.wait_for(2, 0) is True
    started = time.monotonic()
    assert receiver.wait_for(3, 0.2) is False
    assert 0.15 < time.monotonic() - started < 1.0


def test_jsonl_sink_gets_every_batch_before_the_ack(tmp_path: Path) -> None:
    path = tmp_path / "artifacts" / "spans.jsonl"
    with JsonlSpanSink(path) as sink, OtlpReceiver(sink=sink) as rcv:
        post(rcv, protobuf(make_spans(2)))
        assert len(path.read_text().splitlines()) == 2  # flushed before the 200
        # a span id is unique within its trace (trace files with repeats are refused)
        post(rcv, json.dumps(otlp_json_from_spans(make_spans(1, "j", first_id=3))).encode(),
             "application/json")
    assert load_trace_file(path) == make_spans(2) + make_spans(1, "j", first_id=3)


def test_failing_sink_is_logged_and_spans_are_kept() -> None:
    class Broken:
        def write(self, spans: Any) -> None:
            raise OSError("disk full")

    with capture_logs() as logs, OtlpReceiver(sink=Broken()) as rcv:
        assert post(rcv, protobuf(make_spans(1)))[0] == 200
        assert rcv.span_count == 1
    assert any(e["event"] == "otlp.sink_failed" and "disk full" in e["error"] for e in logs)


def test_close_is_prompt_with_an_open_keep_alive_connection_and_frees_ports() -> None:
    rcv = OtlpReceiver()
    with rcv:
        conn = http.client.HTTPConnection(rcv.http_endpoint.removeprefix("http://"), timeout=10)
        conn.request("POST", "/v1/traces", body=protobuf(make_spans(1)),
                     headers={"Content-Type": "application/x-protobuf"})
        conn.getresponse().read()
        channel = grpc.insecure_channel(rcv.grpc_endpoint.removeprefix("http://"))
        channel.unary_unary(EXPORT)(protobuf(make_spans(1)), timeout=10)
        http_port = int(rcv.http_endpoint.rsplit(":", 1)[1])
        grpc_port = int(rcv.grpc_endpoint.rsplit(":", 1)[1])
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    conn.close()
    channel.close()
    with OtlpReceiver(http_port=http_port, grpc_port=grpc_port) as again:
        assert again.http_endpoint.endswith(f":{http_port}")
        assert again.grpc_endpoint.endswith(f":{grpc_port}")


def test_endpoints_need_a_started_receiver() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = OtlpReceiver().http_endpoint


def test_unbindable_address_is_a_backend_error() -> None:
    # TEST-NET-1: never an address of this host
    with pytest.raises(BackendError) as info, OtlpReceiver("192.0.2.1"):
        pass
    assert "cannot listen for OTLP/HTTP on 192.0.2.1:0" in str(info.value)
    assert "Hint:" in str(info.value)


def test_busy_port_is_a_backend_error(receiver: OtlpReceiver) -> None:
    port = int(receiver.grpc_endpoint.rsplit(":", 1)[1])
    with pytest.raises(BackendError, match="cannot listen for OTLP/gRPC"), \
            OtlpReceiver(grpc_port=port):
        pass


def test_exporter_env_points_sdks_at_the_receiver(receiver: OtlpReceiver) -> None:
    env = receiver.exporter_env("grpc")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver.grpc_endpoint
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert receiver.exporter_env()["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver.http_endpoint


# -- OTLP/gRPC -----------------------------------------------------------------------


def grpc_call(receiver: OtlpReceiver, body: bytes) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(receiver.grpc_endpoint.removeprefix("http://")) as channel:
        try:
            channel.unary_unary(EXPORT)(body, timeout=10)
        except grpc.RpcError as err:
            return err.code(), err.details()
    return grpc.StatusCode.OK, ""


def test_grpc_raw_export_is_accepted(receiver: OtlpReceiver) -> None:
    assert grpc_call(receiver, protobuf(make_spans(3)))[0] == grpc.StatusCode.OK
    assert receiver.span_count == 3


def test_grpc_malformed_is_invalid_argument_and_logged(receiver: OtlpReceiver) -> None:
    with capture_logs() as logs:
        code, details = grpc_call(receiver, b"\xff\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an OTLP ExportTraceServiceRequest" in details
    assert logs[0]["event"] == "otlp.payload_rejected" and logs[0]["transport"] == "grpc"
    assert grpc_call(receiver, protobuf(make_spans(1)))[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("factor", [2, 10])
def test_grpc_oversized_is_resource_exhausted(receiver: OtlpReceiver, factor: int) -> None:
    code, _ = grpc_call(receiver, b"\x00" * (receiver.max_body_bytes * factor))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert receiver.span_count == 0


# -- the real OpenTelemetry SDK exporters ---------------------------------------------


def sdk_exporters(receiver: OtlpReceiver) -> dict[str, SpanExporter]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return {
        "grpc": GrpcExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=10),
        "http": HttpExporter(endpoint=receiver.http_endpoint + "/v1/traces", timeout=10),
        "http-gzip": HttpExporter(endpoint=receiver.http_endpoint + "/v1/traces", timeout=10,
                                  compression=Compression.Gzip),
    }


@pytest.mark.parametrize("transport", ["grpc", "http", "http-gzip"])
def test_sdk_spans_arrive_intact(receiver: OtlpReceiver, transport: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout",
                                                        "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(sdk_exporters(receiver)[transport]))
    tracer = provider.get_tracer("clnrm.tests", "1.0")
    attributes = {"http.status_code": 201, "ok": True, "tags": ["a", "b"], "ratio": 0.5}
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER,
                                      attributes=attributes) as root, \
            tracer.start_as_current_span("INSERT orders", kind=SpanKind.CLIENT) as child:
        child.add_event("retry", {"attempt": 2})
        child.set_status(StatusCode.ERROR, "deadlock")
    provider.shutdown()
    assert receiver.wait_for(2, 10)
    spans = {s.name: s for s in receiver.spans()}
    server, client = spans["POST /orders"], spans["INSERT orders"]
    ctx = root.get_span_context()
    assert server.trace_id == f"{ctx.trace_id:032x}" and server.span_id == f"{ctx.span_id:016x}"
    assert server.parent_span_id is None and client.parent_span_id == server.span_id
    assert server.kind == "server" and client.kind == "client"
    assert server.attributes == {"http.status_code": 201, "ok": True, "tags": ["a", "b"],
                                 "ratio": 0.5}
    assert (client.status, client.status_message) == ("ERROR", "deadlock")
    assert client.events[0].name == "retry" and client.events[0].attributes == {"attempt": 2}
    assert server.resource["service.name"] == "checkout"
    assert server.resource["deployment.environment"] == "test"
    assert server.scope == "clnrm.tests"
    assert server.duration_ms is not None and server.duration_ms >= 0
