"""A container on an internal network exports to the receiver bound to that network's gateway.

This is how a run wires spans: the receiver listens only on the gateway
address of the test's own network (reachable from its containers, from
nowhere else), and the containers' OTel SDK exports there over OTLP/HTTP and
OTLP/gRPC.
"""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm.labels import LABEL_OWNER, LABEL_RUN, owner_label
from clnrm.otel.receiver import OtlpReceiver
from clnrm.otel.sink import JsonlSpanSink
from clnrm.otel.tracefile import load_trace_file
from tests.conftest import clnrm_resources

IMAGE = "clnrm/python-otel:latest"

EXPORT_SCRIPT = textwrap.dedent("""
    import os
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    exporters = {
        "http": Http(endpoint=os.environ["OTLP_HTTP"] + "/v1/traces", timeout=10),
        "grpc": Grpc(endpoint=os.environ["OTLP_GRPC"], insecure=True, timeout=10),
    }
    for transport, exporter in exporters.items():
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("shop.web")
        with tracer.start_as_current_span(transport + " GET /cart", kind=SpanKind.SERVER,
                                          attributes={"transport": transport}):
            with tracer.start_as_current_span(transport + " SELECT cart", kind=SpanKind.CLIENT):
                pass
        provider.shutdown()
    print("exported", flush=True)
""")


@pytest.fixture
def internal_network(docker_client: Any, local_images: None) -> Iterator[Any]:
    """A labelled internal network; the owner label keeps a concurrent ``clnrm gc`` off it."""
    run_id = f"otlp-{secrets.token_hex(4)}"
    labels = {LABEL_RUN: run_id, LABEL_OWNER: owner_label()}
    network = docker_client.networks.create(f"clnrm-{run_id}", driver="bridge", internal=True,
                                            labels=labels)
    try:
        network.reload()
        yield network
    finally:
        network.remove()
    leftovers = clnrm_resources(docker_client, run_id)
    assert not any(leftovers.values()), f"resources leaked: {leftovers}"


def test_container_exports_over_http_and_grpc_to_the_gateway(
        docker_client: Any, internal_network: Any, tmp_path: Path) -> None:
    gateway = internal_network.attrs["IPAM"]["Config"][0]["Gateway"]
    sink_path = tmp_path / "spans.jsonl"
    with JsonlSpanSink(sink_path) as sink, OtlpReceiver(gateway, sink=sink) as receiver:
        assert receiver.http_endpoint.startswith(f"http://{gateway}:")
        container = docker_client.containers.create(
            IMAGE, ["python3", "-c", EXPORT_SCRIPT], network=internal_network.name,
            labels=dict(internal_network.attrs["Labels"]),
            environment={"OTLP_HTTP": receiver.http_endpoint,
                         "OTLP_GRPC": receiver.grpc_endpoint})
        try:
            container.start()
            exit_code = container.wait(timeout=120)["StatusCode"]
            logs = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        assert exit_code == 0, logs
        assert "exported" in logs
        assert receiver.wait_for(4, 10), (receiver.spans(), logs)
        spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"http GET /cart", "http SELECT cart", "grpc GET /cart",
                          "grpc SELECT cart"}
    for transport in ("http", "grpc"):
        root, child = spans[f"{transport} GET /cart"], spans[f"{transport} SELECT cart"]
        assert child.parent_span_id == root.span_id and child.trace_id == root.trace_id
        assert (root.kind, child.kind) == ("server", "client")
        assert root.attributes == {"transport": transport}
        assert root.resource["service.name"] == "shop" and root.scope == "shop.web"
    assert sorted(s.name for s in load_trace_file(sink_path)) == sorted(spans)


def test_receiver_on_the_gateway_is_not_on_loopback(internal_network: Any) -> None:
    import socket

    gateway = internal_network.attrs["IPAM"]["Config"][0]["Gateway"]
    with OtlpReceiver(gateway) as receiver:
        port = int(receiver.http_endpoint.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
