"""The swarm's healer on real Ray, real Chroma and real Docker (issue 14).

A scenario whose service crashes on its first start fails the orchestration run; the
architect plans a self-healing task because the file's ``[self_healing]`` is on (the
self_healing layer's rule); the healer claims it, reruns and heals the scenario, and
every try is in the shared memory, where another process's ``clnrm memory query`` finds
how it was fixed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NO_CLUSTER, REPO, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]

CRASH = REPO / "tests" / "healing" / "crashed_on_start_2.clnrm.toml"


def test_the_healer_heals_a_failed_swarm_run_and_remembers_how(
        tmp_path: Path, local_images: None, docker_client: Any, no_leaks: None) -> None:
    source = tmp_path / "crash.clnrm.toml"
    source.write_text(CRASH.read_text(encoding="utf-8") + "\n[self_healing]\nmax_attempts = 3\n",
                      encoding="utf-8")
    memory = tmp_path / "memory"

    proc = run_cli("swarm", "run", str(source), "--memory", str(memory), "--format", "json",
                   cwd=tmp_path, env=NO_CLUSTER, timeout=420)

    # the orchestration run errored; the healer healed it, so, as `clnrm run --heal`, the
    # swarm passes (a product defect is never healed, so it would stay red)
    assert proc.returncode == 0 and proc.stdout, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["error"] is None
    by_layer = {o["task_id"].rsplit("/", 1)[1]: o for o in report["outcomes"]}
    assert by_layer["orchestration"]["status"] == "failed"  # the crash, unhealed
    healer = by_layer["self_healing"]
    assert healer["status"] == "done", healer["reason"]
    facts = healer["facts"]
    assert facts["failure_class"] == "crashed_on_start" and facts["healed"] is True
    assert facts["remediation"] == "restart_service"
    assert "healed by restart_service" in healer["reason"]

    found = run_cli("memory", "query", "how was the crash on start of svc fixed", "--memory",
                    str(memory), "-k", "20", "--format", "json", cwd=tmp_path, timeout=120,
                    env=NO_CLUSTER)
    assert found.returncode == 0, found.stderr[-2000:]
    hits = json.dumps(json.loads(found.stdout))
    assert "was fixed by restart_service" in hits


def test_a_healer_actor_killed_mid_heal_loses_no_learned_outcome(
        tmp_path: Path, local_images: None, docker_client: Any, no_leaks: None) -> None:
    """SIGKILL (ray.kill) of the healer's actor right after its first try is in the memory,
    while the next try runs: Ray restarts the actor, the task resumes and heals, and every
    try of both incarnations is in the memory exactly once (the killed one's first try
    included, so the resumed heal starts from it)."""
    import ray
    from clnrm.memory import open_memory
    from clnrm.swarm import SwarmOptions, run_swarm

    from clnrm.healing.bandit import RemediationLedger

    text = CRASH.read_text(encoding="utf-8") + "\n[self_healing]\nmax_attempts = 4\n"
    source = tmp_path / "crash.clnrm.toml"
    source.write_text(text, encoding="utf-8")
    memory = tmp_path / "memory"
    killed: dict[str, Any] = {}

    def kill_after_first_try(run_id: str, session: Any, handles: list[Any]) -> None:
        healer = next(h for h in handles if h.agent.value == "self_healing")
        killed["pid"] = healer.info()["pid"]

        def watch() -> None:
            with open_memory(memory) as store:
                ledger = RemediationLedger(store)
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    mine = [r for r in ledger.records() if r.run_id == run_id]
                    if mine:
                        killed["before"] = [r.id for r in mine]
                        ray.kill(healer.actor, no_restart=False)
                        return
                    time.sleep(0.2)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        killed["thread"] = thread

    report = run_swarm([(str(source), text)], SwarmOptions(memory=str(memory), run_id=None),
                       on_started=kill_after_first_try)
    killed["thread"].join(timeout=10)

    assert killed.get("before"), "the healer never recorded a try: nothing was killed"
    healer = next(o for o in report.outcomes if o.task_id.endswith("/self_healing"))
    assert healer.attempt == 2, healer.reason  # the killed incarnation's task was resumed
    assert healer.status.value == "done" and healer.facts["healed"] is True, healer.reason
    with open_memory(memory) as store:
        records = [r for r in RemediationLedger(store).records()
                   if r.run_id == report.run_id]
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids))
    assert set(killed["before"]) <= set(ids)  # what the killed healer learned is kept
    tries = [(r.metadata["heal"], r.metadata["attempt"]) for r in records]
    assert len(tries) == len(set(tries)), "a try was recorded twice"
    assert len({heal for heal, _ in tries}) == 2  # the killed heal and the resumed one
    assert any(r.outcome.value == "succeeded" and r.action == "restart_service"
               for r in records)
