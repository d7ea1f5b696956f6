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
