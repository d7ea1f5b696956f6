"""A chaos negative's weakness, run for real, becomes a campaign finding whose minimal
reproducer fails 10 out of 10 reruns of the real runner.

The negative is the cheapest one that has the demo negatives' shape (a steady-state probe,
a fault on the only instance, a service-level bar it cannot meet): a busybox web server
frozen for 1 s against a 200 ms downtime budget, plus a bystander service the reproducer
must drop.  About 5 s a run; the ten reruns go three at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clnrm.swarm.campaign.findings import finding_for, reproducer_path, write_reproducer
from clnrm.swarm.campaign.ledger import Ledger
from clnrm.swarm.campaign.model import CampaignSpec, UnitResult, UnitSpec

from clnrm import run
from clnrm.scenario import load_scenario

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("local_images", "no_leaks")]

WEAK_WEB = """\
# A chaos negative in busybox: one web server, no replica, frozen for 1 s: it cannot keep
# its downtime under 200 ms.  expect-fail: web_stays_up
[meta]
name = "campaign_weak_web"
version = "1.0"
timeout = "60s"

[services.web]
plugin = "generic_container"
image = "clnrm/busybox:latest"
command = ["sh", "-c", "mkdir /w && echo ok > /w/index.html && exec httpd -f -p 8080 -h /w"]
ports = [8080]
health_check = { cmd = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"], interval = "50ms" }

[services.bystander]
plugin = "generic_container"
image = "clnrm/busybox:latest"
command = ["sleep", "300"]

[[steps]]
name = "reads"
command = "wget -q -O - http://web:8080/"
expected_output_regex = "ok"

[chaos]
seed = 3
steady_state = ["web_up"]
recovery_timeout = "10s"
duration = "2s"

[[chaos.probes]]
name = "web_up"
http = { service = "web", port = 8080, path = "/", body_regex = "ok" }
every = "100ms"
timeout = "300ms"

[[chaos.faults]]
name = "freeze_web"
type = "pause"
target = "web"
trigger = "after_steady_state_300ms"
duration = "1s"

[[expect.resilience]]
name = "web_stays_up"
fault = "freeze_web"
probe = "web_up"
max_downtime_ms = 200
"""


def test_a_chaos_negatives_weakness_becomes_a_finding_whose_reproducer_fails_10_of_10(
        tmp_path: Path, docker_client: Any) -> None:
    source = tmp_path / "weak-web.clnrm.toml"
    source.write_text(WEAK_WEB)
    spec = CampaignSpec(id="c16", paths=[str(source)], files=[(str(source), WEAK_WEB)],
                        budget_units=1, memory=str(tmp_path / "memory"), seed=1,
                        created_at="2026-12-07T00:00:00Z")
    unit = UnitSpec(campaign_id="c16", index=0, id="c16/u00000", scenario=str(source),
                    kinds=["chaos"], fault=None, seed=1)

    test = run(source).tests[0]  # the unit's run of the file, as the chaos agent runs it
    assert test.outcome.value == "failed", test.message
    result = UnitResult(unit=unit.id, index=0, outcome="failed", duration_s=test.duration_s,
                        worker="w0")
    finding = finding_for(unit, result, test, load_scenario(source))
    assert finding is not None
    assert (finding.failure_class, finding.service, finding.fault, finding.expectation) == (
        "product_defect", "web", "pause", "resilience: web_stays_up: downtime")

    with Ledger.create(spec, home=tmp_path / "campaigns") as ledger:
        ledger.plan(unit)
        assert ledger.record(result, finding)
        where = reproducer_path(tmp_path / "campaigns", "c16", finding.key)
        done = write_reproducer(finding, WEAK_WEB, where, source=str(source), jobs=3)
        stored = ledger.update_finding(finding.key, reproducer=done.reproducer,
                                       verified_runs=done.verified_runs,
                                       verified_failures=done.verified_failures)

    assert (stored.verified_runs, stored.verified_failures) == (10, 10), stored
    assert stored.occurrences == 1 and stored.units == [unit.id]
    repro = load_scenario(where)
    assert set(repro.services) == {"web"}  # the bystander is not needed to show it
    assert repro.chaos is not None and [f.label for f in repro.chaos.faults] == ["freeze_web"]
    assert [e.name for e in repro.expect.resilience] == ["web_stays_up"]
