"""``clnrm memory ...`` as a user runs it, in a subprocess, against a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clnrm.memory import BlackboardEntry, FailureRecord, open_memory

CLI = "from clnrm.memory.cli import memory_app; memory_app(prog_name='clnrm memory')"


def memory_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mem"
    with open_memory(root) as store:
        store.put([
            FailureRecord(agent="chaos", run_id="r1", test="checkout",
                          message="connection refused by postgres"),
            FailureRecord(agent="healer", run_id="r1", test="login", message="redis timeout",
                          created_at="2020-01-01T00:00:00Z"),  # type: ignore[arg-type]
            BlackboardEntry(agent="architect", topic="r1", action="post",
                            reason="postgres keeps refusing"),
        ])
    return root


def test_query_json_filters_by_kind_and_agent(store_dir: Path) -> None:
    result = memory_cli("query", "postgres refused", "--kind", "failure", "--agent", "chaos",
                        "-k", "5", "--memory", str(store_dir), "--format", "json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)["hits"]
    assert [h["record"]["test"] for h in hits] == ["checkout"]
    assert hits[0]["score"] > 0


def test_query_table_for_people(store_dir: Path) -> None:
    result = memory_cli("query", "postgres", "--memory", str(store_dir))
    assert result.returncode == 0, result.stderr
    assert "hit(s) for 'postgres'" in result.stdout
    assert "blackboard" in result.stdout and "failure" in result.stdout


def test_stats_json_and_table(store_dir: Path) -> None:
    data = json.loads(memory_cli("stats", "--memory", str(store_dir), "-f", "json").stdout)
    assert data["total"] == 3 and data["by_kind"]["failure"] == 2
    table = memory_cli("stats", "--memory", str(store_dir)).stdout
    assert "swarm/self_healing" in table and "3 records" in table


def test_memory_location_comes_from_the_environment(store_dir: Path) -> None:
    result = memory_cli("stats", "-f", "json", env={"CLNRM_MEMORY": str(store_dir)})
    assert json.loads(result.stdout)["total"] == 3


def test_export_then_import_into_another_store(store_dir: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    out = memory_cli("export", str(dump), "--memory", str(store_dir), "-f", "json")
    doc = json.loads(out.stdout)
    assert (doc["exported"], doc["file"], doc["command"]) == (3, str(dump), "memory export")
    assert len(dump.read_text().splitlines()) == 3
    other = tmp_path / "other"
    result = memory_cli("import", str(dump), "--memory", str(other))
    assert result.returncode == 0 and "imported 3 record(s)" in result.stdout


def test_import_with_a_bad_line_exits_2_naming_file_and_line(store_dir: Path,
                                                             tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = FailureRecord(agent="chaos", test="x", message="fine").model_dump_json()
    bad.write_text(f"{good}\n{{\"kind\": \"failure\", \"agent\": \"nobody\"}}\n")
    result = memory_cli("import", str(bad), "--memory", str(store_dir))
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr and "Traceback" not in result.stderr
    stats = json.loads(memory_cli("stats", "--memory", str(store_dir), "-f", "json").stdout)
    assert stats["total"] == 3  # nothing from the file was written


def test_forget_before_a_date(store_dir: Path) -> None:
    result = memory_cli("forget", "--before", "2021-01-01", "--memory", str(store_dir),
                        "-f", "json")
    assert json.loads(result.stdout)["forgotten"] == 1


def test_bad_date_and_bad_kind_exit_2_without_traceback(store_dir: Path) -> None:
    bad_date = memory_cli("forget", "--before", "last tuesday", "--memory", str(store_dir))
    assert bad_date.returncode == 2 and "not an ISO date" in bad_date.stderr
    bad_kind = memory_cli("query", "x", "--kind", "failures", "--memory", str(store_dir))
    assert bad_kind.returncode == 2 and "unknown kind 'failures'" in bad_kind.stderr
    assert "Traceback" not in bad_kind.stderr


def test_unreachable_server_is_one_clear_error() -> None:
    from clnrm.memory.chroma_server import free_port

    result = memory_cli("stats", "--memory", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "no Chroma server answers" in result.stderr and "Hint:" in result.stderr
