"""`clnrm run` on the real Docker engine, driven through the CLI as a user would."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from docker.errors import NotFound

from tests.conftest import clnrm_resources, run_cli

pytestmark = pytest.mark.usefixtures("local_images", "no_leaks")


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


PASSING = """
    [test.metadata]
    name = "{name}"

    [services.web]
    plugin = "network_service"
    image = "clnrm/busybox:latest"
    command = ["sh", "-c", "mkdir -p /w && echo served > /w/i && exec httpd -f -p 80 -h /w"]
    ports = [80]

    [[steps]]
    name = "fetch"
    command = ["wget", "-q", "-O", "-", "http://web/i"]
    expected_output_regex = "^served$"

    [[steps]]
    name = "exec_in_service"
    service = "web"
    command = ["cat", "/w/i"]
    expected_output_regex = "served"
"""


def test_passing_file_exits_zero_and_reports_json(tmp_path: Path) -> None:
    f = write(tmp_path, "ok.clnrm.toml", PASSING.format(name="ok"))
    res = run_cli("run", str(f), "--format", "json")
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads(res.stdout)
    [test] = report["tests"]
    assert test["outcome"] == "passed"
    assert [s["name"] for s in test["steps"]] == ["fetch", "exec_in_service"]
    assert test["steps"][0]["stdout"].strip() == "served"


def test_failed_expectation_exits_one_and_names_step(tmp_path: Path) -> None:
    f = write(tmp_path, "bad.clnrm.toml", """
        [test.metadata]
        name = "bad"
        [[steps]]
        name = "wrong_output"
        command = ["echo", "apple"]
        expected_output_regex = "banana"
        [[steps]]
        name = "never_runs"
        command = ["echo", "x"]
    """)
    res = run_cli("run", str(f))
    assert res.returncode == 1, res.stderr + res.stdout
    assert "wrong_output" in res.stdout and "banana" in res.stdout
    assert "apple" in res.stdout


def test_exit_code_and_timeout_expectations(tmp_path: Path) -> None:
    f = write(tmp_path, "codes.clnrm.toml", """
        [test.metadata]
        name = "codes"
        [[steps]]
        name = "expected_failure"
        command = ["sh", "-c", "exit 7"]
        expected_exit_code = 7
        [[steps]]
        name = "too_slow"
        command = ["sleep", "30"]
        timeout = "1s"
        continue_on_failure = true
        [[steps]]
        name = "after_timeout"
        command = ["echo", "still-here"]
        expected_output_regex = "still-here"
    """)
    res = run_cli("run", str(f), "--format", "json")
    assert res.returncode == 1
    steps = {s["name"]: s for s in json.loads(res.stdout)["tests"][0]["steps"]}
    assert steps["expected_failure"]["outcome"] == "passed"
    assert steps["too_slow"]["outcome"] == "failed"
    assert "timed out after 1 s" in steps["too_slow"]["message"]
    assert steps["after_timeout"]["outcome"] == "passed"


def test_invalid_file_exits_two_and_runs_nothing(tmp_path: Path, docker_client: Any) -> None:
    good = write(tmp_path, "good.clnrm.toml", PASSING.format(name="good"))
    bad = write(tmp_path, "broken.clnrm.toml", "[test.metadata]\nname = \n")
    res = run_cli("run", str(good), str(bad))
    assert res.returncode == 2
    assert "broken.clnrm.toml:2" in res.stderr
    assert "Traceback" not in res.stderr
    assert "nothing was run" in res.stderr


def test_missing_image_names_the_build_command(tmp_path: Path) -> None:
    f = write(tmp_path, "img.clnrm.toml", """
        [test.metadata]
        name = "img"
        [services.db]
        image = "alpine:3.0-not-here"
        [[steps]]
        name = "s"
        command = ["true"]
    """)
    res = run_cli("run", str(f))
    assert res.returncode == 2
    assert "alpine:3.0-not-here" in res.stderr and "never pull" in res.stderr
    assert "--image-map" in res.stderr


def test_image_map_runs_upstream_alpine_files(tmp_path: Path) -> None:
    f = write(tmp_path, "alp.clnrm.toml", """
        [test.metadata]
        name = "alp"
        [services.box]
        plugin = "generic_container"
        image = "alpine:latest"
        [[steps]]
        name = "in_box"
        service = "box"
        command = ["echo", "mapped"]
        expected_output_regex = "mapped"
    """)
    res = run_cli("run", str(f), "--image-map", "alpine:latest=clnrm/busybox:latest")
    assert res.returncode == 0, res.stdout + res.stderr


def test_readiness_failure_shows_service_logs(tmp_path: Path) -> None:
    f = write(tmp_path, "dies.clnrm.toml", """
        [test.metadata]
        name = "dies"
        [services.crasher]
        plugin = "network_service"
        image = "clnrm/busybox:latest"
        command = ["sh", "-c", "echo config-file-missing >&2; exit 3"]
        ports = [80]
        [[steps]]
        name = "s"
        command = ["true"]
    """)
    res = run_cli("run", str(f))
    assert res.returncode == 2
    assert "crasher" in res.stdout and "exited with code 3" in res.stdout
    assert "config-file-missing" in res.stdout


def test_dependency_cycle_is_named(tmp_path: Path) -> None:
    f = write(tmp_path, "cycle.clnrm.toml", """
        [test.metadata]
        name = "cycle"
        [services.a]
        image = "clnrm/busybox:latest"
        depends_on = ["b"]
        [services.b]
        image = "clnrm/busybox:latest"
        depends_on = ["a"]
        [[steps]]
        name = "s"
        command = ["true"]
    """)
    res = run_cli("run", str(f))
    assert res.returncode == 2
    assert "cycle" in res.stderr and ("a -> b -> a" in res.stderr or "b -> a -> b" in res.stderr)


def test_parallel_runs_of_same_file_do_not_clash(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path, f"p{i}.clnrm.toml", PASSING.format(name="same_name"))
    res = run_cli("run", str(tmp_path), "-j", "3", "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [t["outcome"] for t in json.loads(res.stdout)["tests"]] == ["passed"] * 3


def test_sandbox_is_isolated_and_labelled(tmp_path: Path, docker_client: Any) -> None:
    """While a test runs: internal network, run label on everything, nothing privileged."""
    f = write(tmp_path, "iso.clnrm.toml", """
        [test.metadata]
        name = "iso"
        [services.svc]
        image = "clnrm/busybox:latest"
        [[steps]]
        name = "no_docker_socket"
        service = "svc"
        command = ["sh", "-c", "test -S /var/run/docker.sock && echo exposed || echo hidden"]
        expected_output_regex = "^hidden$"
        [[steps]]
        name = "hold"
        command = ["sleep", "3"]
    """)
    seen: dict[str, Any] = {}

    def inspect() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            res = clnrm_resources(docker_client)
            if len(res["containers"]) >= 2 and res["networks"]:
                try:  # other runs on a shared engine may remove theirs between list and inspect
                    found = {"containers": [docker_client.api.inspect_container(c)
                                            for c in res["containers"]],
                             "networks": [docker_client.api.inspect_network(n)
                                          for n in res["networks"]]}
                except NotFound:
                    found = {}
                seen.update(found)
            time.sleep(0.1)

    watcher = threading.Thread(target=inspect)
    watcher.start()
    res = run_cli("run", str(f))
    watcher.join()
    assert res.returncode == 0, res.stdout + res.stderr
    assert seen, "never saw the run's resources"
    for net in seen["networks"]:
        assert net["Internal"] is True
        assert net["Labels"]["clnrm.run"]
    for ctr in seen["containers"]:
        host = ctr["HostConfig"]
        assert host["Privileged"] is False
        assert host["NetworkMode"] not in ("host", "bridge", "default")
        assert not any("docker.sock" in b for b in host.get("Binds") or [])
        assert ctr["Config"]["Labels"]["clnrm.run"]


def test_quickstart_from_init_passes(tmp_path: Path) -> None:
    """The file `clnrm init` writes runs green on the local images and is judged on a span
    its service emitted; breaking its expectation fails it (tests/test_demo_system.py
    covers scenarios/demo)."""
    assert run_cli("init", str(tmp_path)).returncode == 0
    res = run_cli("run", str(tmp_path / "tests"), "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    [test] = json.loads(res.stdout)["tests"]
    assert test["outcome"] == "passed" and len(test["steps"]) == 1
    [held] = [v for v in test["validations"] if v["validator"] == "span"]
    assert held["status"] == "pass" and held["expectation"] == "span 'order.place'"
    target = tmp_path / "tests" / "basic.clnrm.toml"
    target.write_text(target.read_text().replace('"order.id" = "42" }', '"order.id" = "43" }'))
    broken = run_cli("run", str(target))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "order.id='42' (want '43')" in broken.stdout
