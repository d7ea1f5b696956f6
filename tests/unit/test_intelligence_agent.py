"""The intelligence agent (issue 15): mines the orchestration run's spans into pattern
records in a real memory store, and declines on the record when there is nothing to mine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clnrm.agents import Blackboard, Layer, Task, TaskOutcome, TaskStatus
from clnrm.agents.base import RunSettings
from clnrm.agents.intelligence import IntelligenceAgent
from clnrm.memory import Agent, MemoryStore, PatternRecord, open_memory

from clnrm.intelligence.synthetic import shop_corpus

SCENARIO = """[meta]
name = "shop"

[services.api]
image = "clnrm/busybox:latest"

[[steps]]
name = "call"
command = ["true"]

[intelligence]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryStore]:
    with open_memory(tmp_path_factory.mktemp("memory")) as opened:
        yield opened


def tasks(run_id: str, text: str = SCENARIO) -> tuple[Task, Task]:
    common = {"run_id": run_id, "scenario": "shop", "source": "shop.clnrm.toml", "text": text}
    return (Task(id=f"{run_id}/shop/orchestration", layer=Layer.orchestration, **common),
            Task(id=f"{run_id}/shop/intelligence", layer=Layer.intelligence, **common))


def orchestrated(board: Blackboard, task: Task, clnrm_run: str | None) -> None:
    facts = {"clnrm_run": clnrm_run} if clnrm_run else {}
    board.finish(task, TaskOutcome(task_id=task.id, agent=Agent.orchestration,
                                   status=TaskStatus.done, exit_code=0, reason="ran",
                                   facts=facts))


def test_the_agent_stores_patterns_and_the_generated_test(store: MemoryStore,
                                                          tmp_path: Path) -> None:
    board = Blackboard(store)
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (run_dir / "shop.spans.jsonl").write_text(
        "".join(json.dumps(s.to_dict()) + "\n" for s in shop_corpus(1)), encoding="utf-8")
    orchestration, task = tasks("swarm-intel-1")
    orchestrated(board, orchestration, "run-1")
    agent = IntelligenceAgent(board, settings=RunSettings(artifacts_dir=str(tmp_path)))
    outcome = agent.act(task)
    assert outcome.status is TaskStatus.done, outcome.reason
    assert isinstance(outcome.facts["patterns"], int) and outcome.facts["patterns"] > 20
    patterns = [r for r in store.records("pattern") if isinstance(r, PatternRecord)
                and r.metadata.get("swarm_run") == "swarm-intel-1"]
    calls = {r.name for r in patterns if r.metadata.get("pattern") == "call"}
    assert "shop: frontend GET /users/{id}: GET users calls GET /users/:id" in calls
    tests = [r for r in patterns if r.metadata.get("pattern") == "generated_test"]
    assert len(tests) == 4 and all("[[steps]]" in r.description for r in tests)
    assert all(0 < r.confidence <= 1 and r.support > 0 for r in patterns)


def test_the_agent_declines_when_the_run_kept_no_spans(store: MemoryStore) -> None:
    board = Blackboard(store)
    orchestration, task = tasks("swarm-intel-2")
    orchestrated(board, orchestration, "run-2")
    outcome = IntelligenceAgent(board).act(task)  # no artifacts folder
    assert outcome.status is TaskStatus.declined
    assert outcome.reason.endswith("kept no spans (run the swarm with an artifacts folder)")


def test_the_agent_declines_when_the_file_switches_it_off(store: MemoryStore) -> None:
    board = Blackboard(store)
    orchestration, task = tasks("swarm-intel-3", SCENARIO + "enabled = false\n")
    orchestrated(board, orchestration, "run-3")
    outcome = IntelligenceAgent(board).act(task)
    assert outcome.status is TaskStatus.declined
    assert outcome.reason.endswith("its [intelligence] table is switched off")


def test_the_files_generation_keys_reach_the_miner(store: MemoryStore, tmp_path: Path) -> None:
    board = Blackboard(store)
    (tmp_path / "run-4").mkdir()
    (tmp_path / "run-4" / "shop.spans.jsonl").write_text(
        "".join(json.dumps(s.to_dict()) + "\n" for s in shop_corpus(1)), encoding="utf-8")
    text = SCENARIO + "confidence_threshold = 0.5\n[intelligence.generation]\n" \
        "min_pattern_frequency = 0.9\n"
    orchestration, task = tasks("swarm-intel-4", text)
    orchestrated(board, orchestration, "run-4")
    agent = IntelligenceAgent(board, settings=RunSettings(artifacts_dir=str(tmp_path)))
    assert agent.act(task).status is TaskStatus.done
    names = {r.name for r in store.records("pattern") if isinstance(r, PatternRecord)
             and r.metadata.get("swarm_run") == "swarm-intel-4"}
    assert "shop: frontend GET /users/{id}: GET /users/:id calls redis GET" in names
    assert not any("calls SELECT users" in n for n in names)  # 16/60 < 0.9
