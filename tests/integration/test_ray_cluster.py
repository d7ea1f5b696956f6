"""The swarm on a real multi-node Ray cluster: a head and two worker nodes on this machine.

``clnrm swarm cluster up`` (:func:`clnrm.swarm.cluster.local_cluster`) starts each node as
its own ``ray start`` with its own raylet, object store and resources; the swarm joins it
with ``--address`` and reaches the memory over HTTP, as on a real cluster.  Killing a
worker's raylet is a machine of the cluster dying: its actors are restarted on the
surviving worker and the run still records every result once.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]

SEED = 16

SLOW = """\
[meta]
name = "cluster_slow"
version = "1.0"

[services.web]
plugin = "generic_container"
image = "clnrm/busybox:latest"
command = ["sleep", "300"]

[[steps]]
name = "takes_a_while"
command = ["sh", "-c", "sleep 6; echo done"]
expected_output_regex = "done"
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and three workers for the module (each test kills one worker), always
    stopped; no process of any node may outlive it."""
    from clnrm.swarm.cluster import cluster_processes, local_cluster

    root = Path(tempfile.mkdtemp(prefix="clnrm-rc-", dir="/tmp"))  # short: Ray's sockets
    try:
        with local_cluster(root, workers=3) as state:
            yield state
        assert cluster_processes(state) == {}, "Ray processes outlived `cluster down`"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _live_workers(state: Any) -> list[Any]:
    from clnrm.swarm.cluster import cluster_status

    alive = {n.name for n in cluster_status(state.root).nodes if n.alive}
    return [n for n in state.nodes if n.name != "head" and n.name in alive]


def _node_of(pid: int, nodes: list[Any]) -> Any:
    from clnrm.swarm.cluster import node_processes

    return next(n for n in nodes if pid in node_processes(n))


def _wait_claim(store: Any, pattern: re.Pattern[str], timeout: float) -> tuple[str, Any]:
    """The first claim record whose id matches ``pattern``: (task id, record)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in store.records("blackboard"):
            if (m := pattern.fullmatch(record.id)) is not None:
                return m.group(1), record
        time.sleep(0.2)
    raise AssertionError(f"no claim matching {pattern.pattern} within {timeout} s")


def _restarted_on(board: Any, task_id: str, workers: list[Any], timeout: float) -> Any:
    """The worker node whose process holds the task's second claim (read while it runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claim = board.claim_of(task_id)
        if claim is not None and int(claim.metadata["attempt"]) >= 2:
            return _node_of(int(str(claim.metadata["incarnation"]).split("-")[0]), workers)
        time.sleep(0.2)
    raise AssertionError(f"{task_id} was not claimed again within {timeout} s")


def test_swarm_on_a_cluster_finishes_once_when_a_worker_node_dies(
        tmp_path: Path, cluster: Any, local_images: None, no_leaks: None) -> None:
    from clnrm.agents.blackboard import Blackboard
    from clnrm.memory import open_memory
    from clnrm.memory.chroma_server import chroma_server
    from clnrm.swarm.cluster import cluster_status, kill_raylet

    source = tmp_path / "slow.clnrm.toml"
    source.write_text(SLOW)
    workers = _live_workers(cluster)
    with chroma_server(tmp_path / "chroma") as url:
        env = {**os.environ, "RAY_ADDRESS": ""}
        env.pop("RAY_AUTH_MODE", None)  # the swarm finds the token as a user's shell would
        proc = subprocess.Popen(
            [sys.executable, "-m", "clnrm", "swarm", "run", str(source), "--address",
             cluster.address, "--memory", url, "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        try:
            with open_memory(url) as store:
                task_id, claim = _wait_claim(
                    store, re.compile(r"blackboard:(swarm-[^/]+/slow/orchestration):claim"),
                    timeout=120)
                actor_pid = int(str(claim.metadata["incarnation"]).split("-")[0])
                node = _node_of(actor_pid, workers)  # engine agents run on workers only
                time.sleep(random.Random(SEED).uniform(1.0, 3.0))  # inside the 6 s step
                board = Blackboard(store)
                had_result = board.outcome(task_id) is not None
                kill_raylet(node)
                survivor = _restarted_on(board, task_id, workers, timeout=120)
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

        assert not had_result, "the node died after the task was recorded: nothing was tested"
        assert proc.returncode == 0, err[-3000:]
        report = json.loads(out)  # a node's death is on stderr, never in the JSON
        run = next(o for o in report["outcomes"] if o["task_id"] == task_id)
        assert run["status"] == "done" and run["attempt"] == 2, run
        assert all(o["status"] == "done" for o in report["outcomes"]), report["outcomes"]
        with open_memory(url) as store:
            board = [r.id for r in store.records("blackboard")
                     if r.run_id == report["run_id"]]
            runs = store.query("cluster_slow", kind="run", k=20, where={"m.task": task_id})
    results = sorted(i for i in board if i.endswith(":result"))
    assert results == sorted(f"blackboard:{o['task_id']}:result" for o in report["outcomes"])
    assert len(runs) == 1, "the task was recorded as run more than once"
    assert survivor.name != node.name  # restarted on the node that is still there
    alive = {n.name: n.alive for n in cluster_status(cluster.root).nodes}
    assert alive == {"head": True, **{w.name: w is not node for w in workers}}


def _owners(client: Any) -> set[int]:
    """Pids owning a clnrm container now."""
    owners = set()
    for c in client.api.containers(filters={"label": "clnrm.run"}):
        owner = c["Labels"].get("clnrm.owner", "").split(":")
        if len(owner) > 1 and owner[1].isdigit():
            owners.add(int(owner[1]))
    return owners


def _unit_on_a_node(proc: subprocess.Popen[bytes], client: Any, workers: list[Any],
                    after_results: int, camp: Any, timeout: float = 180) -> Any:
    """The worker node running a campaign unit now: its containers' owner is one of the
    node's processes (the actors live under the nodes' raylets, not under the driver)."""
    from clnrm.swarm.cluster import node_processes

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"campaign ended before the kill:\n{camp.tail()}"
        if len(camp.recorded()) >= after_results:
            owners = _owners(client)
            for node in workers:
                if owners & set(node_processes(node)):
                    return node
        time.sleep(0.1)
    pytest.fail(f"no unit in flight on a worker node within {timeout:.0f} s:\n{camp.tail()}")


def test_campaign_across_the_cluster_survives_a_worker_node_killed_mid_unit(
        tmp_path: Path, cluster: Any, local_images: None, docker_client: Any,
        no_leaks: None) -> None:
    from clnrm.memory.chroma_server import chroma_server
    from clnrm.swarm.cluster import cluster_status, kill_raylet, node_processes

    from tests.integration.test_campaign_kills import BUDGET, SCENARIO, Campaign

    rng = random.Random(SEED + 1)
    workers = _live_workers(cluster)
    assert len(workers) >= 2, "the campaign needs a worker to survive the kill"
    scenario = tmp_path / "campaign_kill.clnrm.toml"
    scenario.write_text(SCENARIO)
    camp = Campaign(tmp_path, "cluster-kill")
    with chroma_server(tmp_path / "chroma") as url:
        proc = camp.spawn("start", str(scenario), "--budget", str(BUDGET), "--workers", "2",
                          "--id", camp.id, "--memory", url, "--address", cluster.address,
                          "--seed", "7")
        node = _unit_on_a_node(proc, docker_client, workers,
                               after_results=rng.randrange(BUDGET - 1), camp=camp)
        time.sleep(rng.uniform(0.2, 1.5))  # inside the unit's 3 s step
        assert _owners(docker_client) & set(node_processes(node)), "the unit ended first"
        kill_raylet(node)
        code = camp.finish(proc, timeout=300)
        status = camp.status()
        if status["state"] != "done":  # the driver gave up on the node: resume finishes it
            assert code != 0, camp.tail()
            code = camp.finish(camp.spawn("resume", camp.id), timeout=300)
            status = camp.status()
    assert code == 0, camp.tail()
    # every unit recorded once; a node runs at most both slots, so at most two are redone
    camp.assert_exact(status, redone_at_most=2)
    redone = sum(max(r["attempt"], r["attempts"]) - 1 for r in camp.recorded().values())
    assert redone >= 1, "no unit was interrupted: the kill tested nothing"
    alive = {n.name: n.alive for n in cluster_status(cluster.root).nodes}
    assert alive[node.name] is False and all(alive[w.name] for w in workers if w is not node)
