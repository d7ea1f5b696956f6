"""``clnrm swarm cluster``: bad input is one line and exit 2, and ``down`` leaves no process of
a node behind, also those that left the node's process group (as Ray's workers do).

No Ray starts here: a "node" is a ``sleep`` leading its own process group, with a child
that left the group and carries only the node's environment marker.  The real cluster is
tests/integration/test_ray_cluster.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clnrm.swarm.cli import swarm_app
from typer.testing import CliRunner

from clnrm.procs import pid_alive


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(swarm_app, ["cluster", *args], prog_name="clnrm swarm")
    return res.exit_code, res.output


def test_status_without_a_cluster_says_so_and_exits_1(tmp_path: Path) -> None:
    code, out = _invoke("status", "--dir", str(tmp_path))
    assert code == 1 and f"no cluster in {tmp_path}" in out


def test_a_state_file_that_is_not_ours_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text("{not json")
    code, out = _invoke("status", "--dir", str(tmp_path))
    assert code == 2 and "cluster.json: not a cluster state file" in out
    assert "Traceback" not in out


def test_a_folder_too_long_for_rays_sockets_is_refused_before_anything_starts(
        tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60)
    code, out = _invoke("up", "--dir", str(deep))
    assert code == 2 and "too long for Ray's unix sockets" in out and "--dir" in out
    assert not deep.exists()


def test_zero_workers_is_bad_input(tmp_path: Path) -> None:
    code, _ = _invoke("up", "--workers", "0", "--dir", str(tmp_path))
    assert code == 2


def _fake_node(root: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    """A node leader in its own session, and a grandchild that left the group."""
    from clnrm.swarm.cluster import NODE_ENV

    temp = root / name
    temp.mkdir(parents=True)
    script = ("import os, subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
              " start_new_session=True)\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(60)\n")
    leader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              env={**os.environ, NODE_ENV: str(temp)},
                              start_new_session=True)
    assert leader.stdout is not None
    stray = int(leader.stdout.readline())
    return leader, stray


def test_down_stops_every_node_and_the_processes_that_left_its_group(tmp_path: Path) -> None:
    from clnrm.swarm.cluster import ClusterNode, ClusterState, cluster_down, cluster_status

    nodes = [_fake_node(tmp_path, name) for name in ("head", "w1")]
    state = ClusterState(
        root=str(tmp_path), address="127.0.0.1:1", client_address="ray://127.0.0.1:2",
        started_at=datetime.now(UTC),
        nodes=[ClusterNode(name=name, pid=leader.pid, temp_dir=str(tmp_path / name),
                           num_cpus=0, log=str(tmp_path / f"{name}.log"))
               for name, (leader, _) in zip(("head", "w1"), nodes, strict=True)])
    (tmp_path / "cluster.json").write_text(state.model_dump_json())
    status = cluster_status(tmp_path)
    assert status.up and [n.processes for n in status.nodes] == [2, 2]  # leader + stray

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert cluster_down(tmp_path) == 4  # two groups, two strays
        deadline = time.monotonic() + 10
        pids = [p for leader, stray in nodes for p in (leader.pid, stray)]
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if pid_alive(p)]
        assert pid_alive(bystander.pid)  # a process of no node is left alone
        assert not (tmp_path / "cluster.json").exists()
        assert json.loads(_invoke("status", "--dir", str(tmp_path), "-f", "json")[1]
                          )["up"] is False
        assert cluster_down(tmp_path) == 0  # idempotent
    finally:
        bystander.kill()
        bystander.wait()
        for leader, _ in nodes:
            leader.wait(timeout=10)


def test_errors_a_cluster_pushes_to_the_driver_go_to_stderr_not_into_json(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A dead raylet's "(raylet) Raylet is terminated" was printed on stdout, inside
    ``clnrm swarm run --format json``'s document."""
    import ray._private.worker as worker
    from clnrm.swarm.session import _cluster_messages_to_stderr

    _cluster_messages_to_stderr()
    _cluster_messages_to_stderr()  # idempotent: wrapped once
    worker.print_to_stdstream({"lines": ["Raylet is terminated"], "pid": "raylet",
                               "is_err": False}, ignore_prefix=False)
    out, err = capsys.readouterr()
    assert "Raylet is terminated" in err and "Raylet is terminated" not in out


def test_joining_a_cluster_uses_the_users_token_unless_the_mode_is_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clnrm.swarm.session import _token_auth_when_available

    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 32)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _token_auth_when_available()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice stands
    monkeypatch.delenv("RAY_AUTH_MODE")
    _token_auth_when_available()
    assert os.environ["RAY_AUTH_MODE"] == "token"
