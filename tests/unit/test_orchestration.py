"""The orchestration layer without an engine: graph, schedule, plan, temporal and topology."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest
from clnrm.agents.orchestrator import OrchestratorAgent

from clnrm.backends.base import STEPS_MEMBER
from clnrm.errors import ClnrmError, ScenarioError
from clnrm.orchestration import (
    CommandCheck,
    HttpCheck,
    LogCheck,
    RunningCheck,
    SpanCheck,
    TcpCheck,
    dependency_graph,
    judge_temporal,
    judge_topology,
    network_links,
    run_in_dependency_order,
)
from clnrm.otel.span import Span
from clnrm.results import Outcome, ServiceTimeline, ValidationStatus
from clnrm.results import TestResult as Result
from clnrm.scenario import loads_scenario
from clnrm.scenario.layers import TemporalConstraint, Topology
from clnrm.validators.base import Declarations

BASE = """
[meta]
name = "orch"
[[steps]]
name = "s"
command = ["true"]
"""


def scenario(body: str, tmp_path: Path | None = None) -> object:
    text = BASE + textwrap.dedent(body)
    if tmp_path is None:
        return loads_scenario(text, source="orch.clnrm.toml")
    path = tmp_path / "orch.clnrm.toml"
    path.write_text(text, encoding="utf-8")
    return loads_scenario(text, source=str(path))


# -- dependency graph ------------------------------------------------------------------


def test_graph_levels_follow_depends_on() -> None:
    graph = dependency_graph({"db": [], "cache": [], "api": ["db", "cache"], "web": ["api"]})
    assert graph.levels == (("cache", "db"), ("api",), ("web",))
    assert graph.required_by["db"] == {"api"} and graph.required_by["web"] == set()
    assert graph.level_of("web") == 2


def test_cycle_error_names_the_cycle_in_dependency_direction() -> None:
    with pytest.raises(ScenarioError) as err:
        dependency_graph({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}, source="x.toml")
    text = str(err.value)
    assert "cycle: a -> b -> c -> a" in text and "each depends on the next" in text
    assert err.value.key_path == "services.*.depends_on" and "Hint:" in text


def test_unknown_dependency_lists_declared_services() -> None:
    with pytest.raises(ScenarioError, match="unknown service 'dbb'") as err:
        dependency_graph({"api": ["dbb"], "db": []})
    assert "declared services: api, db" in str(err.value)


def test_cycle_in_a_file_fails_planning_before_anything_starts() -> None:
    sc = scenario("""
        [services.a]
        image = "clnrm/busybox:latest"
        depends_on = ["b"]
        [services.b]
        image = "clnrm/busybox:latest"
        depends_on = ["a"]
    """)
    with pytest.raises(ScenarioError, match="a -> b -> a"):
        OrchestratorAgent().plan(sc)  # type: ignore[arg-type]


# -- schedule --------------------------------------------------------------------------


def test_a_dependant_starts_when_its_own_dependencies_are_done_not_the_whole_level() -> None:
    """fast -> child must not wait for slow, which is on the same level as fast."""
    events: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    delays = {"slow": 0.4, "fast": 0.05, "child": 0.0}

    def work(name: str, abort: threading.Event) -> None:
        with lock:
            events.append((name, "start", time.monotonic()))
        time.sleep(delays[name])
        with lock:
            events.append((name, "done", time.monotonic()))

    run_in_dependency_order({"slow": [], "fast": [], "child": ["fast"]}, work)
    at = {(n, e): t for n, e, t in events}
    assert at[("child", "start")] >= at[("fast", "done")]
    assert at[("child", "start")] < at[("slow", "done")]


def test_first_error_stops_new_work_and_aborts_work_in_flight() -> None:
    started: list[str] = []
    aborted = threading.Event()

    def work(name: str, abort: threading.Event) -> None:
        started.append(name)
        if name == "bad":
            raise ClnrmError("bad never became ready")
        if name == "long" and abort.wait(5):
            aborted.set()
            raise ClnrmError("aborted")

    began = time.monotonic()
    with pytest.raises(ClnrmError, match="bad never became ready"):
        run_in_dependency_order({"bad": [], "long": [], "after_bad": ["bad"]}, work)
    assert "after_bad" not in started and aborted.is_set()
    assert time.monotonic() - began < 2


def test_run_cancel_reaches_work_in_flight() -> None:
    cancelled = threading.Event()

    def work(name: str, abort: threading.Event) -> None:
        cancelled.set()
        if abort.wait(5):
            raise ClnrmError("start aborted")

    with pytest.raises(ClnrmError, match="aborted"):
        run_in_dependency_order({"x": []}, work, cancelled=cancelled)


# -- plan: probes and references -------------------------------------------------------


def test_probes_from_readiness_health_check_and_wait_for_span() -> None:
    sc = scenario("""
        [services.db]
        plugin = "network_service"
        image = "clnrm/busybox:latest"
        command = ["true"]
        ports = [5432]
        [services.api]
        image = "clnrm/busybox:latest"
        ports = [8000]
        readiness = [{ http = "/health" }, { log = "started", timeout = "2s" }]
        health_check = { cmd = ["true"], interval = "0.5s", retries = 4 }
        wait_for_span = "api.ready"
        wait_for_span_timeout_secs = 7
        [services.box]
        image = "clnrm/busybox:latest"
        [services.cmd]
        image = "clnrm/busybox:latest"
        readiness = { command = "test -e /ready", interval = "200ms" }
    """)
    plan = OrchestratorAgent().plan(sc)  # type: ignore[arg-type]
    db, api, box, cmd = (plan.checks[n] for n in ("db", "api", "box", "cmd"))
    assert db == (TcpCheck(port=5432),)
    assert api[0] == HttpCheck(path="/health", port=8000)
    assert api[1] == LogCheck(pattern="started", timeout=2.0)
    assert api[2] == SpanCheck(name="api.ready", timeout=7)
    assert isinstance(api[3], CommandCheck) and api[3].timeout == 2.0  # 4 x 0.5 s window
    assert box == (RunningCheck(),)
    assert cmd == (CommandCheck(cmd=["sh", "-c", "test -e /ready"], interval=0.2),)
    assert plan.readiness_text()["api"][0] == "http GET :8000/health answers 2xx/3xx"


def test_http_probe_without_any_port_is_a_located_error() -> None:
    sc = scenario("""
        [services.api]
        image = "clnrm/busybox:latest"
        readiness = { http = "/health" }
    """)
    with pytest.raises(ScenarioError, match="needs a port") as err:
        OrchestratorAgent().plan(sc)  # type: ignore[arg-type]
    assert err.value.key_path == "services.api.readiness"


@pytest.mark.parametrize(("probe", "message"), [
    ("{}", "exactly one of tcp, http, command, log, span; got none"),
    ('{ tcp = 1, log = "x" }', "got tcp, log"),
    ('{ http = "health" }', "must be a path starting with '/'"),
    ("{ tcp = 1, port = 2 }", "'port' and 'status' belong to an http probe"),
    ('{ log = "(" }', "not a valid regular expression"),
])
def test_bad_readiness_probe_is_rejected_at_load(probe: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")) as err:
        scenario(f"""
            [services.db]
            image = "clnrm/busybox:latest"
            readiness = {probe}
        """)
    assert "services.db.readiness" in str(err.value)


def test_temporal_events_default_to_ready_and_must_name_declared_services() -> None:
    sc = scenario("""
        [services.db]
        image = "clnrm/busybox:latest"
        [services.api]
        image = "clnrm/busybox:latest"
        [[orchestration.temporal]]
        first = "db"
        then = "api.start"
        within = "5s"
    """)
    [c] = sc.orchestration.temporal  # type: ignore[attr-defined]
    assert (c.first, c.then, c.within) == ("db.ready", "api.start", 5.0)
    bad = scenario("""
        [services.db]
        image = "clnrm/busybox:latest"
        [[orchestration.temporal]]
        first = "db.ready"
        then = "apii.ready"
    """)
    with pytest.raises(ScenarioError, match="'apii', which is not declared") as err:
        OrchestratorAgent().plan(bad)  # type: ignore[arg-type]
    assert err.value.key_path == "orchestration.temporal[0].then"


def test_topology_edges_must_be_pairs_of_declared_services() -> None:
    with pytest.raises(ScenarioError, match=r"\[caller, callee\]"):
        scenario("""
            [orchestration.topology]
            allow = [["a", "a"]]
        """)
    sc = scenario("""
        [services.a]
        image = "clnrm/busybox:latest"
        [orchestration.topology]
        allow = [["a", "b"]]
    """)
    with pytest.raises(ScenarioError, match="'b', which is not declared") as err:
        OrchestratorAgent().plan(sc)  # type: ignore[arg-type]
    assert err.value.key_path == "orchestration.topology.allow[0]"


def test_disabled_orchestration_layer_judges_nothing() -> None:
    sc = scenario("""
        [services.a]
        image = "clnrm/busybox:latest"
        [layers]
        orchestration = false
        [orchestration.topology]
        allow = [["a", "a2"]]
    """)
    plan = OrchestratorAgent().plan(sc)  # type: ignore[arg-type]
    assert plan.topology is None and plan.links is None


# -- temporal --------------------------------------------------------------------------


def timeline(**moments: tuple[float | None, float | None]) -> list[ServiceTimeline]:
    return [ServiceTimeline(service=n, start_s=s, ready_s=r) for n, (s, r) in moments.items()]


def test_temporal_within_passes_and_fails_with_both_moments_shown() -> None:
    rows = timeline(db=(0.1, 1.0), api=(1.1, 7.2))
    ok = TemporalConstraint(first="db.ready", then="api.ready", within=10)
    late = TemporalConstraint(first="db.ready", then="api.ready", within=5)
    good, bad = judge_temporal([ok, late], rows, Declarations(None))
    assert good.status is ValidationStatus.PASS
    assert bad.status is ValidationStatus.FAIL
    assert bad.expectation == "api.ready within 5 s of db.ready"
    assert bad.expected == "api.ready 0..5 s after db.ready"
    assert bad.seen == ("api.ready 6.200 s after db.ready "
                        "(db.ready at 1.000 s, api.ready at 7.200 s)")
    assert bad.declared_at == "orchestration.temporal[1]"


def test_temporal_order_violated_and_never_happened() -> None:
    rows = timeline(gateway=(0.5, 2.0), worker=(1.0, None))
    before = TemporalConstraint(first="gateway.ready", then="worker.start")
    never = TemporalConstraint(first="gateway.ready", then="worker.ready")
    r1, r2 = judge_temporal([before, never], rows, Declarations(None))
    assert r1.status is ValidationStatus.FAIL and "1.000 s before gateway.ready" in r1.seen
    assert r2.status is ValidationStatus.FAIL and r2.seen.startswith("worker.ready never happened")


# -- topology --------------------------------------------------------------------------


def span(service: str, sid: str, parent: str | None = None, trace: str = "t1") -> Span:
    return Span(name=f"{service} op", trace_id=trace, span_id=sid, parent_span_id=parent,
                start_time_unix_nano=1, end_time_unix_nano=2, resource={"service.name": service})


SPANS = [span("clnrm", "c1"), span("gateway", "g1", "c1"), span("api", "a1", "g1"),
         span("db", "d1", "a1"), span("db", "d2", "g1")]
SERVICES = ["gateway", "api", "db"]


def test_forbidden_edge_in_spans_fails_showing_both_graphs() -> None:
    topo = Topology(allow=[["gateway", "api"], ["api", "db"]])
    [result] = judge_topology(topo, SPANS, SERVICES, Declarations(None))
    assert result.status is ValidationStatus.FAIL and result.validator == "topology"
    assert result.expected == "api -> db, gateway -> api"
    assert result.seen == ("api -> db (1 call), gateway -> api (1 call), gateway -> db (1 call); "
                           "unexpected: gateway -> db")


def test_missing_expected_edge_fails_only_when_matching_exactly() -> None:
    allow = [["gateway", "api"], ["api", "db"], ["gateway", "db"], ["api", "cache"]]
    [exact] = judge_topology(Topology(allow=allow), SPANS, [*SERVICES, "cache"],
                             Declarations(None))
    assert exact.status is ValidationStatus.FAIL and exact.seen.endswith("missing: api -> cache")
    [subset] = judge_topology(Topology(allow=allow, match="subset"), SPANS,
                              [*SERVICES, "cache"], Declarations(None))
    assert subset.status is ValidationStatus.PASS
    assert judge_topology(Topology(allow=allow, match="off"), SPANS, SERVICES,
                          Declarations(None)) == []


def test_links_pair_allowed_services_and_cover_entry_services_for_the_steps() -> None:
    topo = Topology(allow=[["gateway", "api"], ["api", "db"], ["api", "gateway"]])
    links = network_links(topo, ["gateway", "api", "db", "lonely"])
    pairs = [tuple(sorted(set(link) - {STEPS_MEMBER})) for link in links]
    assert ("api", "gateway") in pairs and ("api", "db") in pairs and len(pairs) == 3
    reached = {m for link in links if STEPS_MEMBER in link for m in link} - {STEPS_MEMBER}
    assert reached == {"gateway", "api", "db", "lonely"}
    assert ("lonely", STEPS_MEMBER) in links
    only_gateway = network_links(Topology(allow=topo.allow, entry=["gateway"]), ["gateway"])
    assert sum(STEPS_MEMBER in link for link in only_gateway) == 1


# -- the agent -------------------------------------------------------------------------


def test_agent_checks_a_result_against_the_plan_it_made(tmp_path: Path) -> None:
    sc = scenario("""
        [services.db]
        image = "clnrm/busybox:latest"
        [services.api]
        image = "clnrm/busybox:latest"
        depends_on = ["db"]
        [[orchestration.temporal]]
        first = "db"
        then = "api"
        within = "1s"
        [orchestration.topology]
        allow = [["api", "db"]]
        enforce = false
        match = "subset"
    """, tmp_path)
    agent = OrchestratorAgent()
    plan = agent.plan(sc)  # type: ignore[arg-type]
    assert plan.graph.levels == (("db",), ("api",)) and plan.links is None
    result = Result(name="orch", file="", outcome=Outcome.PASSED,
                        services_timeline=timeline(db=(0.1, 0.5), api=(0.6, 2.5)),
                        spans=[span("db", "d1"), span("api", "a1", "d1")])
    temporal, topology = agent.check(result)
    assert temporal.status is ValidationStatus.FAIL
    assert temporal.declared_at and temporal.declared_at.endswith(
        "orch.clnrm.toml:13 [orchestration.temporal[0]]")
    assert topology.status is ValidationStatus.FAIL and "unexpected: db -> api" in topology.seen
    with pytest.raises(ClnrmError, match="no orchestration plan"):
        OrchestratorAgent().check(result)
