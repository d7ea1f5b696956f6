"""The demo system (scenarios/demo) on the real engine: five services, spans from all of them.

One CLI run of the folder serves every test here (about 15 s): ``demo.clnrm.toml`` must
pass with spans whose resource names all five services, and ``fallback.clnrm.toml``
must show the api serving stale cache with the database broken, its breaker sparing the
database, and recovery. The tests read the JSON report's spans directly, so they do not
merely repeat the files' own expectations. The resilience rules themselves are checked
without containers, from the module shipped in the image.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO, clnrm_resources, run_cli

DEMO_DIR = REPO / "scenarios" / "demo"
APP_DIR = REPO / "clnrm" / "images" / "demo-app" / "demoapp"
DEMO_IMAGES = ["demo-redis", "demo-postgres", "demo-app"]
FIVE_SERVICES = {"gateway", "api", "cache", "db", "worker"}

Span = dict[str, Any]


@pytest.fixture(scope="module")
def demo_images(docker_client: Any) -> list[Any]:
    """The demo images and their bases, built once (cached by content hash)."""
    from clnrm.images import build_images

    build_images(docker_client, ["busybox"])
    return build_images(docker_client, DEMO_IMAGES)


@pytest.fixture(scope="module")
def demo_run(docker_client: Any, demo_images: list[Any]) -> dict[str, Any]:
    """``clnrm run scenarios/demo --format json``, plus whatever it left behind."""
    res = run_cli("run", str(DEMO_DIR), "--format", "json", timeout=300)
    assert res.stdout, res.stderr
    report = json.loads(res.stdout)
    left = clnrm_resources(docker_client, report["run_id"])  # others may be running too
    return {
        "returncode": res.returncode,
        "stderr": res.stderr,
        "report": report,
        "leaked": {kind: ids for kind, ids in left.items() if ids},
    }


def result_of(run: dict[str, Any], name: str) -> dict[str, Any]:
    [test] = [t for t in run["report"]["tests"] if t["name"] == name]
    return test


@pytest.fixture
def demoapp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    """Import stdlib-only modules of the app from the package data the image is built from."""
    monkeypatch.syspath_prepend(str(APP_DIR.parent))
    yield lambda name: importlib.import_module(f"demoapp.{name}")
    for name in [m for m in sys.modules if m == "demoapp" or m.startswith("demoapp.")]:
        del sys.modules[name]


# -- images ----------------------------------------------------------------------------


def test_demo_images_are_built_from_python_otel_and_cached_by_hash(
    docker_client: Any, demo_images: list[Any]
) -> None:
    from clnrm.images import HASH_LABEL, build_images

    assert [r.name for r in demo_images][-3:] == DEMO_IMAGES
    again = build_images(docker_client, DEMO_IMAGES)
    assert all(r.cached for r in again), [(r.name, r.cached) for r in again]
    for result in again[-3:]:
        assert docker_client.images.get(result.tag).labels[HASH_LABEL] == result.content_hash


# -- the demo scenario -----------------------------------------------------------------


def test_demo_folder_passes_and_leaves_nothing_behind(demo_run: dict[str, Any]) -> None:
    outcomes = {t["name"]: t["outcome"] for t in demo_run["report"]["tests"]}
    assert demo_run["returncode"] == 0, (outcomes, demo_run["stderr"][-2000:])
    assert outcomes == {"demo_system": "passed", "demo_stale_cache_fallback": "passed"}
    assert not demo_run["leaked"], demo_run["leaked"]


def test_demo_spans_come_from_all_five_services(demo_run: dict[str, Any]) -> None:
    spans = result_of(demo_run, "demo_system")["spans"]
    services = {s["resource"].get("service.name") for s in spans}
    assert services >= FIVE_SERVICES, services
    resources = [s["resource"] for s in spans if s["resource"].get("service.name") in FIVE_SERVICES]
    assert {r.get("clnrm.test") for r in resources} == {"demo_system"}


def test_demo_request_crosses_services_in_one_trace(demo_run: dict[str, Any]) -> None:
    """The first read: step -> gateway -> api -> Redis and PostgreSQL, parent by parent."""
    spans = result_of(demo_run, "demo_system")["spans"]
    by_id = {s["span_id"]: s for s in spans}

    def chain(span: Span) -> list[tuple[str, str | None, str]]:
        links = []
        while span is not None:
            links.append((span["name"], span["resource"].get("service.name"), span["kind"]))
            span = by_id.get(span["parent_span_id"])
        return links

    [db_read] = [s for s in spans if s["name"] == "SELECT items"
                 and s["attributes"]["db.query.text"].endswith("ORDER BY id")]
    assert chain(db_read)[:5] == [
        ("SELECT items", "api", "client"),
        ("GET /v1/items", "api", "server"),
        ("GET", "gateway", "client"),
        ("GET /items", "gateway", "server"),
        ("clnrm.test", "clnrm", "internal"),
    ]
    [consumed] = [s for s in spans if s["name"] == "process jobs"]
    assert [link[:2] for link in chain(consumed)[:4]] == [
        ("process jobs", "worker"), ("send jobs", "api"), ("POST /v1/jobs", "api"),
        ("POST", "gateway")]
    assert len({s["trace_id"] for s in spans if s["resource"].get("service.name")
                in FIVE_SERVICES}) == 1


def test_demo_spans_carry_semantic_convention_attributes(demo_run: dict[str, Any]) -> None:
    spans = result_of(demo_run, "demo_system")["spans"]
    systems = Counter(s["attributes"].get("db.system") for s in spans if s["kind"] == "client")
    assert systems["postgresql"] >= 4 and systems["redis"] >= 4, systems
    server = next(s for s in spans if s["name"] == "GET /items/{id}")
    assert server["attributes"]["url.path"] == "/items/2"
    assert server["attributes"]["http.response.status_code"] == 200
    producer = next(s for s in spans if s["name"] == "send jobs")
    assert producer["kind"] == "producer"
    assert producer["attributes"]["messaging.destination.name"] == "jobs"


# -- the fallback scenario -------------------------------------------------------------


def spans_during_step(test: dict[str, Any], step: str, name: str) -> list[Span]:
    """Spans called ``name`` that started inside the clnrm.step span of ``step``."""
    [window] = [s for s in test["spans"] if s["name"] == "clnrm.step"
                and s["attributes"]["clnrm.step"] == step]
    return [s for s in test["spans"] if s["name"] == name
            and window["start_time_unix_nano"] <= s["start_time_unix_nano"]
            <= window["end_time_unix_nano"]]


def test_fallback_serves_stale_cache_while_breaker_spares_the_db(
    demo_run: dict[str, Any]
) -> None:
    test = result_of(demo_run, "demo_stale_cache_fallback")
    assert test["outcome"] == "passed", test["message"]
    first_outage = spans_during_step(test, "stale_read_while_db_down", "SELECT items")
    assert [s["status"] for s in first_outage] == ["ERROR", "ERROR"]  # RETRIES=1
    assert spans_during_step(test, "circuit_open_read_skips_db", "SELECT items") == []
    [stale] = spans_during_step(test, "circuit_open_read_skips_db", "GET /v1/items")
    assert stale["attributes"]["demo.cache.source"] == "stale-cache"
    assert [e["name"] for e in stale["events"]] == ["fallback.stale_cache"]
    recovered = spans_during_step(test, "recovers_after_open_period", "SELECT items")
    assert [s["status"] for s in recovered] == ["UNSET"]
    transitions = sorted((e["time_unix_nano"], e["attributes"]["demo.circuit.state"])
                         for s in test["spans"] for e in s["events"]
                         if e["name"] == "circuit_breaker.state_change")
    states = [state for _, state in transitions]
    assert states == ["open", "half_open", "closed"]


# -- resilience rules, without containers ----------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_at_threshold_then_lets_one_trial_through(
    demoapp: Callable[[str], ModuleType]
) -> None:
    resilience = demoapp("resilience")
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    breaker = resilience.CircuitBreaker("db", enabled=True, threshold=2, open_s=5.0,
                                        clock=clock, on_change=lambda n, s: seen.append((n, s)))
    for _ in range(2):
        breaker.acquire()
        breaker.failure()
    with pytest.raises(resilience.DependencyError) as refused:
        breaker.acquire()
    assert refused.value.kind == "circuit_open"
    clock.now += 5.0
    breaker.acquire()  # the trial call
    with pytest.raises(resilience.DependencyError, match="trial call running"):
        breaker.acquire()
    breaker.success()
    assert breaker.state == "closed"
    assert seen == [("db", "open"), ("db", "half_open"), ("db", "closed")]


def test_retry_stops_early_when_the_circuit_opens(demoapp: Callable[[str], ModuleType]) -> None:
    resilience = demoapp("resilience")
    breaker = resilience.CircuitBreaker("db", enabled=True, threshold=2, open_s=60.0)
    policy = resilience.RetryPolicy(retries=5, backoff_s=0.01, max_backoff_s=0.1)
    attempts: list[int] = []

    def attempt(n: int) -> None:
        attempts.append(n)
        raise resilience.DependencyError("db", "unavailable", "refused")

    with pytest.raises(resilience.DependencyError) as stopped:
        resilience.call_with_retry(attempt, policy=policy, breaker=breaker, sleep=lambda s: None)
    assert attempts == [0, 1] and stopped.value.kind == "circuit_open"


def test_a_bug_is_not_retried_and_does_not_trip_the_breaker(
    demoapp: Callable[[str], ModuleType]
) -> None:
    resilience = demoapp("resilience")
    breaker = resilience.CircuitBreaker("db", enabled=True, threshold=1, open_s=60.0)
    policy = resilience.RetryPolicy(retries=3, backoff_s=0.0, max_backoff_s=0.0)
    calls: list[int] = []

    def attempt(n: int) -> None:
        calls.append(n)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        resilience.call_with_retry(attempt, policy=policy, breaker=breaker)
    assert calls == [0] and breaker.state == "closed"


def test_backoff_doubles_up_to_its_cap_with_seeded_jitter(
    demoapp: Callable[[str], ModuleType]
) -> None:
    resilience = demoapp("resilience")

    def delays(seed: int) -> list[float]:
        policy = resilience.RetryPolicy(6, 0.1, 0.5, random.Random(seed))
        return [policy.delay(n) for n in range(1, 7)]

    first = delays(42)
    assert first == delays(42) and first != delays(43)
    ceilings = [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert all(c / 2 <= d <= c for d, c in zip(first, ceilings, strict=True)), first


def test_invalid_switch_is_reported_and_replaced_by_its_default(
    demoapp: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    config = demoapp("config")
    settings = config.Settings.from_env("api", {
        "CIRCUIT_BREAKER": "maybe", "TIMEOUT_MS": "-5", "RETRIES": "3",
        "FALLBACK_STALE_CACHE": "on", "CB_OPEN_MS": "250"})
    assert settings.circuit_breaker is False and settings.timeout_s == 1.0
    assert settings.retries == 3 and settings.fallback_stale_cache is True
    assert settings.cb_open_s == 0.25 and settings.port == 8000
    err = capsys.readouterr().err
    assert "CIRCUIT_BREAKER='maybe' (want on or off)" in err
    assert "TIMEOUT_MS='-5' (want at least 1)" in err
