"""clnrm.testing: the test doubles are the ones clnrm's own tests use, and the module
stays import-light (a conftest may import it for every test session)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clnrm.chaos.context import ChaosContext
from clnrm.errors import ChaosError
from clnrm.otel.sink import InMemorySpanSink as ReceiverSink
from clnrm.otel.span import Span
from clnrm.testing import FakeSandbox, InMemorySpanSink


def test_a_chaos_context_over_the_fake_sandbox_sees_only_its_services() -> None:
    started: list[str] = []
    box = FakeSandbox({"db": "c-db", "api": "c-api"}, api="engine", network_name="n1",
                      addresses={"db": "10.9.0.2"}, on_restart=started.append)
    ctx = ChaosContext(box, run_id="r")  # type: ignore[arg-type]
    assert ctx.services() == ["db", "api"] and ctx.network == "n1" and ctx.api == "engine"
    assert ctx.container_id("db") == "c-db" and ctx.ip("db") == "10.9.0.2"
    with pytest.raises(ChaosError, match="'cache' is not a service of this test"):
        ctx.container_id("cache")
    with pytest.raises(ChaosError, match="'api' has no address"):
        ctx.ip("api")
    ctx.restart("api")
    assert box.restarted == ["api"] and started == ["api"]


def test_listed_services_get_predictable_ids() -> None:
    box = FakeSandbox(["db", "api"])
    assert [box.container_id(s) for s in ("db", "api", "x")] == ["cid-db", "cid-api", None]
    assert box.supports_chaos and box.api is None


def test_the_span_sink_is_the_receivers_own() -> None:
    assert InMemorySpanSink is ReceiverSink
    sink = InMemorySpanSink()
    sink.write([Span(name="a", trace_id="1" * 32, span_id="2" * 16)])
    assert [s.name for s in sink.spans] == ["a"]


def test_importing_it_loads_no_runner_pydantic_or_otel() -> None:
    code = ("import sys, clnrm.testing\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'clnrm.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "['clnrm.testing']"
