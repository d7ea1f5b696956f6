"""Nothing is left behind: Ctrl-C, SIGTERM, and SIGKILL followed by `clnrm gc`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clnrm.labels import LABEL_OWNER, LABEL_RUN
from tests.conftest import REPO, assert_run_gone, clnrm_resources, run_cli

pytestmark = pytest.mark.usefixtures("local_images")

SLOW = """
[test.metadata]
name = "slow"
[services.svc]
image = "clnrm/busybox:latest"
[services.web]
plugin = "network_service"
image = "clnrm/busybox:latest"
command = ["httpd", "-f", "-p", "80"]
ports = [80]
[[steps]]
name = "hang"
command = ["sleep", "120"]
"""


def start_slow_run(tmp_path: Path, docker_client: Any) -> tuple[subprocess.Popen[str], str]:
    """Start a run and wait until its step is executing; return the process and run id."""
    f = tmp_path / "slow.clnrm.toml"
    f.write_text(SLOW, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "clnrm", "run", str(f)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # this run's containers only (owner label host:pid:start names the child): another
        # run sharing the engine starts containers of its own meanwhile
        mine = [c for c in docker_client.api.containers(filters={"label": LABEL_OWNER})
                if c["Labels"][LABEL_OWNER].split(":")[1:2] == [str(proc.pid)]]
        # svc, web and the step container: the step is running once all three exist
        if len(mine) >= 3:
            run_id = mine[0]["Labels"][LABEL_RUN]
            time.sleep(0.5)
            return proc, run_id
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the run never started its containers")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_cleans_up_without_gc(tmp_path: Path, docker_client: Any,
                                        sig: signal.Signals) -> None:
    proc, run_id = start_slow_run(tmp_path, docker_client)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert f"interrupted by {sig.name}" in err
    assert "Traceback" not in err
    assert_run_gone(docker_client, run_id)


def test_gc_removes_everything_of_a_killed_run(tmp_path: Path, docker_client: Any) -> None:
    proc, run_id = start_slow_run(tmp_path, docker_client)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    left = clnrm_resources(docker_client, run_id)
    assert left["containers"] and left["networks"], "SIGKILL should leave resources for gc"
    res = run_cli("gc")
    assert res.returncode == 0, res.stderr
    assert f"removed run {run_id}" in res.stdout
    assert_run_gone(docker_client, run_id)


def test_next_run_collects_a_killed_runs_leftovers(tmp_path: Path, docker_client: Any) -> None:
    proc, run_id = start_slow_run(tmp_path, docker_client)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    ok = tmp_path / "ok.clnrm.toml"
    ok.write_text('[test.metadata]\nname = "ok"\n[[steps]]\nname = "s"\ncommand = ["true"]\n',
                  encoding="utf-8")
    assert run_cli("run", str(ok)).returncode == 0
    assert_run_gone(docker_client, run_id)


def test_gc_leaves_a_live_run_alone(tmp_path: Path, docker_client: Any) -> None:
    proc, run_id = start_slow_run(tmp_path, docker_client)
    try:
        res = run_cli("gc")
        assert res.returncode == 0
        assert clnrm_resources(docker_client, run_id)["containers"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert_run_gone(docker_client, run_id)
