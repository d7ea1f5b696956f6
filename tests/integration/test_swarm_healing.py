"""The swarm's healer on real Ray, real Chroma and real Docker (issue 14).

A scenario whose service crashes on its first start fails the orchestration run; the
architect plans a self-healing task because the file's ``[self_healing]`` is on (the
self_healing layer's rule); the healer claims it, reruns and heals the scenario, and
every try is in the shared memory, where another process's ``clnrm memory query`` finds
how it was fixed.
"""

from __future__ import annotations

import json
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
