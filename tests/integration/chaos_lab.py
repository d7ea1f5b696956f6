"""A running demo system to inject faults into, for the per-fault tests.

Starting the five demo services costs ~6 s, so fault tests share one lab per
module: inject, observe the effect through probes and spans, roll back, observe
that it is gone.  The lab is the real thing, started by the same code a
``clnrm run`` uses (:meth:`clnrm.execution.TestExecution.live`), with the chaos
session that puts proxied ports behind the chaos proxy at launch.
"""

from __future__ import annotations

import http.client
import secrets
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clnrm.chaos.base import Fault
from clnrm.chaos.catalog import get_fault_type
from clnrm.chaos.context import ChaosContext
from clnrm.otel.span import Span
from clnrm.results import Outcome, TestResult

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo" / "demo.clnrm.toml"


@dataclass(frozen=True)
class Probe:
    status: int | None
    body: str
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class DemoLab:
    """The demo system, up and ready, with a :class:`ChaosContext` on it."""

    def __init__(self, *, proxied: Sequence[tuple[str, int]] = (), seed: int = 1,
                 scenario: Path = DEMO) -> None:
        self.proxied = list(proxied)
        self.seed = seed
        self.scenario = scenario
        self._stack = ExitStack()
        self.trace_id = secrets.token_hex(16)
        self.traceparent = f"00-{self.trace_id}-{secrets.token_hex(8)}-01"

    def __enter__(self) -> DemoLab:
        from clnrm.backends.docker import DockerBackend
        from clnrm.execution import TestExecution
        from clnrm.otel.selftrace import SelfTracer
        from clnrm.plugins import SpecContext
        from clnrm.runner import new_run_id, plan
        from clnrm.scenario.loader import load_scenario

        sc = load_scenario(self.scenario)
        tp = plan(sc, SpecContext(default_image="clnrm/busybox:latest"))
        self.run_id = new_run_id()
        self.backend = DockerBackend(self.run_id)
        tracer = SelfTracer(self.run_id)
        self._stack.callback(tracer.shutdown)
        self._stack.callback(self.backend.reap)  # last resort, after the sandbox's own close
        self.execution = TestExecution(
            tp, backend=self.backend, run_id=self.run_id, default_image="clnrm/busybox:latest",
            seed=self.seed, tracer=tracer, parent=None, spans_dir=None,
            cancelled=threading.Event(), on_event=lambda test, msg: None)
        self.result = TestResult(name=sc.name, file=str(self.scenario), outcome=Outcome.PASSED)
        try:
            self.live = self._stack.enter_context(
                self.execution.live(self.result, self.traceparent, proxied=self.proxied))
            if self.live.chaos is not None:
                self.ctx: ChaosContext = self.live.chaos.ctx
            else:
                from clnrm.backends.docker import DockerSandbox

                assert isinstance(self.live.box, DockerSandbox)
                self.ctx = ChaosContext(self.live.box, run_id=self.run_id, seed=self.seed)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    # -- observing ---------------------------------------------------------------------

    def get(self, path: str, *, service: str = "gateway", port: int = 8080,
            timeout: float = 5.0, method: str = "GET", body: str | None = None) -> Probe:
        """One HTTP request from the host to the service, carrying the lab's trace."""
        started = time.monotonic()
        headers = {"traceparent": self.traceparent, "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.ctx.ip(service), port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", errors="replace")
            return Probe(resp.status, text, time.monotonic() - started)
        except (OSError, http.client.HTTPException) as exc:
            return Probe(None, "", time.monotonic() - started, f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def spans(self, name: str | None = None) -> list[Span]:
        """Spans received so far from every service (after a short settle)."""
        telemetry = self.live.telemetry
        assert telemetry is not None
        telemetry.settle()
        spans = telemetry.spans()
        return [s for s in spans if name is None or s.name == name]

    def fault(self, type_: str, *, target: str | None = None, **params: Any) -> Fault:
        """A catalog fault with a validated config, not yet injected."""
        cls = get_fault_type(type_)
        return cls(cls.Config.model_validate(params), self.ctx, target or "")

    def healthy(self, timeout: float = 20.0) -> None:
        """Every service running and the gateway answering ``/ready`` with 200."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            states = {s: self.ctx.state(s) for s in self.ctx.services()}
            down = [s for s, st in states.items() if not st.get("Running") or st.get("Paused")]
            if not down:
                probe = self.get("/ready", timeout=2.0)
                if probe.ok:
                    return
                last = f"gateway /ready: {probe.status} {probe.error or probe.body[:100]}"
            else:
                last = f"not running: {', '.join(down)}"
            time.sleep(0.2)
        raise AssertionError(f"demo system not healthy after {timeout:g} s: {last}")
