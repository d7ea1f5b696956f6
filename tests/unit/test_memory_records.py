"""Records: ids, namespaces and the JSONL format, without any store."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clnrm.memory import (
    Agent,
    BlackboardEntry,
    FailureRecord,
    Kind,
    RecordImportError,
    RemediationOutcome,
    RemediationRecord,
    RunRecord,
    parse_record,
)
from clnrm.memory._common import read_jsonl, write_jsonl
from clnrm.memory.records import flat_metadata
from pydantic import ValidationError

from clnrm import memory


def failure(**over: object) -> FailureRecord:
    fields: dict[str, object] = {"agent": "chaos", "run_id": "r1", "test": "t1",
                                 "message": "connection refused"}
    return FailureRecord(**{**fields, **over})  # type: ignore[arg-type]


def test_id_is_deterministic_from_natural_key_so_retries_are_idempotent() -> None:
    first, retry = failure(), failure(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert first.id == retry.id
    assert first.id.startswith("failure:")
    assert failure(message="other").id != first.id


def test_explicit_id_gets_kind_prefix_so_kinds_never_collide() -> None:
    assert RunRecord(id="x", agent="architect", run_id="r", scenario="s", status="ok").id == "run:x"
    assert failure(id="failure:keep").id == "failure:keep"


@pytest.mark.parametrize("given,expected", [
    ("chaos", Agent.chaos), ("swarm/chaos", Agent.chaos), ("healer", Agent.self_healing),
    ("orchestrator", Agent.orchestration), ("self-healing", Agent.self_healing),
])
def test_agent_accepts_namespace_and_agent_names(given: str, expected: Agent) -> None:
    record = failure(agent=given)
    assert record.agent is expected
    assert record.namespace == f"swarm/{expected.value}"


def test_unknown_agent_is_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match="expected one of: architect"):
        failure(agent="janitor")


def test_discriminated_union_round_trips_every_kind_through_json() -> None:
    records = [
        failure(),
        RemediationRecord(agent="healer", failure_id=failure().id, action="restart redis",
                          outcome=RemediationOutcome.succeeded),
        BlackboardEntry(agent="orchestrator", topic="r1", action="bid", reason="idle", bid=0.4),
    ]
    for record in records:
        again = parse_record(record.model_dump_json())
        assert type(again) is type(record)
        assert again == record


def test_flat_metadata_is_scalar_only_with_prefixed_extras() -> None:
    flat = flat_metadata(failure(metadata={"attempt": 2}, service=None))
    assert flat["kind"] == "failure" and flat["namespace"] == "swarm/chaos"
    assert flat["m.attempt"] == 2
    assert "service" not in flat  # None cannot be stored in Chroma metadata
    assert all(isinstance(v, str | int | float | bool) for v in flat.values())


def test_naive_created_at_is_taken_as_utc() -> None:
    assert failure(created_at=datetime(2024, 5, 1)).created_at.tzinfo is UTC


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    records = [failure(test=f"t{i}") for i in range(3)]
    assert write_jsonl(records, path) == 3
    assert read_jsonl(path) == records


def test_bad_import_line_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(failure().model_dump_json() + "\n\n"
                    + '{"kind": "failure", "agent": "chaos", "test": "x"}\n')
    with pytest.raises(RecordImportError) as info:
        read_jsonl(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: failure.message: Field required")


def test_unknown_kind_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind": "gossip", "agent": "chaos"}\n')
    with pytest.raises(RecordImportError, match=r"bad.jsonl:1: .*gossip"):
        read_jsonl(path)


def test_package_exports_are_sorted_and_complete() -> None:
    assert memory.__all__ == sorted(memory.__all__)
    assert {"open_memory", "MemoryStore", "Hit", "Kind", "Agent"} <= set(memory.__all__)
    assert all(hasattr(memory, name) for name in memory.__all__)


def test_importing_memory_and_its_cli_loads_no_chroma_sklearn_or_numpy() -> None:
    code = ("import sys, clnrm.memory, clnrm.memory.cli; "
            "print(sorted(m for m in ('chromadb', 'sklearn', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_kind_enum_matches_record_models() -> None:
    assert {k.value for k in Kind} == {"run", "test_result", "failure", "remediation",
                                       "baseline", "pattern", "blackboard"}
