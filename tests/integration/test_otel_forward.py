"""``--otel-endpoint`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``: a run's spans, clnrm's and the
system under test's, reach a real OTLP receiver in another process over HTTP and gRPC; a
dead collector costs one bounded attempt and one warning line, never the verdict."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm.otel.forward import BATCH, DEFAULT_TIMEOUT_S, resolve_target
from tests.conftest import REPO, run_cli

# the SUT: a step that exports one span with the OTel SDK to the env clnrm gives it,
# in the test's trace (TRACEPARENT)
SUT = """\
import os
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
p = TracerProvider(resource=Resource.create({"service.name": "sut"}))
p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
parent = extract({"traceparent": os.environ["TRACEPARENT"]})
with p.get_tracer("sut").start_as_current_span("sut.work", context=parent):
    pass
p.shutdown()
"""


@pytest.fixture
def sut_test(tmp_path: Path) -> Path:
    test = tmp_path / "sut.clnrm.toml"
    test.write_text('[test.metadata]\nname = "sut"\n[[steps]]\nname = "emit"\n'
                    f"command = {json.dumps([sys.executable, '-c', SUT])}\n"
                    '[[expect.span]]\nname = "sut.work"\n', encoding="utf-8")
    return test


class Collector:
    """The receiver process: its endpoints, and the spans it got once stopped."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.integration.otlp_sink"],
                                     cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        self.endpoints = json.loads(self.proc.stdout.readline())

    def spans(self) -> list[dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=60)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    if c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()


def _env(**extra: str) -> dict[str, str]:
    clean = {k: "" for k in os.environ if k.startswith("OTEL_EXPORTER_OTLP")}
    return {**clean, **extra}


def _both_sides(spans: list[dict[str, Any]]) -> None:
    by_name = {s["name"]: s for s in spans}
    assert {"clnrm.run", "clnrm.test", "clnrm.step", "sut.work"} <= set(by_name), sorted(by_name)
    assert by_name["sut.work"]["resource"]["service.name"] == "sut"
    assert by_name["clnrm.test"]["resource"]["service.name"] == "clnrm"
    # one trace: the SUT joined the test's trace through TRACEPARENT
    assert by_name["sut.work"]["trace_id"] == by_name["clnrm.test"]["trace_id"]
    assert len({(s["trace_id"], s["span_id"]) for s in spans}) == len(spans)  # no duplicates


def test_otel_endpoint_over_http_gets_clnrm_and_sut_spans(sut_test: Path,
                                                          collector: Collector) -> None:
    res = run_cli("run", str(sut_test), "--backend", "local", "--otel-endpoint",
                  collector.endpoints["http"], env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "warning: could not export" not in res.stderr
    _both_sides(collector.spans())


def test_standard_env_vars_over_grpc_get_clnrm_and_sut_spans(sut_test: Path,
                                                              collector: Collector) -> None:
    res = run_cli("run", str(sut_test), "--backend", "local",
                  env=_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoints["grpc"],
                           OTEL_EXPORTER_OTLP_PROTOCOL="grpc"))
    assert res.returncode == 0, res.stdout + res.stderr
    _both_sides(collector.spans())


def _dead_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_dead_collector_is_one_warning_line_and_the_run_still_passes(sut_test: Path,
                                                                      protocol: str) -> None:
    endpoint = f"http://127.0.0.1:{_dead_port()}"
    res = run_cli("run", str(sut_test), "--backend", "local", "--otel-endpoint", endpoint,
                  "--otel-protocol", protocol, env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    warnings = [line for line in res.stderr.splitlines() if "could not export" in line]
    assert len(warnings) == 1, res.stderr
    assert warnings[0].startswith("warning: could not export 4 of 4 spans")
    assert "Traceback" not in res.stderr and "Exception" not in res.stderr
    # every other stderr line is the local backend's limitations, nothing from an exporter
    others = [line for line in res.stderr.splitlines()
              if line.strip() and line not in warnings and "cannot isolate" not in line]
    assert others == [], others


def test_an_export_is_one_attempt_with_the_default_deadline() -> None:
    target = resolve_target("http://127.0.0.1:1", env={})
    assert target is not None and target.timeout_s == DEFAULT_TIMEOUT_S


def test_blackholed_collector_costs_the_configured_timeout_once() -> None:
    """A collector that accepts and never answers: the export gives up at its deadline."""
    from clnrm.otel.forward import forward_spans
    from clnrm.otel.span import Span

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections queue in the backlog, nobody answers
        port = silent.getsockname()[1]
        target = resolve_target(f"http://127.0.0.1:{port}", env={
            "OTEL_EXPORTER_OTLP_TIMEOUT": "300"})
        assert target is not None and target.timeout_s == 0.3
        spans = [Span("s", f"{1:032x}", f"{i + 1:016x}") for i in range(2 * BATCH + 1)]
        report = forward_spans(spans, target)
        silent.setblocking(False)
        attempts = 0
        while True:  # connections the kernel queued for us: one per request made
            try:
                conn, _ = silent.accept()
            except BlockingIOError:
                break
            conn.close()
            attempts += 1
    assert not report.ok and report.sent == 0 and report.total == 2 * BATCH + 1
    assert "timed out" in report.error.lower()  # type: ignore[union-attr]
    # three batches to send, but the first timeout stops the export: one deadline, not three
    assert attempts == 1


def test_resolve_target_follows_the_otlp_env_spec() -> None:
    assert resolve_target(None, env={}) is None
    http = resolve_target(None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"})
    assert http is not None and http.endpoint == "http://c:4318/v1/traces"
    own = resolve_target(None, env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/x"})
    assert own is not None and own.endpoint == "http://c/x"  # signal-specific: as given
    grpc = resolve_target("http://c:4317", "grpc", env={})
    assert grpc is not None and (grpc.endpoint, grpc.protocol) == ("c:4317", "grpc")
    assert resolve_target("c:4318", env={}).endpoint == "http://c:4318/v1/traces"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="http/json"):
        resolve_target("http://c", "http/json", env={})


def test_bad_protocol_is_exit_2_before_anything_runs(sut_test: Path) -> None:
    res = run_cli("run", str(sut_test), "--backend", "local", "--otel-endpoint", "http://c",
                  "--otel-protocol", "carrier-pigeon", env=_env())
    assert res.returncode == 2 and "carrier-pigeon" in res.stderr and "Traceback" not in (
        res.stderr)


def test_library_endpoint_exports_own_spans_once_at_shutdown(collector: Collector) -> None:
    """``RunOptions(otel_endpoint=...)`` (no CLI): clnrm's spans, through the same bounded
    forwarder, to the receiver process."""
    from clnrm.otel.selftrace import SelfTracer

    tracer = SelfTracer("r1", endpoint=collector.endpoints["http"])
    with tracer.span("clnrm.run"), tracer.span("clnrm.test"):
        pass
    tracer.shutdown()
    dead = SelfTracer("r2", endpoint=f"http://127.0.0.1:{_dead_port()}")
    with dead.span("clnrm.run"):
        pass
    dead.shutdown()  # a warning log line, never an exception
    assert sorted(s["name"] for s in collector.spans()) == ["clnrm.run", "clnrm.test"]
