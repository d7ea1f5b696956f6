"""Each proxied fault injected into the running demo system: its effect shows in the
probes and spans, and is gone after rollback.

One lab for the module (starting the demo costs ~6 s) with db:5432, cache:6379 and
api:8000 behind the chaos proxy from their start, so the api's database pool and
Redis connections, opened before any fault, are proxied too.  Probes are HTTP
requests from the host to the gateway; ``/jobs/<id>`` always queries PostgreSQL,
``/items`` is served from Redis once warm.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm.otel.span import Span
from tests.integration.chaos_lab import DemoLab, Probe

pytestmark = pytest.mark.timeout(180)

JOB = "chaos-toxics-job"


@pytest.fixture(scope="module")
def lab() -> Iterator[DemoLab]:
    with DemoLab(proxied=[("db", 5432), ("cache", 6379), ("api", 8000)], seed=3) as lab:
        lab.healthy()
        posted = lab.get("/jobs", method="POST", body=json.dumps({"id": JOB, "payload": "x y"}))
        assert posted.status == 202, posted
        deadline = time.monotonic() + 10
        while '"done"' not in lab.get(f"/jobs/{JOB}").body and time.monotonic() < deadline:
            time.sleep(0.1)
        lab.get("/items")  # cache warm: later reads come from Redis
        yield lab


@pytest.fixture(autouse=True)
def clean(lab: DemoLab) -> Iterator[None]:
    """Every test starts with no toxic anywhere and a healthy system (a failed test's
    toxics are removed here, so one failure does not cascade)."""
    yield
    proxies = lab.ctx.proxies
    assert proxies is not None
    for service, port in proxies.proxied():
        proxies.control(service, port).reset()
    lab.healthy()


def no_toxics_left(lab: DemoLab) -> bool:
    proxies = lab.ctx.proxies
    assert proxies is not None
    return all(proxies.control(s, p).toxics() == [] for s, p in proxies.proxied())


def now_ns() -> int:
    return time.time_ns()


def spans_since(lab: DemoLab, name: str, since: int, service: str | None = None) -> list[Span]:
    return [s for s in lab.spans(name) if s.start_time_unix_nano >= since
            and (service is None or s.resource.get("service.name") == service)]


def ms(span: Span) -> float:
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6


def job(lab: DemoLab, **kwargs: Any) -> Probe:
    return lab.get(f"/jobs/{JOB}", **kwargs)


def source(probe: Probe) -> str:
    return str(json.loads(probe.body).get("source")) if probe.status == 200 else ""


# -- delays ------------------------------------------------------------------------------------


def test_latency_on_db_slows_pooled_queries_until_rolled_back(lab: DemoLab) -> None:
    fault = lab.fault("latency", target="db", latency_ms=300)
    assert fault.inject() == "latency 300 ms on db:5432 (downstream, all clients)"
    since = now_ns()
    probe = job(lab)
    assert probe.status == 200 and probe.seconds >= 0.3
    (query,) = spans_since(lab, "SELECT jobs", since)
    assert 300 <= ms(query) < 1000  # the pool's connection predates the fault
    assert fault.rollback() == "removed latency from db"
    assert no_toxics_left(lab)
    since = now_ns()
    assert job(lab).seconds < 0.25
    assert all(ms(s) < 250 for s in spans_since(lab, "SELECT jobs", since))


def test_latency_from_one_client_spares_the_others(lab: DemoLab) -> None:
    fault = lab.fault("latency", target="db", latency_ms=400, **{"from": ["worker"]})
    assert fault.inject().endswith("(downstream, from worker)")
    since = now_ns()
    assert job(lab).seconds < 0.35  # the api's queries are not the worker's
    assert all(ms(s) < 350 for s in spans_since(lab, "SELECT jobs", since, "api"))
    control = lab.ctx.proxies.control("db")  # type: ignore[union-attr]
    (toxic,) = control.toxics()
    assert toxic["sources"] == lab.ctx.ips("worker")
    fault.rollback()


def test_jitter_on_db_spreads_query_times(lab: DemoLab) -> None:
    fault = lab.fault("jitter", target="db", latency_ms=100, jitter_ms=90)
    fault.inject()
    since = now_ns()
    for _ in range(8):
        assert job(lab).status == 200
    times = [ms(s) for s in spans_since(lab, "SELECT jobs", since)]
    assert len(times) == 8 and all(9 <= t < 700 for t in times), times
    assert max(times) - min(times) >= 40, times
    fault.rollback()


def test_loss_on_db_stalls_some_queries_for_a_retransmission_timeout(lab: DemoLab) -> None:
    fault = lab.fault("loss", target="db", fraction=0.25, rto_ms=100)
    assert fault.inject() == "loss 25.0% (RTO 100 ms) on db:5432 (downstream, all clients)"
    since = now_ns()
    probes = [job(lab) for _ in range(10)]
    # TCP loses no bytes: answers are late, never wrong (a run of lost retransmissions
    # may still outlast the app's 1 s deadline, as on a real lossy link)
    assert sum(p.status == 200 for p in probes) >= 7, probes
    times = [ms(s) for s in spans_since(lab, "SELECT jobs", since)]
    stalled = [t for t in times if t >= 95]
    assert 1 <= len(stalled) < len(times), times
    stats = lab.ctx.proxies.control("db").stats()  # type: ignore[union-attr]
    assert stats.toxics[next(iter(stats.toxics))].hits >= len(stalled)
    fault.rollback()
    since = now_ns()
    job(lab)
    assert all(ms(s) < 150 for s in spans_since(lab, "SELECT jobs", since))


def test_bandwidth_on_api_slows_the_gateways_calls(lab: DemoLab) -> None:
    fault = lab.fault("bandwidth", target="api", rate_kb_s=1)
    assert fault.inject() == "bandwidth 1 KB/s on api:8000 (downstream, all clients)"
    since = now_ns()
    probe = lab.get("/items")
    assert probe.status == 200 and probe.seconds >= 0.3  # ~400 bytes at 1000 B/s
    calls = [s for s in spans_since(lab, "GET", since, "gateway")
             if s.attributes.get("server.address") == "api"]
    assert calls and ms(calls[0]) >= 300
    fault.rollback()
    assert lab.get("/items").seconds < 0.25


def test_slow_close_on_api_delays_the_close_a_client_sees(lab: DemoLab) -> None:
    def time_to_close() -> tuple[bytes, float]:
        with socket.create_connection((lab.ctx.ip("api"), 8000), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data, time.monotonic() - started

    fault = lab.fault("slow_close", target="api", delay_ms=600)
    fault.inject()
    data, took = time_to_close()
    assert data.startswith(b"HTTP/1.") and took >= 0.58
    fault.rollback()
    assert time_to_close()[1] < 0.3


# -- breakage ----------------------------------------------------------------------------------


def test_reset_peer_on_cache_turns_cached_reads_into_misses(lab: DemoLab) -> None:
    assert source(lab.get("/items")) == "cache"
    fault = lab.fault("reset_peer", target="cache")
    fault.inject()
    since = now_ns()
    probe = lab.get("/items")
    assert source(probe) == "db"  # a Redis outage is a cache miss, never an error
    reads = spans_since(lab, "GET items", since)
    assert reads and reads[0].status == "ERROR"
    assert reads[0].attributes.get("error.type") == "ConnectionError"
    fault.rollback()
    lab.get("/items")  # rewrites the entry
    assert source(lab.get("/items")) == "cache"


def test_timeout_on_cache_hangs_redis_calls_until_the_client_gives_up(lab: DemoLab) -> None:
    fault = lab.fault("timeout", target="cache")
    assert fault.inject() == "timeout (black hole) on cache:6379 (downstream, all clients)"
    since = now_ns()
    probe = lab.get("/items", timeout=10)
    assert probe.seconds >= 1.0  # TIMEOUT_MS = 1000 in the app
    reads = spans_since(lab, "GET items", since)
    assert reads and all(ms(s) >= 990 and s.status == "ERROR" for s in reads)
    assert reads[0].attributes.get("error.type") == "TimeoutError"
    fault.rollback()
    probe = lab.get("/items")
    assert probe.status == 200 and probe.seconds < 0.5


def test_slicer_on_cache_delivers_the_same_data_in_pieces(lab: DemoLab) -> None:
    baseline = lab.get("/items").body
    fault = lab.fault("slicer", target="cache", average_size=4, delay_us=1000)
    fault.inject()
    since = now_ns()
    probe = lab.get("/items")
    assert probe.body == baseline  # redis-py reassembles the reply
    (read,) = spans_since(lab, "GET items", since)
    assert ms(read) >= 40  # ~300 bytes as 4-byte pieces 1 ms apart
    hits = lab.ctx.proxies.control("cache").stats().toxics  # type: ignore[union-attr]
    assert next(iter(hits.values())).hits >= 40
    fault.rollback()
    since = now_ns()
    lab.get("/items")
    assert all(ms(s) < 40 for s in spans_since(lab, "GET items", since))


def test_limit_data_on_db_cuts_its_connections(lab: DemoLab) -> None:
    fault = lab.fault("limit_data", target="db", bytes=100)
    fault.inject()
    since = now_ns()
    probe = job(lab)
    assert probe.status == 503 and "db unavailable" in probe.body
    queries = spans_since(lab, "SELECT jobs", since)
    assert queries and all(s.status == "ERROR" for s in queries)
    fault.rollback()
    assert job(lab).status == 200


def test_down_on_db_refuses_connections_until_rolled_back(lab: DemoLab) -> None:
    fault = lab.fault("down", target="db")
    assert fault.inject() == "down on db:5432 (all clients)"
    control = lab.ctx.proxies.control("db")  # type: ignore[union-attr]
    assert not control.stats().listening
    since = now_ns()
    probe = job(lab)
    assert probe.status == 503 and probe.seconds < 1.0  # refused at once, not a timeout
    assert all(s.status == "ERROR" for s in spans_since(lab, "SELECT jobs", since))
    fault.rollback()
    assert control.stats().listening
    assert job(lab).status == 200


def test_http_error_on_api_answers_a_share_and_spares_the_api(lab: DemoLab) -> None:
    fault = lab.fault("http_error", target="api", fraction=0.5)
    assert fault.inject() == "http_error 503 for 50% of requests on api:8000 (all clients)"
    since = now_ns()
    probes = [lab.get("/items") for _ in range(20)]
    failed = [p for p in probes if p.status == 503]
    assert 3 <= len(failed) <= 17, [p.status for p in probes]
    assert all("http_error" in p.body for p in failed)  # the gateway passes it through
    assert all(p.status == 200 for p in probes if p not in failed)
    served = spans_since(lab, "GET /v1/items", since, "api")
    assert len(served) == 20 - len(failed)  # failed requests never reached the api
    fault.rollback()
    assert all(lab.get("/items").status == 200 for _ in range(5))


def test_corrupt_on_cache_breaks_cached_reads(lab: DemoLab) -> None:
    baseline = lab.get("/items").body
    # only the api's connections: the worker's BRPOP loop exits on a corrupt reply (the
    # demo app's weakness, found by this fault; not what this test is about)
    fault = lab.fault("corrupt", target="cache", fraction=0.05, **{"from": ["api"]})
    fault.inject()
    since = now_ns()
    probes = [lab.get("/items") for _ in range(3)]
    assert any(p.body != baseline for p in probes), "corrupted replies went unnoticed"
    assert any(s.status == "ERROR" for s in spans_since(lab, "GET /v1/items", since, "api"))
    fault.rollback()
    assert lab.get("/items").body == baseline


# -- the proxy's own life ----------------------------------------------------------------------


def test_toxics_survive_a_restart_of_the_target(lab: DemoLab) -> None:
    proxies = lab.ctx.proxies
    assert proxies is not None
    fault = lab.fault("latency", target="cache", latency_ms=250)
    fault.inject()
    old_pid = proxies.control("cache").ping()["pid"]
    lab.ctx.api.kill(lab.ctx.container_id("cache"))
    lab.ctx.restart("cache")  # new netns: new rule, new proxy, toxics re-applied
    assert proxies.control("cache").ping()["pid"] != old_pid
    assert [t["type"] for t in proxies.control("cache").toxics()] == ["latency"]
    lab.healthy()
    lab.get("/items")
    since = now_ns()
    lab.get("/items")
    reads = spans_since(lab, "GET items", since)
    assert reads and ms(reads[0]) >= 245
    fault.rollback()
    since = now_ns()
    lab.get("/items")
    assert all(ms(s) < 200 for s in spans_since(lab, "GET items", since))


def test_proxies_are_transparent_and_leave_nothing_behind(tmp_path: Path) -> None:
    """Outside the lab: one Redis, one client container; install, use, close."""
    from clnrm.backends.docker import DockerBackend
    from clnrm.chaos.context import ChaosContext
    from clnrm.chaos.journal import Journal, read_journal
    from clnrm.chaos.proxy_manager import ProxyManager
    from clnrm.plugins.base import ServiceSpec
    from clnrm.runner import new_run_id

    run_id = new_run_id()
    backend = DockerBackend(run_id)
    box = backend.sandbox("chaos-proxy-manager", default_image="clnrm/busybox:latest", env={})
    try:
        box.launch(ServiceSpec(name="cache", kind="container", image="clnrm/demo-redis:latest"))
        box.launch(ServiceSpec(name="client", kind="container", image="clnrm/demo-redis:latest",
                               command=["sleep", "300"], entrypoint=[]))
        journal = Journal(run_id, "test", directory=tmp_path)
        ctx = ChaosContext(box, run_id=run_id, seed=5, journal=journal)
        manager = ProxyManager(ctx)
        ctx.proxies = manager
        control = manager.install("cache", 6379)
        assert manager.install("cache", 6379) is control  # idempotent
        pid = control.ping()["pid"]
        rules = ctx.nsenter("cache", ["iptables", "-t", "nat", "-S", "PREROUTING"]).stdout
        assert f"--dport 6379 -m comment --comment clnrm-chaos-proxy-{run_id[:24]}" in rules
        assert [e.type for e in read_journal(journal.path)[1]] == ["__proxy__"]

        def ping_seconds() -> float:
            started = time.monotonic()
            out = ctx.exec("client", ["redis-cli", "-h", ctx.ip("cache"), "ping"])
            assert "PONG" in out.stdout, out
            return time.monotonic() - started

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # Redis takes a moment to listen
            if "PONG" in ctx.exec("client", ["redis-cli", "-h", ctx.ip("cache"), "ping"]).stdout:
                break
            time.sleep(0.1)
        quick = ping_seconds()
        assert control.stats().connections_total >= 1  # it went through the proxy
        control.add_toxic("slow", "latency", latency=800, sources=ctx.ips("client"))
        assert ping_seconds() >= quick + 0.7  # the client's source address was kept
        with pytest.raises(Exception, match="has no port behind the chaos proxy"):
            manager.control("client")
        manager.close()
        rules = ctx.nsenter("cache", ["iptables", "-t", "nat", "-S", "PREROUTING"]).stdout
        assert "clnrm-chaos-proxy" not in rules
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert not Path(control.path).parent.exists()
        assert read_journal(journal.path)[1] == []
        assert ping_seconds() < quick + 0.5  # direct again
    finally:
        box.close()
        backend.reap()
