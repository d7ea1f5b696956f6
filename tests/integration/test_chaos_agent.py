"""The chaos agent runs a real experiment and leaves it in memory, findable by meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clnrm.agents import Layer, Task, TaskStatus
from clnrm.agents.blackboard import Blackboard
from clnrm.agents.chaos import ChaosAgent
from clnrm.memory import open_memory

from tests.conftest import REPO, clnrm_resources

pytestmark = pytest.mark.usefixtures("local_images")


def test_the_chaos_agent_runs_the_experiment_and_remembers_what_it_proved(
        tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLNRM_STATE_DIR", str(tmp_path / "state"))
    source = REPO / "scenarios" / "chaos" / "negative" / "db-pause-no-fallback.clnrm.toml"
    task = Task(id="swarm-c/db-pause-no-fallback/chaos", run_id="swarm-c", layer=Layer.chaos,
                scenario="db-pause-no-fallback", source=str(source), text=source.read_text())
    with open_memory(tmp_path / "memory") as store:
        agent = ChaosAgent(Blackboard(store), name="chaos@swarm-c")
        outcome = agent.act(task)
        assert outcome.status is TaskStatus.failed and outcome.exit_code == 1
        assert outcome.facts["faults_applied"] == 1
        assert "freeze_db#1 (pause on db)" in outcome.reason
        run_id = str(outcome.facts["clnrm_run"])
        assert clnrm_resources(docker_client, run_id)["containers"] == set()
        hits = store.query("did reads survive when the database was frozen", kind="failure",
                           k=5)
        texts = " ".join(h.record.message for h in hits)  # type: ignore[attr-defined]
        assert "reads_survive_a_frozen_db" in texts and "success rate" in texts
