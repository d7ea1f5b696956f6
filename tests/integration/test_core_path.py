"""The engine calls a steps-only test costs: three per step, none repeated, nothing else.

Counted by wrapping the docker client's one HTTP entry point for an in-process
run of a real busybox test, so a change that adds an inspect or a list call per
step (or a ping per run) shows up here before it shows up in ``bench/overhead.py``.
"""

from __future__ import annotations

import re
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from clnrm.results import Outcome
from clnrm.runner import Runner, RunOptions
from clnrm.scenario import load_scenario

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("local_images", "no_leaks")]

STEPS = 5


def test_each_step_costs_three_engine_calls_and_the_test_a_fixed_few(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docker.api.client import APIClient

    calls: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    original = APIClient.request

    def counted(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = re.sub(r"[0-9a-f]{64}", "<id>", url.split("?")[0])
        path = re.sub(r"^.*?/v1\.\d+/", "", path).removeprefix("http+docker://localhost")
        with lock:
            calls.append((threading.current_thread().name, method, path))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(APIClient, "request", counted)
    steps = "\n".join(f"""
        [[steps]]
        name = "s{i}"
        command = ["echo", "{i}"]
        expected_output_regex = "^{i}$"
    """ for i in range(STEPS))
    f = tmp_path / "core.clnrm.toml"
    f.write_text(textwrap.dedent('[test.metadata]\nname = "core"\n' + steps), encoding="utf-8")
    result = Runner(RunOptions(backend="docker")).run([load_scenario(f)])
    assert [t.outcome for t in result.tests] == [Outcome.PASSED]

    run_level = {"MainThread", "clnrm-gc"}  # the exec stream is read on a helper thread
    test_calls = Counter((m, p) for thread, m, p in calls if thread not in run_level)
    assert test_calls[("POST", "containers/<id>/exec")] == STEPS
    assert test_calls[("POST", "exec/<id>/start")] == STEPS
    assert test_calls[("GET", "exec/<id>/json")] == STEPS
    per_test = test_calls - Counter({k: STEPS for k in [
        ("POST", "containers/<id>/exec"), ("POST", "exec/<id>/start"),
        ("GET", "exec/<id>/json")]})
    # network create, container create + start, container remove, network remove: no
    # inspect of the network (no receiver here), the container or the image per test
    assert sorted(per_test.elements()) == sorted([
        ("POST", "networks/create"), ("POST", "containers/create"),
        ("POST", "containers/<id>/start"), ("DELETE", "containers/<id>"),
        ("DELETE", "networks/<id>")]), per_test
    # per run: the version (creating the client; no ping on top), the image check, and the
    # dead-run collection's three lists on its own thread beside the test
    assert sorted((t, m, p) for t, m, p in calls if t in run_level) == sorted([
        ("MainThread", "GET", "/version"),
        ("MainThread", "GET", "images/clnrm/busybox:latest/json"),
        ("clnrm-gc", "GET", "containers/json"), ("clnrm-gc", "GET", "networks"),
        ("clnrm-gc", "GET", "volumes")])


def test_the_first_sandbox_is_made_beside_the_run_set_up_and_taken_by_its_test(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The network is created on the backend's prepare thread (overlapping self-tracing and
    the test's start), and the test uses that network: no second network is created."""
    from docker.api.client import APIClient

    creates: list[str] = []
    original = APIClient.create_network

    def counted(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        creates.append(threading.current_thread().name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(APIClient, "create_network", counted)
    f = tmp_path / "early.clnrm.toml"
    f.write_text('[test.metadata]\nname = "early"\n\n[[steps]]\nname = "s"\n'
                 'command = ["echo", "hi"]\nexpected_output_regex = "^hi$"\n', encoding="utf-8")
    result = Runner(RunOptions(backend="docker")).run([load_scenario(f)])
    assert [t.outcome for t in result.tests] == [Outcome.PASSED]
    assert creates == ["clnrm-prepare"]


def test_a_prepared_sandbox_no_test_takes_is_removed_and_a_different_request_gets_its_own(
        docker_client: Any) -> None:
    from clnrm.backends.docker import DockerBackend
    from clnrm.runner import new_run_id
    from tests.conftest import clnrm_resources

    run_id = new_run_id()
    backend = DockerBackend(run_id, client=docker_client)
    backend.prepare("t", default_image="clnrm/busybox:latest", env={"A": "1"}, steps=True)
    # another environment: not the prepared sandbox (its step container has other env)
    with backend.sandbox("t", default_image="clnrm/busybox:latest", env={"A": "2"}) as box:
        assert box.exec(None, ["sh", "-c", "echo $A"]).stdout.strip() == "2"
        prepared = backend._prepared[0][1].result()  # still waiting for its test
        assert prepared.network_id != box.network_id
    backend.finish()  # the prepared one nobody took, step container included
    assert clnrm_resources(docker_client, run_id) == {
        "containers": set(), "networks": set(), "volumes": set()}
