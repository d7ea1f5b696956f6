#!/usr/bin/env python3
"""demo-lifecycle: run a server that has no OpenTelemetry of its own, and report it in spans.

Redis and PostgreSQL export nothing, so without help the demo's ``cache`` and ``db``
would be absent from a test's trace (their clients' spans carry the api's and worker's
service names). This supervisor starts the server at once, then:

- ``<system>.start``: from spawn until the server is ready (TCP port accepts, or
  ``--ready-cmd`` exits 0); a child of the test span (``TRACEPARENT``), ERROR if the
  server died first. Chaos tests can read restart counts and start-up time from it.
- ``<system>.exit``: when the server exits while the container lives on (``pg_ctl
  stop``, a crash); ERROR unless the exit code is 0. A container removed by force
  takes the supervisor with it, so an ordinary test end emits nothing.

Signals are forwarded to the server; the supervisor exits with the server's code, so
the container behaves as if the server were its main process.

    demo-lifecycle --system postgresql --port 5432 [--ready-cmd CMD] -- SERVER ARGS...
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import Any

READY_TIMEOUT_S = 60.0
POLL_S = 0.02
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def main() -> int:
    parser = argparse.ArgumentParser(prog="demo-lifecycle")
    parser.add_argument("--system", required=True, help="db.system value, e.g. postgresql")
    parser.add_argument("--port", type=int, required=True, help="port the server listens on")
    parser.add_argument("--ready-cmd", help="readiness command (default: the port accepts TCP)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("the server command goes after --")

    spawned = time.time_ns()
    server = subprocess.Popen(command)
    for signum in FORWARDED:
        signal.signal(signum, lambda sig, _frame: server.send_signal(sig))
    ready = wait_ready(server, args.port, args.ready_cmd)
    ready_at = time.time_ns()

    tracing = Tracing.from_env()  # imported only now: the server is already starting
    attributes = {
        "db.system": args.system,
        "db.system.name": args.system,
        "server.port": args.port,
        "process.pid": server.pid,
        "process.executable.name": os.path.basename(command[0]),
        "demo.ready": ready,
    }
    tracing.emit(f"{args.system}.start", spawned, ready_at, attributes,
                 error=None if ready else "server exited or never became ready")

    code = wait_exit(server)
    stopped = time.time_ns()
    tracing.emit(f"{args.system}.exit", stopped, stopped,
                 {**attributes, "process.exit.code": code},
                 error=None if code == 0 else f"server exited with code {code}")
    tracing.shutdown()
    return code if code >= 0 else 128 - code


def wait_ready(server: subprocess.Popen[bytes], port: int, ready_cmd: str | None) -> bool:
    """True once the server is ready; False if it exited or the time limit passed."""
    argv = shlex.split(ready_cmd) if ready_cmd else None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        if argv is not None:
            probe = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=False)
            if probe.returncode == 0:
                return True
        else:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                pass
        time.sleep(POLL_S)
    return False


def wait_exit(server: subprocess.Popen[bytes]) -> int:
    return server.wait()  # signals meanwhile go to the forwarding handlers (PEP 475 resumes)


class Tracing:
    """The OTLP exporter clnrm configures through OTEL_*; a no-op outside clnrm."""

    def __init__(self, provider: Any, tracer: Any) -> None:
        self.provider = provider
        self.tracer = tracer

    @classmethod
    def from_env(cls) -> Tracing:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT")
        if not endpoint or os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
            return cls(None, None)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create())
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(timeout=5)))
        return cls(provider, provider.get_tracer("demo-lifecycle"))

    def emit(self, name: str, start: int, end: int, attributes: dict[str, Any],
             error: str | None) -> None:
        if self.tracer is None:
            return
        from opentelemetry import propagate
        from opentelemetry.trace import Status, StatusCode

        parent = propagate.extract({"traceparent": os.environ.get("TRACEPARENT", "")})
        span = self.tracer.start_span(name, context=parent, start_time=start,
                                      attributes=attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        try:
            span.end(end_time=max(start, end))
        except Exception as exc:  # an unreachable receiver must not take the server down
            print(f"demo-lifecycle: exporting {name} failed: {exc}", file=sys.stderr)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


if __name__ == "__main__":
    sys.exit(main())
