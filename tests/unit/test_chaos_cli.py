"""`clnrm chaos list` and the refusals of `clnrm chaos run` (no engine needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clnrm.chaos.catalog import fault_types
from tests.conftest import REPO, run_cli

ISSUE_FAULTS = {
    # network, through the proxy, named as Toxiproxy names them
    "latency", "jitter", "loss", "bandwidth", "slow_close", "reset_peer", "timeout", "slicer",
    "partition", "dns_failure",
    # container
    "kill", "stop", "pause", "restart", "oom_kill",
    # resource
    "cpu_limit", "cpu_stress", "memory_limit", "memory_pressure", "disk_fill",
    "fd_exhaustion", "io_throttle",
    # application
    "http_error", "corrupt", "clock_skew", "signal",
}


def test_the_catalog_has_every_fault_the_issue_names_in_four_categories() -> None:
    types = fault_types()
    assert set(types) >= ISSUE_FAULTS, sorted(ISSUE_FAULTS - set(types))
    assert len(types) >= 20
    assert {cls.category for cls in types.values()} == {"network", "container", "resource",
                                                        "application"}
    for name, cls in types.items():
        assert cls.type == name and cls.summary and cls.Config.model_config.get("extra") == \
            "forbid", name


def test_chaos_list_json_is_the_catalog_for_tools() -> None:
    proc = run_cli("chaos", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["faults"]
    assert [e["type"] for e in entries] == list(fault_types())
    latency = next(e for e in entries if e["type"] == "latency")
    assert latency["category"] == "network" and latency["proxied"] is True
    assert "latency_ms" in latency["parameters"]


def test_chaos_list_filters_by_category_and_refuses_an_unknown_one() -> None:
    proc = run_cli("chaos", "list", "--category", "container", "--format", "json")
    assert {e["category"] for e in json.loads(proc.stdout)["faults"]} == {"container"}
    proc = run_cli("chaos", "list", "--category", "weather")
    assert proc.returncode == 2 and "no fault category 'weather'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_docs_list_every_fault_type() -> None:
    text = (REPO / "docs" / "chaos.md").read_text()
    table = re.search(r"<!-- catalog.*?-->(.*)<!-- /catalog -->", text, re.S)
    assert table is not None
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table.group(1), re.M))
    assert documented == set(fault_types()), set(fault_types()) ^ documented


def test_chaos_run_refuses_files_without_faults(tmp_path: Path) -> None:
    plain = tmp_path / "plain.clnrm.toml"
    plain.write_text('[meta]\nname = "plain"\n[[steps]]\nname = "s"\ncommand = ["true"]\n')
    proc = run_cli("chaos", "run", str(plain))
    assert proc.returncode == 2
    assert "not a chaos experiment (no [[chaos.faults]])" in proc.stderr
