"""The swarm's intelligence agent on real Ray, real Chroma and real Docker (issue 15).

`clnrm swarm run` keeps each run's artifacts (default ``.clnrm/runs`` under the working
directory, as `clnrm run` does), so the intelligence agent finds the orchestration run's
spans, stores what the demo system always does as pattern records, and a later
`clnrm memory query` in another process finds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NO_CLUSTER, REPO, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]

DEMO = REPO / "scenarios" / "demo" / "demo.clnrm.toml"



def test_swarm_keeps_artifacts_and_the_intelligence_agent_stores_queryable_patterns(
        tmp_path: Path, local_images: None, docker_client: Any, no_leaks: None) -> None:
    source = tmp_path / "demo.clnrm.toml"
    source.write_text(DEMO.read_text(encoding="utf-8") + "\n[intelligence]\n",
                      encoding="utf-8")
    memory = tmp_path / "memory"

    proc = run_cli("swarm", "run", str(source), "--memory", str(memory), "--format", "json",
                   cwd=tmp_path, env=NO_CLUSTER, timeout=300)  # no --artifacts: the default folder

    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    assert proc.returncode == 0, (proc.stderr[-3000:], [
        (o.get("task_id"), o.get("status"), o.get("reason")) for o in report.get("outcomes", [])])
    outcomes = {o["task_id"].split("/", 1)[1]: o for o in report["outcomes"]}
    run = str(outcomes["demo/orchestration"]["facts"]["clnrm_run"])
    assert list((tmp_path / ".clnrm" / "runs" / run).glob("*.spans.jsonl"))
    intel = outcomes["demo/intelligence"]
    assert intel["status"] == "done", intel["reason"]
    assert int(intel["facts"]["patterns"]) > 0 and int(intel["facts"]["assertions"]) > 0

    found = run_cli("memory", "query", "which calls does the api always make", "--memory",
                    str(memory), "--agent", "intelligence", "-k", "20", "--format", "json",
                    cwd=tmp_path, timeout=120, env=NO_CLUSTER)
    assert found.returncode == 0, found.stderr[-2000:]
    hits = json.dumps(json.loads(found.stdout))
    assert "always calls" in hits  # call patterns, with support and confidence
    assert "GET /items" in hits and "seen in" in hits
    assert "demo_system: generated test" in hits or "generated_test" in hits
