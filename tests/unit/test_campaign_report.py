"""``campaign report ID --html FILE`` over a ledger built here (clnrm.swarm.campaign.report)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from clnrm.memory.records import Agent, BaselineRecord, RemediationOutcome, RemediationRecord
from clnrm.swarm.campaign.ledger import Ledger
from clnrm.swarm.campaign.model import (
    CampaignSpec,
    CampaignState,
    FaultChoice,
    Finding,
    UnitResult,
    UnitSpec,
    finding_key,
)
from clnrm.swarm.campaign.report import fault_service_map, trends, write_html

from tests.conftest import REPO

NEGATIVE = REPO / "scenarios" / "chaos" / "negative" / "db-pause-no-fallback.clnrm.toml"
EXPECTATION = "resilience: reads_survive_a_frozen_db: success rate during the fault"
KEY = finding_key("product_defect", "db", "pause", EXPECTATION)


def build_ledger(home: Path) -> Ledger:
    """12 units: pause on db finds the weakness in every other unit, latency on the api
    never; unit durations step from ~10 s to ~20 s at unit 6; one unit broke."""
    spec = CampaignSpec(id="rep", paths=[str(NEGATIVE)],
                        files=[(str(NEGATIVE), NEGATIVE.read_text())], budget_units=12,
                        memory=str(home / "memory"), seed=5, created_at="2026-12-07T06:00:00Z")
    ledger = Ledger.create(spec, home=home)
    for i in range(12):
        arm = ("pause", "db") if i % 2 == 0 else ("latency", "api")
        choice = FaultChoice(fault=arm[0], target=arm[1], explore=i < 2, reason="r")
        unit = ledger.plan(UnitSpec(campaign_id="rep", index=i, id=f"rep/u{i:05d}",
                                    scenario=str(NEGATIVE), kinds=["chaos"], fault=choice,
                                    seed=i))
        outcome = "error" if i == 11 else "failed" if arm == ("pause", "db") else "passed"
        result = UnitResult(unit=unit.id, index=i, outcome=outcome, duration_s=(
            10.0 if i < 6 else 20.0) + (i % 3) * 0.1, worker="w0",
            facts={"clnrm_run": f"run{i}", "p95_ms": 40.0 + i % 2})
        finding = None
        if outcome == "failed":
            finding = Finding(key=KEY, failure_class="product_defect", service="db",
                              fault="pause", expectation=EXPECTATION,
                              message="expected >= 0.95; saw 0.600 <script>alert(1)</script>",
                              first_unit=unit.id, units=[unit.id])
        ledger.record(result, finding)
    ledger.update_finding(KEY, reproducer=str(home / "rep" / "findings" / f"{KEY}.clnrm.toml"),
                          verified_runs=10, verified_failures=10)
    ledger.set_state(CampaignState.done, "budget spent")
    return ledger


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_report_shows_findings_remediations_trends_and_the_fault_service_map(
        tmp_path: Path) -> None:
    remedies = [
        RemediationRecord(agent=Agent.self_healing, failure_id="f1", action="raise_timeout",
                          outcome=RemediationOutcome.succeeded, run_id="run2",
                          detail="timeout 2s -> 6s"),
        RemediationRecord(agent=Agent.self_healing, failure_id="f2", action="raise_timeout",
                          outcome=RemediationOutcome.failed, run_id="run4"),
        RemediationRecord(agent=Agent.self_healing, failure_id="f9", action="elsewhere_only",
                          outcome=RemediationOutcome.succeeded, run_id="not-this-campaign"),
    ]
    baselines = [BaselineRecord(agent=Agent.performance, scenario="chaos_db_pause_no_fallback",
                                metric="p95_ms", value=30.0 + i, run_id=f"run{i}")
                 for i in range(3)]
    with build_ledger(tmp_path) as ledger:
        out = write_html("rep", tmp_path / "out" / "report.html", ledger=ledger,
                         remediations=remedies, baselines=baselines)
    html = out.read_text()

    assert "<title>clnrm campaign rep</title>" in html and "done" in html
    assert "11 of 12" not in html and "12 of 12 recorded" in html
    # findings: one deduplicated finding seen in 6 units, reproducer verified 10/10
    assert f'id="finding-{KEY}"' in html and "6&times;" in html
    assert "fails 10/10" in html and f"{KEY}.clnrm.toml" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    # remediations: only this campaign's runs, worked/failed counted per action
    assert "raise_timeout" in html and "timeout 2s -&gt; 6s" in html
    assert "elsewhere_only" not in html
    # trend: the duration step at unit 6 is a change point, drawn as a dashed line
    assert "db-pause-no-fallback.clnrm.toml · unit duration (s)" in html
    assert re.search(r'class="cp"', html) and "at rep/u00006" in html
    assert "chaos_db_pause_no_fallback · p95_ms (memory)" in html
    # fault x service map: pause on db 6 of 6; latency on the api 0 of 5 (unit 11 broke)
    assert "6/6 &#9873;6" in html and "0/5" in html
    # self-contained: no script, nothing fetched
    parser = _Tags()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t in ("script", "img", "iframe", "object")]
    assert not [a for _, a in parser.tags if any(
        (v or "").startswith(("http:", "https:", "//")) for k, v in a.items()
        if k in ("src", "href"))]
    csp = next(a["content"] for t, a in parser.tags if a.get("http-equiv") ==
               "Content-Security-Policy")
    assert csp is not None and "default-src 'none'" in csp


def test_the_map_counts_tries_and_weaknesses_per_fault_and_service(tmp_path: Path) -> None:
    with build_ledger(tmp_path) as ledger:
        faults, services, cells = fault_service_map(ledger.results(), ledger.planned(),
                                                    ledger.findings())
    assert (faults, services) == (["latency", "pause"], ["api", "db"])
    assert (cells[("pause", "db")].tries, cells[("pause", "db")].weaknesses) == (6, 6)
    assert (cells[("latency", "api")].tries, cells[("latency", "api")].weaknesses) == (5, 0)
    assert cells[("pause", "db")].findings == 6  # the finding's occurrences
    assert cells[("pause", "api")].tries == 0 and cells[("pause", "api")].shade == "#f6f8fa"


def test_a_flat_series_has_no_change_point(tmp_path: Path) -> None:
    with build_ledger(tmp_path) as ledger:
        found = {t.title: t for t in trends(ledger.planned(), ledger.results(), seed=5)}
    p95 = found["db-pause-no-fallback.clnrm.toml · p95_ms"]
    assert p95.values[:4] == [40.0, 41.0, 40.0, 41.0] and p95.change_points == []
    duration = found["db-pause-no-fallback.clnrm.toml · unit duration (s)"]
    assert [cp.index for cp in duration.change_points] == [6]


def test_an_unreachable_memory_is_a_note_not_a_failed_report(tmp_path: Path) -> None:
    not_a_store = tmp_path / "a-file-not-a-folder"
    not_a_store.write_text("")
    with build_ledger(tmp_path) as ledger:
        out = write_html("rep", tmp_path / "r.html", ledger=ledger, memory=str(not_a_store))
    html = out.read_text()
    assert "memory not read (MemoryStoreError" in html and "a-file-not-a-folder" in html
    assert f'id="finding-{KEY}"' in html and "No remediation recorded." in html


def test_the_cli_hands_over_its_open_ledger_and_no_store_is_created(tmp_path: Path) -> None:
    with build_ledger(tmp_path) as ledger:
        out = write_html(ledger, tmp_path / "cli.html")  # `campaign report ID --html FILE`
    assert f'id="finding-{KEY}"' in out.read_text()
    assert not (tmp_path / "memory").exists()  # the campaign's memory was never made
