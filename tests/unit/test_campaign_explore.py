"""The campaign's explore/exploit choice of fault x target (clnrm.swarm.campaign.explore)."""

from __future__ import annotations

from collections import Counter

import pytest
from clnrm.swarm.campaign.explore import (
    Arm,
    Tally,
    arms,
    choose_fault,
    fault_name,
    scenario_with_fault,
    tallies,
)
from clnrm.swarm.campaign.model import FaultChoice, UnitResult, UnitSpec

from clnrm.errors import ScenarioError
from clnrm.scenario import loads_scenario

WEB = """\
[meta]
name = "web"

[services.web]
plugin = "generic_container"
image = "clnrm/busybox:latest"
command = ["httpd", "-f", "-p", "8080"]
ports = [8080]

[services.sidecar]
plugin = "generic_container"
image = "clnrm/python-otel:latest"
command = ["sleep", "300"]

[[steps]]
name = "reads"
command = "wget -q -O - http://web:8080/"

[chaos]
steady_state = ["up"]

[[chaos.probes]]
name = "up"
tcp = { service = "web", port = 8080 }
every = "100ms"

[[chaos.faults]]
name = "freeze_web"
type = "pause"
target = "web"
at = "1s"
duration = "1s"

[[expect.resilience]]
name = "web_answers"
fault = "freeze_web"
probe = "up"
max_downtime_ms = 200
"""


def result(i: int, fault: str, target: str, *, found: bool, outcome: str = "failed",
           **facts: str) -> UnitResult:
    return UnitResult(unit=f"c/u{i:05d}", index=i, outcome=outcome,  # type: ignore[arg-type]
                      finding=f"k{i}" if found else None, duration_s=1.0, worker="w0",
                      facts={"fault": fault, "fault_target": target, **facts})


def test_arms_fit_each_service_proxied_faults_need_a_port_clock_skew_a_python_image() -> None:
    sc = loads_scenario(WEB)
    by_target: dict[str, set[str]] = {}
    for arm in arms(sc):
        by_target.setdefault(arm.target, set()).add(arm.fault)
    assert {"latency", "reset_peer", "pause", "kill", "partition"} <= by_target["web"]
    assert "clock_skew" not in by_target["web"]  # busybox: no clock hook
    assert "clock_skew" in by_target["sidecar"] and "pause" in by_target["sidecar"]
    assert "latency" not in by_target["sidecar"]  # no port to put a proxy in front of
    latency = next(a for a in arms(sc) if a.fault == "latency")
    assert latency.params == {"latency_ms": 1000}  # its required parameter is given


def test_a_file_with_no_services_gets_no_fault() -> None:
    sc = loads_scenario('[meta]\nname = "x"\n[[steps]]\nname = "s"\ncommand = "true"\n')
    assert choose_fault(sc, [], 1) is None


def test_the_choice_is_a_function_of_seed_and_history() -> None:
    sc = loads_scenario(WEB)
    history = [result(1, "pause", "web", found=True), result(2, "kill", "web", found=False)]
    first = [choose_fault(sc, history, seed) for seed in range(20)]
    again = [choose_fault(sc, list(history), seed) for seed in range(20)]
    assert first == again
    assert len({(c.fault, c.target) for c in first if c}) > 3  # seeds do explore


def test_an_untried_arm_is_explored_and_says_so() -> None:
    choice = choose_fault(loads_scenario(WEB), [], 7)
    assert choice is not None and choice.explore
    assert "never tried" in choice.reason and choice.target in ("web", "sidecar")


def test_an_arm_that_keeps_finding_weaknesses_is_exploited() -> None:
    sc = loads_scenario(WEB)
    history = [result(i, "pause", "web", found=True) for i in range(8)]
    history += [result(100 + i, a.fault, a.target, found=False, outcome="passed")
                for i, a in enumerate(arms(sc)) if (a.fault, a.target) != ("pause", "web")
                for _ in range(3)]
    picks = Counter((c.fault, c.target, c.explore) for seed in range(40)
                    if (c := choose_fault(sc, history, seed)) is not None)
    assert picks[("pause", "web", False)] >= 30, picks
    exploit = choose_fault(sc, history, 0)
    assert exploit is not None and "8 weakness(es) in 8 tries" in exploit.reason


def test_tallies_skip_broken_units_and_credit_only_the_fault_that_failed() -> None:
    planned = [UnitSpec(campaign_id="c", index=3, id="c/u00003", scenario="a.toml",
                        kinds=["chaos"], seed=3,
                        fault=FaultChoice(fault="kill", target="web", explore=True, reason=""))]
    history = [
        result(1, "pause", "web", found=True),
        result(2, "pause", "web", found=True, outcome="error"),  # the run broke: no evidence
        UnitResult(unit="c/u00003", index=3, outcome="failed", finding="k3", duration_s=1,
                   worker="w"),  # no facts: its fault comes from the plan
        result(4, "latency", "web", found=True, finding_fault="pause", finding_service="web"),
    ]
    seen = tallies(history, planned)
    assert seen[("pause", "web")] == Tally(tries=1, weaknesses=1)
    assert seen[("kill", "web")] == Tally(tries=1, weaknesses=1)
    assert seen[("latency", "web")] == Tally(tries=1, weaknesses=0)  # the file's own fault


def test_the_explored_fault_replaces_the_files_own_and_is_judged_by_the_files_bar() -> None:
    choice = FaultChoice(fault="latency", target="web", params={"latency_ms": 800},
                         explore=True, reason="never tried")
    text = scenario_with_fault(WEB, choice, source="web.clnrm.toml")
    sc = loads_scenario(text)
    assert sc.chaos is not None and len(sc.chaos.faults) == 1  # freeze_web is not run too
    added = sc.chaos.faults[0]
    assert added.label == fault_name(choice) == "campaign_latency_web"
    assert (added.type, added.target, added.params) == ("latency", "web", {"latency_ms": 800})
    assert added.after == "steady_state" and added.at == 1.0 and added.duration == 2.0
    assert sc.chaos.steady_state == ["up"] and [p.name for p in sc.chaos.probes] == ["up"]
    assert [(e.name, e.fault, e.probe, e.max_downtime_ms) for e in sc.expect.resilience] == [
        ("web_answers@campaign_latency_web", "campaign_latency_web", "up", 200)]
    assert text.startswith("# web.clnrm.toml with its own faults (freeze_web, pause) replaced")


def test_scenario_with_fault_on_a_file_without_chaos_runs_it_during_the_steps() -> None:
    plain = WEB.split("[chaos]")[0]
    text = scenario_with_fault(plain, FaultChoice(fault="pause", target="web", explore=True,
                                                  reason="r"))
    assert text.startswith(plain)  # appended: the user's lines keep their numbers
    sc = loads_scenario(text)
    assert sc.chaos is not None and [f.label for f in sc.chaos.faults] == ["campaign_pause_web"]
    assert sc.chaos.faults[0].at is None and sc.expect.resilience == []


def test_a_bad_fault_parameter_is_a_located_error() -> None:
    choice = FaultChoice(fault="latency", target="web", params={"latency_ms": "soon"},
                         explore=True, reason="r")
    with pytest.raises(ScenarioError) as err:
        scenario_with_fault(WEB, choice, source="web.clnrm.toml")
    assert "latency" in str(err.value) and err.value.line is not None


def test_every_fault_type_the_explorer_offers_makes_a_file_that_loads() -> None:
    """Each repo scenario with each fault type it applies to (its first service for it)."""
    from tests.conftest import REPO

    tried = 0
    for path in sorted((REPO / "scenarios").rglob("*.clnrm.toml")):
        text = path.read_text()
        first: dict[str, Arm] = {}
        for arm in arms(loads_scenario(text, source=str(path))):
            first.setdefault(arm.fault, arm)
        for arm in first.values():
            choice = FaultChoice(fault=arm.fault, target=arm.target, params=dict(arm.params),
                                 explore=True, reason="r")
            scenario_with_fault(text, choice, source=str(path))  # loads what it returns
            tried += 1
    assert tried > 100
