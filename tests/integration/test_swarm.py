"""The swarm on real Ray, real Chroma and real Docker.

Each test starts its own embedded Ray (about 5 s) because ``clnrm swarm run``
does; they are kept few so the suite's added time stays near a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMOKE = """\
[meta]
name = "swarm_smoke"
version = "1.0"

[[steps]]
name = "greets"
command = ["sh", "-c", "echo hello"]
expected_output_regex = "hello"

[[steps]]
name = "exits_three"
command = ["sh", "-c", "exit 3"]

[chaos]
seed = 1

[performance]
iterations = 2
"""

SLOW = """\
[meta]
name = "swarm_slow"
version = "1.0"

[services.web]
plugin = "generic_container"
image = "clnrm/busybox:latest"
command = ["sleep", "300"]

[[steps]]
name = "takes_a_while"
command = ["sh", "-c", "sleep 4; echo done"]
expected_output_regex = "done"
"""


@pytest.fixture(scope="module")
def every_image(docker_client: Any) -> None:
    """scenarios/demo needs the demo images too (built by `make test`; cached by hash)."""
    from clnrm.images import build_images

    build_images(docker_client, None)


def leftovers(client: Any, *, runs: set[str] = frozenset(), owner_pid: int | None = None,
              ) -> list[str]:
    """Containers of these clnrm runs or of this owner process (scoped: other runs may share
    the engine)."""
    found = []
    for c in client.api.containers(all=True, filters={"label": "clnrm.run"}):
        labels = c["Labels"]
        owner = labels.get("clnrm.owner", "::").split(":")
        if labels["clnrm.run"] in runs or (owner_pid is not None and owner[1] == str(owner_pid)):
            found.append(c["Id"][:12])
    return found


def swarm_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ADDRESS": ""}  # never join a cluster the machine happens to name
    return subprocess.run([sys.executable, "-m", "clnrm.swarm", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def test_swarm_run_records_plan_claims_results_and_decisions_for_a_new_process(
        tmp_path: Path, every_image: None, docker_client: Any) -> None:
    smoke = tmp_path / "swarm_smoke.clnrm.toml"
    smoke.write_text(SMOKE)
    memory = tmp_path / "memory"
    demo = REPO / "scenarios" / "demo" / "demo.clnrm.toml"

    proc = swarm_cli("run", str(smoke), str(demo), "--memory", str(memory), "--format", "json")

    assert proc.returncode == 1, proc.stderr[-3000:]  # the smoke file fails one step
    report = json.loads(proc.stdout)
    run_id = report["run_id"]
    status = {o["task_id"].split("/", 1)[1]: o["status"] for o in report["outcomes"]}
    assert status == {"swarm_smoke/architecture": "done", "demo/architecture": "done",
                      "swarm_smoke/orchestration": "failed", "demo/orchestration": "done",
                      "swarm_smoke/performance": "failed", "swarm_smoke/chaos": "declined"}
    runs = {str(o["facts"]["clnrm_run"]) for o in report["outcomes"] if "clnrm_run" in o["facts"]}
    # orchestration ran both files; performance measured swarm_smoke (its steps fail)
    assert len(runs) == 3 and not leftovers(docker_client, runs=runs)
    reasons = " ".join(d["reason"] for d in report["decisions"])
    outcome_reasons = " ".join(o["reason"] for o in report["outcomes"])
    assert "it has no [[chaos.faults]] to inject" in outcome_reasons
    assert "measurement before perturbation" in reasons

    # Another process, long after the swarm stopped, explains the run from memory alone.
    query = f"""
import json, sys
from clnrm.memory import open_memory
with open_memory({str(memory)!r}) as m:
    hits = m.query("why did the swarm_smoke run fail", k=12)
    board = [r.id for r in m.records("blackboard") if r.run_id == {run_id!r}]
    print(json.dumps({{"hits": [[h.record.kind.value, h.record.id,
                               h.record.embedding_text()] for h in hits], "board": board}}))
"""
    found = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True,
                           timeout=120, cwd=REPO)
    assert found.returncode == 0, found.stderr[-2000:]
    answer = json.loads(found.stdout)
    kinds = {kind for kind, _, _ in answer["hits"]}
    assert {"failure", "run", "blackboard"} <= kinds
    assert any("exits_three" in text for _, _, text in answer["hits"])
    board = set(answer["board"])
    prefix = f"blackboard:{run_id}/swarm_smoke"
    for suffix in ("architecture:plan", "orchestration:claim", "orchestration:result",
                   "orchestration:assign", "chaos:bid:chaos", "chaos:result"):
        assert f"{prefix}/{suffix}" in board, suffix
    assert f"blackboard:{run_id}:summary" in board


def test_killed_agent_actor_is_restarted_and_finishes_its_task_exactly_once(
        tmp_path: Path, local_images: None, docker_client: Any) -> None:
    import ray
    from clnrm.agents.blackboard import Blackboard
    from clnrm.memory import open_memory
    from clnrm.swarm import SwarmOptions, run_swarm

    source = tmp_path / "slow.clnrm.toml"
    source.write_text(SLOW)
    memory = tmp_path / "memory"
    killed: dict[str, Any] = {}

    def kill_mid_task(run_id: str, session: Any, handles: list[Any]) -> None:
        orchestrator = next(h for h in handles if h.agent.value == "orchestration")
        killed["pid"] = orchestrator.info()["pid"]
        task_id = f"{run_id}/slow/orchestration"

        def watch() -> None:
            with open_memory(memory) as store:
                board = Blackboard(store)
                deadline = time.monotonic() + 60
                while board.claim_of(task_id) is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(2.0)  # inside the 4 s step: containers are up, no result yet
                killed["had_result"] = board.outcome(task_id) is not None
                ray.kill(orchestrator.actor, no_restart=False)
                killed["at"] = time.monotonic()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        killed["thread"] = thread

    report = run_swarm([(str(source), SLOW)],
                       SwarmOptions(memory=str(memory), run_id=None),
                       on_started=kill_mid_task)
    killed["thread"].join(timeout=5)

    assert killed.get("at") and killed["had_result"] is False
    run = next(o for o in report.outcomes if o.task_id.endswith("/orchestration"))
    assert run.status.value == "done", run.reason
    assert run.attempt == 2
    assert report.exit_code == 0
    with open_memory(memory) as store:
        runs = [h.record for h in store.query("swarm_slow", kind="run", k=20,
                                              where={"m.task": run.task_id})]
        assert len(runs) == 1, "the task was recorded as run more than once"
        board = {e.id: e for e in store.records("blackboard") if e.run_id == report.run_id}
    assert f"blackboard:{run.task_id}:resume:2" in board
    results = [i for i in board if i.startswith(f"blackboard:{run.task_id}:result")]
    assert results == [f"blackboard:{run.task_id}:result"]
    claim = board[f"blackboard:{run.task_id}:claim"]
    assert claim.metadata["attempt"] == 2
    assert not str(claim.metadata["incarnation"]).startswith(f"{killed['pid']}-")
    # the killed attempt's containers were reaped (its owner died), the finished one's removed
    assert not leftovers(docker_client, runs={str(run.facts["clnrm_run"])},
                         owner_pid=killed["pid"])
