"""Orchestration on the real engine: start order, readiness, timing, topology, parallel runs.

Leaks are checked per run id (the report's ``run_id``), not engine-wide, so
other runs on the same engine cannot make these tests fail.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_run_gone, run_cli

pytestmark = pytest.mark.usefixtures("local_images")

BUSYBOX = "clnrm/busybox:latest"
PYTHON = "clnrm/python-otel:latest"

# A traced HTTP service: GET / calls each of $CALLS (trace context propagated), then
# answers "<name> <callee>=ok|unreachable ...".
SERVICE_PY = '''
import os, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("svc")
CALLS = [c for c in os.environ.get("CALLS", "").split(",") if c]
NAME = os.environ["OTEL_SERVICE_NAME"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        ctx = propagate.extract({k.lower(): v for k, v in self.headers.items()})
        seen = []
        with tracer.start_as_current_span(NAME + " handle", context=ctx,
                                          kind=trace.SpanKind.SERVER):
            for target in CALLS:
                with tracer.start_as_current_span("call " + target, kind=trace.SpanKind.CLIENT):
                    headers = {}
                    propagate.inject(headers)
                    req = urllib.request.Request(f"http://{target}:8080/", headers=headers)
                    try:
                        with urllib.request.urlopen(req, timeout=3):
                            seen.append(target + "=ok")
                    except OSError:
                        seen.append(target + "=unreachable")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(" ".join([NAME, *seen]).encode())

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
print("listening", flush=True)
server.serve_forever()
'''


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def run_json(*args: str) -> tuple[int, dict[str, Any], str]:
    res = run_cli("run", *args, "--format", "json")
    report = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    return res.returncode, report, res.stdout + res.stderr


def traced_service(tmp_path: Path, name: str, calls: str, depends_on: list[str]) -> str:
    script = tmp_path / "svc.py"
    script.write_text(SERVICE_PY, encoding="utf-8")
    return f"""
        [services.{name}]
        image = "{PYTHON}"
        command = ["python3", "/svc.py"]
        volumes = ["{script}:/svc.py:ro"]
        env = {{ CALLS = "{calls}" }}
        depends_on = {json.dumps(depends_on)}
        readiness = {{ log = "^listening$" }}
    """


CALL_GATEWAY = """
    [[steps]]
    name = "call_gateway"
    command = "printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc -w 30 gateway 8080"
    expected_output_regex = "{expect}"
"""


# -- start order and scale -------------------------------------------------------------


def dag_file(tmp_path: Path, name: str = "dag", *, orders: bool = True) -> Path:
    """12 services on 4 levels; 'slow' takes 4 s, so 'quick_child' (its level-mate's
    dependant) must start after 'quick' is ready and before the level is complete.

    Both constraints are orders, not wall-clock bounds ("within 3 s" failed with -j 4 on
    a busy 2-core machine): starting before 'slow' is ready is what proves that a
    service waits for its own dependencies, not for its level."""
    deps = {"db": [], "cache": [], "slow": [], "quick": [],
            "auth": ["db"], "api": ["db", "cache"], "queue": ["cache"], "quick_child": ["quick"],
            "gateway": ["api", "auth"], "worker": ["api", "queue"],
            "frontend": ["gateway"], "monitor": ["worker", "slow"]}
    body = f'[meta]\nname = "{name}"\n'
    serve = "mkdir -p /w; echo {svc} > /w/index.html; exec httpd -f -p 80 -h /w"
    for svc, needs in deps.items():
        delay = "4" if svc == "slow" else "0.2"
        body += f"""
[services.{svc}]
plugin = "network_service"
image = "{BUSYBOX}"
command = ["sh", "-c", "sleep {delay}; {serve.format(svc=svc)}"]
ports = [80]
depends_on = {json.dumps(needs)}
"""
    body += """
[[steps]]
name = "frontend_serves"
service = "frontend"
command = ["wget", "-q", "-O", "-", "http://frontend/"]
expected_output_regex = "^frontend$"
"""
    if not orders:
        return write(tmp_path, f"{name}.clnrm.toml", body)
    body += """
[[orchestration.temporal]]
first = "quick.ready"
then = "quick_child.start"

[[orchestration.temporal]]
first = "quick_child.start"
then = "slow.ready"
"""
    return write(tmp_path, f"{name}.clnrm.toml", body)


def test_twelve_services_start_as_soon_as_their_own_dependencies_are_ready(
        tmp_path: Path, docker_client: Any) -> None:
    code, report, out = run_json(str(dag_file(tmp_path)))
    assert code == 0, out
    [test] = report["tests"]
    rows = {r["service"]: r for r in test["services_timeline"]}
    assert len(rows) == 12 and all(r["ready_s"] is not None for r in rows.values())
    for row in rows.values():
        for dep in row["depends_on"]:
            assert row["start_s"] >= rows[dep]["ready_s"], (row, rows[dep])
    assert rows["quick_child"]["start_s"] < rows["slow"]["ready_s"]
    assert [v["status"] for v in test["validations"]] == ["pass", "pass"]
    assert_run_gone(docker_client, report["run_id"])


def test_parallel_runs_of_the_same_scenario_do_not_clash(
        tmp_path: Path, docker_client: Any) -> None:
    """Two copies each of one DAG and one enforced topology (same test names), at once.

    What is checked is that parallel runs do not clash (names, networks, leftovers); the
    DAG's start orders are the twelve-service test's business: with -j 4 on a busy 2-core
    machine a held container can take its full 5 s arming window, which delays a start
    past 'slow' without any clash."""
    dag = dag_file(tmp_path, orders=False).read_text(encoding="utf-8")
    topo = ('[meta]\nname = "same_topology"\n'
            + traced_service(tmp_path, "gateway", "api", ["api"])
            + traced_service(tmp_path, "api", "", [])
            + CALL_GATEWAY.format(expect="gateway api=ok")
            + '[orchestration.topology]\nallow = [["gateway", "api"]]\n')
    files = [str(write(tmp_path, f"{kind}{i}.clnrm.toml", text))
             for i in range(2) for kind, text in (("dag", dag), ("topo", topo))]
    code, report, out = run_json(*files, "-j", "4")
    assert code == 0, out
    assert [t["outcome"] for t in report["tests"]] == ["passed"] * 4
    assert_run_gone(docker_client, report["run_id"])


# -- readiness -------------------------------------------------------------------------


def test_failed_readiness_names_the_probe_and_shows_the_log_excerpt(
        tmp_path: Path, docker_client: Any) -> None:
    f = write(tmp_path, "notready.clnrm.toml", f"""
        [meta]
        name = "notready"
        [services.db]
        image = "{BUSYBOX}"
        command = ["sh", "-c", "echo loading config; echo waiting for disk >&2; exec sleep 60"]
        readiness = {{ tcp = 5432, timeout = "1s" }}
        [services.api]
        image = "{BUSYBOX}"
        depends_on = ["db"]
        [[steps]]
        name = "never"
        command = ["true"]
    """)
    code, report, out = run_json(str(f))
    assert code == 2, out
    [test] = report["tests"]
    message = test["message"]
    assert "service 'db' not ready: tcp probe failed: TCP port 5432 accepts a connection" in message
    assert "within 1 s (the probe timeout)" in message and "container status: running" in message
    assert "--- last log lines of db ---" in message
    assert "loading config" in message and "waiting for disk" in message
    rows = {r["service"]: r for r in test["services_timeline"]}
    assert rows["db"]["ready_s"] is None and rows["api"]["start_s"] is None
    assert test["steps"] == []
    assert_run_gone(docker_client, report["run_id"])


def test_held_services_start_normally_when_the_image_cannot_hold_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process: a gate that cannot run (as in an image without sh) costs time, not a test;
    and teardown removes dependants before their dependencies."""
    import clnrm.backends.docker as docker_backend
    from clnrm.results import Outcome
    from clnrm.runner import Runner, RunOptions
    from clnrm.scenario import load_scenario

    monkeypatch.setattr(docker_backend, "_GATE", "exit 3")
    removed: list[str] = []
    real_remove = docker_backend.remove_containers

    def spy(client: Any, ids: list[str]) -> None:
        for cid in ids:
            removed.append(client.api.inspect_container(cid)["Config"]["Labels"]
                           ["clnrm.service"])
        real_remove(client, ids)

    monkeypatch.setattr(docker_backend, "remove_containers", spy)
    f = write(tmp_path, "chain.clnrm.toml", f"""
        [meta]
        name = "chain"
        [services.a]
        image = "{BUSYBOX}"
        [services.b]
        image = "{BUSYBOX}"
        depends_on = ["a"]
        [services.c]
        image = "{BUSYBOX}"
        depends_on = ["b"]
        [[steps]]
        name = "in_c"
        service = "c"
        command = ["echo", "c-up"]
        expected_output_regex = "c-up"
    """)
    [test] = Runner(RunOptions()).run([load_scenario(f)]).tests
    assert test.outcome is Outcome.PASSED, test.message
    final = [s for s in removed if s in "abc"][-3:]
    assert final == ["c", "b", "a"], removed


# -- temporal --------------------------------------------------------------------------


def test_violated_temporal_constraint_fails_with_both_moments(
        tmp_path: Path, docker_client: Any) -> None:
    f = write(tmp_path, "slow.clnrm.toml", f"""
        [meta]
        name = "slow_api"
        [services.db]
        image = "{BUSYBOX}"
        [services.api]
        image = "{BUSYBOX}"
        command = ["sh", "-c", "sleep 1; echo api up; exec sleep 60"]
        depends_on = ["db"]
        readiness = {{ log = "api up" }}
        [[steps]]
        name = "ok"
        command = ["true"]
        [[orchestration.temporal]]
        first = "db.ready"
        then = "api.ready"
        within = "300ms"
        [[orchestration.temporal]]
        first = "db"
        then = "api.start"
    """)
    code, report, out = run_json(str(f))
    assert code == 1, out
    [test] = report["tests"]
    assert test["outcome"] == "failed" and test["steps"][0]["outcome"] == "passed"
    late, order = test["validations"]
    assert late["status"] == "fail" and order["status"] == "pass"
    assert late["expectation"] == "api.ready within 0.3 s of db.ready"
    assert late["declared_at"].endswith("slow.clnrm.toml:14 [orchestration.temporal[0]]")
    assert "1 orchestration expectation(s) failed" in test["message"]
    assert "expected: api.ready 0..0.3 s after db.ready" in test["message"]
    # the api sleeps 1 s before it is ready: at least that, however busy the machine
    seen = re.search(r"seen:     api\.ready (\d+\.\d+) s after db\.ready", test["message"])
    assert seen is not None and float(seen.group(1)) >= 1.0, test["message"]
    assert_run_gone(docker_client, report["run_id"])


# -- topology --------------------------------------------------------------------------


def test_forbidden_edge_seen_in_spans_fails_showing_both_graphs(
        tmp_path: Path, docker_client: Any) -> None:
    """Not enforced by networks here, so the forbidden call happens and the spans show it."""
    f = write(tmp_path, "edge.clnrm.toml", '[meta]\nname = "forbidden_edge"\n'
              + traced_service(tmp_path, "gateway", "api,db", ["api", "db"])
              + traced_service(tmp_path, "api", "db", ["db"])
              + traced_service(tmp_path, "db", "", [])
              + CALL_GATEWAY.format(expect="gateway api=ok db=ok")
              + textwrap.dedent("""
                  [orchestration.topology]
                  allow = [["gateway", "api"], ["api", "db"]]
                  enforce = false
              """))
    code, report, out = run_json(str(f))
    assert code == 1, out
    [test] = report["tests"]
    [topology] = [v for v in test["validations"] if v["validator"] == "topology"]
    assert topology["status"] == "fail"
    assert topology["expected"] == "api -> db, gateway -> api"
    assert topology["seen"] == ("api -> db (1 call), gateway -> api (1 call), "
                                "gateway -> db (1 call); unexpected: gateway -> db")
    assert "expected: api -> db, gateway -> api" in test["message"]
    assert_run_gone(docker_client, report["run_id"])


def test_enforced_topology_makes_forbidden_paths_unreachable(
        tmp_path: Path, docker_client: Any) -> None:
    f = write(tmp_path, "enforced.clnrm.toml", '[meta]\nname = "enforced"\n'
              + traced_service(tmp_path, "gateway", "api,db", ["api"])
              + traced_service(tmp_path, "api", "db", ["db"])
              + traced_service(tmp_path, "db", "", [])
              + CALL_GATEWAY.format(expect="gateway api=ok db=unreachable")
              + textwrap.dedent("""
                  [[steps]]
                  name = "steps_reach_only_the_entry"
                  command = ["sh", "-c", "nc -z -w 2 api 8080 && echo reached || echo blocked"]
                  expected_output_regex = "^blocked$"

                  [orchestration.topology]
                  allow = [["gateway", "api"], ["api", "db"]]
                  entry = ["gateway"]
              """))
    code, report, out = run_json(str(f))
    assert code == 0, out
    [test] = report["tests"]
    [topology] = test["validations"]
    assert topology["status"] == "pass"
    assert topology["seen"] == "api -> db (1 call), gateway -> api (1 call)"
    assert_run_gone(docker_client, report["run_id"])
