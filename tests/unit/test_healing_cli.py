"""``clnrm heal list|stats`` as a user runs them, checked against their committed schemas;
``[self_healing]`` no longer warns "has no effect"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clnrm.output_schemas import file_name
from tests.conftest import REPO, run_cli

jsonschema = pytest.importorskip("jsonschema")


def _check(command: str, stdout: str) -> dict:  # type: ignore[type-arg]
    doc = json.loads(stdout)
    schema = json.loads((REPO / "docs" / "schemas" / file_name(command)).read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc  # type: ignore[no-any-return]


def test_heal_list_shows_the_catalog_as_json_and_text() -> None:
    done = run_cli("heal", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    names = {r["name"] for r in _check("heal list", done.stdout)["remediations"]}
    assert {"extend_readiness", "start_order", "restart_service", "raise_memory_limit",
            "raise_cpu_limit", "retry_step", "extend_timeout", "rebuild_image", "fix_port",
            "free_port"} <= names
    text = run_cli("heal", "list")
    assert "fix_port (proposes a patch)" in text.stdout


def test_heal_stats_on_an_empty_memory(tmp_path: Path) -> None:
    done = run_cli("heal", "stats", "--memory", str(tmp_path / "m"), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert _check("heal stats", done.stdout)["arms"] == []
    text = run_cli("heal", "stats", "--memory", str(tmp_path / "m"))
    assert "nothing learned yet" in text.stdout


def test_self_healing_table_is_no_longer_reported_as_inert(tmp_path: Path) -> None:
    from clnrm.scenario import load_scenario

    path = tmp_path / "t.clnrm.toml"
    path.write_text('[meta]\nname = "t"\n[self_healing]\nmax_attempts = 2\n'
                    'strategies = ["restart_service"]\n[[steps]]\nname = "s"\n'
                    'command = ["true"]\n', encoding="utf-8")
    sc = load_scenario(path)
    assert not [w for w in sc.warnings if "self_healing" in (w.key_path or "")]
    from clnrm.healing.heal import HealingPolicy

    policy = HealingPolicy.of(sc, max_attempts=None)
    assert (policy.max_attempts, policy.strategies) == (2, ["restart_service"])


def test_run_heal_refuses_a_bad_max_attempts() -> None:
    done = run_cli("run", "--heal", "--max-attempts", "-1", "x.clnrm.toml")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
