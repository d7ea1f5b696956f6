"""The local backend runs steps as subprocesses and is explicit about its limits."""

from __future__ import annotations

import sys

import pytest

from clnrm.backends.local import LocalBackend
from clnrm.errors import BackendError, ReadinessError
from clnrm.orchestration import await_ready, checks_for
from clnrm.plugins.base import ServiceSpec
from clnrm.results import Outcome
from clnrm.runner import Runner, RunOptions
from clnrm.scenario.model import Scenario, ServiceConfig, Step


def run(scenario: Scenario) -> object:
    backend = LocalBackend("localtest")
    return Runner(RunOptions(backend="local"), backend=backend).run([scenario])


def test_steps_run_as_subprocesses_with_expectations() -> None:
    sc = Scenario(name="local", steps=[
        Step(name="echo", command=["sh", "-c", "echo $CLNRM_TEST"],
             expected_output_regex="^local$"),
        Step(name="code", command=["sh", "-c", "exit 4"], expected_exit_code=4),
    ])
    result = run(sc)
    assert result.tests[0].outcome is Outcome.PASSED, result.tests[0].message
    assert result.limitations and "no network isolation" in result.limitations[0]


def test_step_timeout_kills_the_process_group() -> None:
    sc = Scenario(name="slow", steps=[Step(name="hang", command=["sh", "-c", "sleep 30 & wait"],
                                           timeout=0.5)])
    [test] = run(sc).tests
    assert test.outcome is Outcome.FAILED and "timed out after 0.5 s" in test.message


def test_local_process_service_is_reachable_and_killed() -> None:
    sc = Scenario(name="svc", services={"web": ServiceConfig(
        plugin="local_process", ports=[18765],
        command=[sys.executable, "-m", "http.server", "18765", "--bind", "127.0.0.1"])},
        steps=[Step(name="get", command=[sys.executable, "-c",
               "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:18765/').status)"],
               expected_output_regex="200")])
    [test] = run(sc).tests
    assert test.outcome is Outcome.PASSED, test.message
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 18765), timeout=0.5)


def test_container_services_are_refused_not_faked() -> None:
    box = LocalBackend("x").sandbox("t", default_image="i", env={})
    with box, pytest.raises(BackendError, match="runs no containers"):
        box.launch(ServiceSpec(name="db", kind="container", image="postgres"))


def test_service_that_dies_reports_its_output() -> None:
    box = LocalBackend("x").sandbox("t", default_image="i", env={})
    spec = ServiceSpec(name="dies", kind="process", command=["sh", "-c", "echo boom; exit 2"],
                       ports=(1,), readiness="tcp")
    with box, pytest.raises(ReadinessError) as err:
        await_ready(box.launch(spec), checks_for(spec), timeout=5)
    assert "exited with code 2" in str(err.value) and "boom" in err.value.logs
