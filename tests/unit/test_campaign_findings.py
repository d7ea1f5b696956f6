"""A failed campaign unit becomes a deduplicated finding with a minimal reproducer
(clnrm.swarm.campaign.findings); the reruns are the runner's job, faked here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli
from clnrm.agents.base import TaskOutcome, TaskStatus
from clnrm.agents.negotiation import SwarmReport
from clnrm.memory import Hit
from clnrm.memory.records import Agent, FailureRecord
from clnrm.swarm.campaign.explore import scenario_with_fault
from clnrm.swarm.campaign.findings import (
    dedupe,
    finding_facts,
    finding_for,
    minimal_document,
    reproducer_path,
    reproducible,
    to_toml,
    write_reproducer,
)
from clnrm.swarm.campaign.model import (
    FaultChoice,
    Finding,
    UnitResult,
    UnitSpec,
    finding_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.results import Outcome, StepResult, TestResult, ValidationResult, ValidationStatus
from clnrm.scenario import load_scenario, loads_scenario
from tests.conftest import REPO

NEGATIVE = REPO / "scenarios" / "chaos" / "negative" / "db-pause-no-fallback.clnrm.toml"
DEMO = REPO / "scenarios" / "demo" / "demo.clnrm.toml"
SURVIVE = "reads_survive_a_frozen_db: success rate during the fault"


def unit(i: int, fault: FaultChoice | None = None) -> UnitSpec:
    return UnitSpec(campaign_id="c", index=i, id=f"c/u{i:05d}", scenario=str(NEGATIVE),
                    kinds=["chaos"], fault=fault, seed=i)


def unit_result(i: int, outcome: str = "failed") -> UnitResult:
    return UnitResult(unit=f"c/u{i:05d}", index=i, outcome=outcome,  # type: ignore[arg-type]
                      duration_s=3.0, worker="w0")


def failed_test(*expectations: tuple[str, str], steps: list[StepResult] | None = None,
                name: str = "chaos_db_pause_no_fallback") -> TestResult:
    validations = [ValidationResult(validator="resilience", expectation=e,
                                    status=ValidationStatus.FAIL, expected=">= 0.95", seen=seen,
                                    message=f"{e}: expected >= 0.95; saw {seen}")
                   for e, seen in expectations]
    return TestResult(name=name, file=str(NEGATIVE), outcome=Outcome.FAILED,
                      validations=validations, steps=steps or [],
                      message="; ".join(v.message for v in validations) or "a step failed")


def test_a_passed_or_broken_unit_has_no_finding() -> None:
    sc = load_scenario(NEGATIVE)
    passed = TestResult(name="t", file="f", outcome=Outcome.PASSED)
    assert finding_for(unit(1), unit_result(1, "passed"), passed, sc) is None
    assert finding_for(unit(1), unit_result(1, "error"), failed_test((SURVIVE, "0.5")), sc) is None
    assert finding_for(unit(1), unit_result(1), None, sc) is None


def test_a_failed_resilience_expectation_names_its_fault_its_service_and_its_class() -> None:
    sc = load_scenario(NEGATIVE)
    f = finding_for(unit(3), unit_result(3), failed_test((SURVIVE, "0.600 (18 of 30)")), sc)
    assert f is not None
    assert (f.failure_class, f.service, f.fault) == ("product_defect", "db", "pause")
    assert f.expectation == f"resilience: {SURVIVE}"
    assert f.key == finding_key("product_defect", "db", "pause", f"resilience: {SURVIVE}")
    assert (f.first_unit, f.units, f.occurrences) == ("c/u00003", ["c/u00003"], 1)
    assert "0.600" in f.message
    assert finding_facts(f) == {"finding_fault": "pause", "finding_service": "db"}


def test_the_same_weakness_with_other_figures_is_the_same_finding() -> None:
    sc = load_scenario(NEGATIVE)
    a = finding_for(unit(1), unit_result(1), failed_test((SURVIVE, "0.600 (18 of 30)")), sc)
    b = finding_for(unit(2), unit_result(2), failed_test((SURVIVE, "0.710 (22 of 31)")), sc)
    other = finding_for(unit(4), unit_result(4),
                        failed_test(("the_fallback_answered: emitted", "no span")), sc)
    assert a is not None and b is not None and other is not None
    assert a.key == b.key != other.key
    merged = dedupe([a, other, b])
    assert [(m.key, m.units, m.occurrences) for m in merged] == [
        (a.key, ["c/u00001", "c/u00002"], 2), (other.key, ["c/u00004"], 1)]


def test_the_explored_faults_failure_is_preferred_over_the_files_own() -> None:
    choice = FaultChoice(fault="kill", target="api", explore=True, reason="r")
    text = scenario_with_fault(NEGATIVE.read_text(), choice, source=str(NEGATIVE))
    sc = loads_scenario(text, source=str(NEGATIVE))
    test = failed_test((SURVIVE, "0.6"), (
        "reads_survive_a_frozen_db@campaign_kill_api: success rate during the fault", "0.3"))
    f = finding_for(unit(5, choice), unit_result(5), test, sc)
    assert f is not None and (f.service, f.fault) == ("api", "kill")
    assert "@campaign_kill_api" in f.expectation


def test_an_explored_fault_like_the_files_own_failing_the_same_bar_is_the_same_finding(
        ) -> None:
    """The negative freezes db itself; a campaign exploring pause on db re-declares the
    negative's bar as ``...@campaign_pause_db``: one weakness, one finding (it was two)."""
    own = finding_for(unit(1), unit_result(1), failed_test((SURVIVE, "0.6")),
                      load_scenario(NEGATIVE))
    choice = FaultChoice(fault="pause", target="db", explore=True, reason="r")
    sc = loads_scenario(scenario_with_fault(NEGATIVE.read_text(), choice, source=str(NEGATIVE)),
                        source=str(NEGATIVE))
    name, _, measure = SURVIVE.partition(": ")
    explored = finding_for(unit(2, choice), unit_result(2),
                           failed_test((f"{name}@campaign_pause_db: {measure}", "0.5")), sc)
    assert own is not None and explored is not None
    assert "@campaign_pause_db" in explored.expectation  # the verdict keeps its own name
    assert explored.key == own.key
    assert [(m.key, m.occurrences) for m in dedupe([own, explored])] == [(own.key, 2)]
    # another fault on the same service under the same bar stays apart
    kill = FaultChoice(fault="kill", target="db", explore=True, reason="r")
    sc = loads_scenario(scenario_with_fault(NEGATIVE.read_text(), kill, source=str(NEGATIVE)),
                        source=str(NEGATIVE))
    other = finding_for(unit(3, kill), unit_result(3),
                        failed_test((f"{name}@campaign_kill_db: {measure}", "0.5")), sc)
    assert other is not None and other.key != own.key


def test_a_failed_step_under_an_explored_fault_is_a_finding_of_that_fault() -> None:
    choice = FaultChoice(fault="pause", target="cache", explore=True, reason="r")
    sc = loads_scenario(scenario_with_fault(DEMO.read_text(), choice, source=str(DEMO)),
                        source=str(DEMO))
    step = StepResult(name="first_read_comes_from_db", command=["sh"], outcome=Outcome.FAILED,
                      exit_code=1, stdout='{"error": "cache timeout"}',
                      message="output did not match")
    test = failed_test(steps=[step], name="demo_system")
    f = finding_for(unit(6, choice), unit_result(6), test, sc)
    assert f is not None
    assert (f.service, f.fault, f.expectation) == ("cache", "pause",
                                                   "step first_read_comes_from_db")


def test_the_reproducer_keeps_only_the_failing_expectation_its_fault_and_needed_services(
        ) -> None:
    choice = FaultChoice(fault="pause", target="cache", explore=True, reason="r")
    text = scenario_with_fault(DEMO.read_text(), choice, source=str(DEMO))
    f = finding_key("product_defect", "cache", "pause", "step first_read_comes_from_db")
    finding = _finding(f, "cache", "pause", "step first_read_comes_from_db")
    doc = minimal_document(text, finding, source=str(DEMO))
    sc = loads_scenario(to_toml(doc))
    assert "worker" not in sc.services  # nothing the kept steps reach needs it
    assert set(sc.services) == {"gateway", "api", "db", "cache"}
    assert [s.name for s in sc.steps] == ["gateway_ready_through_the_stack",
                                          "first_read_comes_from_db"]
    assert sc.chaos is not None and [x.label for x in sc.chaos.faults] == ["campaign_pause_cache"]
    assert sc.expect.is_empty  # a step failure needs no span expectations

    res = _finding(finding_key("product_defect", "db", "pause", f"resilience: {SURVIVE}"),
                   "db", "pause", f"resilience: {SURVIVE}")
    sc = loads_scenario(to_toml(minimal_document(NEGATIVE.read_text(), res)))
    assert [e.name for e in sc.expect.resilience] == ["reads_survive_a_frozen_db"]
    assert sc.chaos is not None and [x.label for x in sc.chaos.faults] == ["freeze_db"]


def test_to_toml_round_trips_every_scenario_document_in_the_repo() -> None:
    paths = sorted((REPO / "scenarios").rglob("*.toml"))
    assert DEMO in paths and NEGATIVE in paths
    for path in paths:
        text = path.read_text()
        if "{{" in text or "{%" in text:
            continue  # a template: the reproducer cuts its rendered text
        doc = tomli.loads(text)
        assert tomli.loads(to_toml(doc)) == doc, path


def _finding(key: str, service: str, fault: str, expectation: str) -> Finding:
    return Finding(key=key, failure_class="product_defect", service=service, fault=fault,
                   expectation=expectation, message="m", first_unit="c/u00001",
                   units=["c/u00001"])


@pytest.mark.parametrize(("passing", "expected"), [(0, 10), (1, 9)])
def test_write_reproducer_counts_reruns_that_fail_with_the_same_finding(
        tmp_path: Path, passing: int, expected: int) -> None:
    sc = load_scenario(NEGATIVE)
    first = finding_for(unit(1), unit_result(1), failed_test((SURVIVE, "0.6")), sc)
    assert first is not None
    seen: list[tuple[Path, int]] = []

    def rerun(path: Path, runs: int) -> list[TestResult]:
        seen.append((path, runs))
        loaded = load_scenario(path)  # the runner gets a file that loads
        assert loaded.name.endswith(first.key[:8])
        tests = [failed_test((SURVIVE, f"0.{i}")) for i in range(runs - passing)]
        return tests + [TestResult(name="t", file=str(path), outcome=Outcome.PASSED)] * passing

    where = reproducer_path(tmp_path, "c", first.key)
    done = write_reproducer(first, NEGATIVE.read_text(), where, source=str(NEGATIVE),
                            rerun=rerun)
    assert seen == [(where, 10)]
    assert where == tmp_path / "c" / "findings" / f"{first.key}.clnrm.toml"
    assert (done.reproducer, done.verified_runs, done.verified_failures) == (
        str(where), 10, expected)
    assert reproducible(done) is (expected == 10)
    body = where.read_text()
    assert body.startswith(f"# Reproducer of campaign finding {first.key}")
    assert "the_fallback_answered" not in body  # the expectation that did not fail is gone


class FailureMemory:
    """The memory's ``query`` as the worker's store answers it: failures by run id."""

    def __init__(self, records: list[FailureRecord]) -> None:
        self.records = records
        self.asked: list[dict[str, object]] = []

    def query(self, text: str, *, kind: str | None = None, k: int = 10,
              where: dict[str, object] | None = None) -> list[Hit]:
        self.asked.append({"kind": kind, **(where or {})})
        return [Hit(record=r, score=1.0) for r in self.records
                if where is None or r.run_id == where.get("run_id")][:k]


def swarm_report(*outcomes: TaskOutcome) -> SwarmReport:
    return SwarmReport(run_id="c-u00007-abc", memory="m", outcomes=list(outcomes))


def chaos_failure(run: str, expectation: str, seen: str) -> FailureRecord:
    return FailureRecord(agent=Agent.chaos, run_id=run, test="chaos_db_pause_no_fallback",
                         message=f"chaos experiment chaos_db_pause_no_fallback: {expectation}: "
                                 f"expected >= 0.95; saw {seen}",
                         signature="chaos:resilience")


def test_the_workers_way_in_reads_the_failed_verdicts_back_from_memory() -> None:
    memory = FailureMemory([
        chaos_failure("r-chaos", SURVIVE, "0.600 (18 of 30 probe samples)"),
        chaos_failure("r-chaos", "the_fallback_answered: emitted fallback.stale_cache",
                      "no such span"),
        chaos_failure("r-other", SURVIVE, "a run of another unit")])
    report = swarm_report(
        TaskOutcome(task_id="s/db/orchestration", agent=Agent.orchestration,
                    status=TaskStatus.done, reason="ran", exit_code=0,
                    facts={"clnrm_run": "r-orch"}),
        TaskOutcome(task_id="s/db/chaos", agent=Agent.chaos, status=TaskStatus.failed,
                    reason="chaos ran ...", exit_code=1, facts={"clnrm_run": "r-chaos"}))
    text = NEGATIVE.read_text()
    found = [finding_for(unit(i), report, text=text, memory=memory) for i in (2, 3)]
    assert memory.asked == [{"kind": "failure", "run_id": "r-chaos"}] * 2  # failed runs only
    assert all(f is not None for f in found)
    first, second = found[0], found[1]
    assert first is not None and second is not None
    assert (first.failure_class, first.service, first.fault) == ("product_defect", "db", "pause")
    assert first.expectation == f"resilience: {SURVIVE}" and "0.600" in first.message
    # each of the two failed verdicts is found, by units of different seeds
    assert second.expectation == (
        "resilience: the_fallback_answered: emitted fallback.stale_cache")
    assert finding_for(unit(2), report, text=text, memory=memory) == first  # deterministic


def test_the_workers_way_in_without_records_still_finds_the_failure() -> None:
    report = swarm_report(TaskOutcome(
        task_id="s/db/orchestration", agent=Agent.orchestration, status=TaskStatus.failed,
        exit_code=1, reason="service 'db' exited with code 1 before it was ready",
        facts={"clnrm_run": "r1"}))
    f = finding_for(unit(1), report, text=NEGATIVE.read_text(), memory=FailureMemory([]))
    assert f is not None and f.expectation == "test: crashed_on_start" and f.service == "db"
    passed = swarm_report(TaskOutcome(task_id="s/db/orchestration", agent=Agent.orchestration,
                                      status=TaskStatus.done, exit_code=0, reason="ok"))
    assert finding_for(unit(1), passed, text=NEGATIVE.read_text(), memory=None) is None


def test_write_reproducer_into_the_findings_folder_names_the_file_by_key(
        tmp_path: Path) -> None:
    sc = load_scenario(NEGATIVE)
    first = finding_for(unit(1), unit_result(1), failed_test((SURVIVE, "0.6")), sc)
    assert first is not None
    done = write_reproducer(first, NEGATIVE.read_text(), tmp_path / "findings", runs=0)
    assert done.reproducer == str(tmp_path / "findings" / f"{first.key}.clnrm.toml")
    assert (done.verified_runs, done.verified_failures) == (0, 0) and not reproducible(done)
    assert load_scenario(done.reproducer).chaos is not None


def test_a_system_that_was_never_steady_is_no_faults_weakness() -> None:
    choice = FaultChoice(fault="kill", target="api", explore=True, reason="r")
    text = scenario_with_fault(NEGATIVE.read_text(), choice, source=str(NEGATIVE))
    test = TestResult(name="n", file="f", outcome=Outcome.FAILED, validations=[
        ValidationResult(validator="chaos", expectation="steady-state hypothesis before the "
                         "faults", status=ValidationStatus.FAIL, expected="every probe passes",
                         seen="read_items: ConnectionRefusedError")])
    f = finding_for(unit(8, choice), unit_result(8), test, loads_scenario(text))
    assert f is not None and f.fault == "-"  # the explored fault was never injected
    assert finding_facts(f)["finding_fault"] == "-"  # so the explorer does not credit it


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalar = st.one_of(_text, st.integers(-(2**63), 2**63 - 1), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False))
_value = st.recursive(
    st.one_of(_scalar, st.lists(_scalar, max_size=4)),
    lambda inner: st.one_of(st.dictionaries(_text, inner, max_size=4),
                            st.lists(st.dictionaries(_text, inner, max_size=3), max_size=3)),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_text, _value, max_size=5))
def test_to_toml_round_trips_any_document(doc: dict[str, object]) -> None:
    assert tomli.loads(to_toml(doc)) == doc


def test_a_rerun_whose_experiment_never_started_is_run_again_not_counted(
        tmp_path: Path) -> None:
    sc = load_scenario(NEGATIVE)
    first = finding_for(unit(1), unit_result(1), failed_test((SURVIVE, "0.6")), sc)
    assert first is not None
    never_steady = TestResult(name="t", file="f", outcome=Outcome.FAILED, validations=[
        ValidationResult(validator="chaos", expectation="steady-state hypothesis before the "
                         "faults", status=ValidationStatus.FAIL, seen="probe timed out")])
    not_injected = TestResult(name="t", file="f", outcome=Outcome.FAILED, validations=[
        ValidationResult(validator="chaos", expectation="fault 'freeze_db' #1 applied and "
                         "rolled back", status=ValidationStatus.FAIL, seen="unable to freeze"),
        ValidationResult(validator="resilience", expectation="reads_survive_a_frozen_db: fault "
                         "applied", status=ValidationStatus.FAIL, seen="never applied")])
    asked: list[int] = []

    def rerun(path: Path, runs: int) -> list[TestResult]:
        asked.append(runs)
        if len(asked) == 1:  # the loaded machine: 2 of 10 never reach the fault
            return [never_steady, not_injected] + [failed_test((SURVIVE, "0.5"))] * (runs - 2)
        return [failed_test((SURVIVE, "0.4"))] * runs

    done = write_reproducer(first, NEGATIVE.read_text(), tmp_path, rerun=rerun)
    assert asked == [10, 2]
    assert (done.verified_runs, done.verified_failures) == (10, 10) and reproducible(done)
    rows = json.loads((tmp_path / f"{first.key}.reruns.json").read_text())
    assert [r["counted"] for r in rows] == [False, False] + [True] * 10
    assert rows[0]["seen"] == ["chaos: steady-state hypothesis before the faults"]

    asked.clear()
    always = write_reproducer(first, NEGATIVE.read_text(), tmp_path,
                              rerun=lambda path, runs: [never_steady] * runs)
    assert (always.verified_runs, always.verified_failures) == (10, 0)  # 5 spares, no more
