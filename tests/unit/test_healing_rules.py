"""The healer's hard rules: remediations change only the environment, a product defect
is never healed, flakiness is reported; the loop and the bandit on a fake runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from clnrm.healing import (
    Classification,
    EnvironmentChange,
    FailureClass,
    FailureContext,
    HealingRuleError,
    ServiceChange,
    apply_change,
    candidates,
    check_environment_only,
    remediation_types,
)
from clnrm.healing.bandit import FixedOrder, RemediationBandit
from clnrm.healing.classify import classify
from clnrm.healing.environment import expectation_view
from clnrm.healing.heal import HealingPolicy, heal_test
from clnrm.healing.labelled import LabelledCase, labelled_set
from clnrm.results import Outcome, StepResult
from clnrm.results import TestResult as Result
from clnrm.scenario import load_scenario
from clnrm.scenario.model import Scenario

SET = Path(__file__).resolve().parents[1] / "healing"
EVERY_CLASS = list(FailureClass)


def _diag(cls: FailureClass, sc: Scenario, service: str | None = None, **extra: object
          ) -> Classification:
    svc = service or next(iter(sc.services), None)
    return Classification(failure_class=cls, context=FailureContext(service=svc),
                          evidence=["image 'clnrm/busybox:latest' is not present"],
                          **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", labelled_set(SET), ids=lambda c: Path(c.path).stem)
def test_no_remediation_changes_anything_but_the_environment(case: LabelledCase) -> None:
    sc = load_scenario(Path(case.path))
    before = expectation_view(sc)
    for cls in EVERY_CLASS:
        for remedy in candidates(_diag(cls, sc, dependency="db", port=8080, seen_port=8081),
                                 sc):
            change = remedy.change(_diag(cls, sc, dependency="db", port=8080,
                                         seen_port=8081), sc)
            after = apply_change(sc, change)
            assert expectation_view(after) == before, remedy.name
            assert after.steps == sc.steps and after.expect == sc.expect
            assert after.timeout == sc.timeout


def test_a_change_to_an_expectation_is_refused() -> None:
    sc = load_scenario(SET / "product_defect_1.clnrm.toml")
    weakened = sc.model_copy(deep=True)
    weakened.steps[0].expected_exit_code = 4
    with pytest.raises(HealingRuleError, match="steps"):
        check_environment_only(sc, weakened)
    longer = load_scenario(SET / "timeout_1.clnrm.toml")
    relaxed = longer.model_copy(deep=True)
    relaxed.steps[0].timeout = 60.0
    with pytest.raises(HealingRuleError):
        check_environment_only(longer, relaxed)


def test_environment_change_cannot_name_an_expectation() -> None:
    with pytest.raises(ValueError):
        ServiceChange(expected_exit_code=4)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        EnvironmentChange(summary="x", steps=[])  # type: ignore[call-arg]


def test_product_defect_gets_no_remediation_even_if_a_plugin_claims_it() -> None:
    sc = load_scenario(SET / "product_defect_4.clnrm.toml")
    for cls in remediation_types().values():
        assert FailureClass.product_defect not in cls.classes
    assert candidates(_diag(FailureClass.product_defect, sc), sc) == []


def _failed(sc: Scenario) -> Result:
    return Result(name=sc.name, file=sc.source or "", outcome=Outcome.FAILED, steps=[
        StepResult(name="s", command=["x"], outcome=Outcome.FAILED, exit_code=4,
                   message="exit code 4, expected 0")])


def test_product_defect_stays_red_and_says_why() -> None:
    sc = load_scenario(SET / "product_defect_1.clnrm.toml")
    runs: list[Scenario] = []

    def run_one(s: Scenario) -> Result:
        runs.append(s)
        return _failed(s)

    final = heal_test(sc, _failed(sc), run_one, RemediationBandit(0),
                      policy=HealingPolicy(reruns=2))
    assert final.outcome is Outcome.FAILED and final.healing is not None
    assert final.healing.failure_class == "product_defect" and not final.healing.healed
    assert "never hides a defect" in (final.healing.why_not or "")
    assert all(expectation_view(s) == expectation_view(sc) for s in runs)
    assert len(runs) == 2  # the rerun policy only, no remediation


def test_flaky_is_healed_by_a_rerun_and_reported() -> None:
    sc = load_scenario(SET / "flaky_1.clnrm.toml")
    answers = iter([False, True])

    def run_one(s: Scenario) -> Result:
        ok = next(answers)
        return Result(name=s.name, file="", outcome=Outcome.PASSED) if ok else _failed(s)

    final = heal_test(sc, _failed(sc), run_one, RemediationBandit(0))
    assert final.healing is not None and final.healing.healed
    assert final.healing.failure_class == "flaky" and final.healing.remediation == "retry_step"
    assert any(w.startswith("flaky:") for w in final.warnings)
    assert [t.outcome for t in final.healing.tried] == ["failed", "passed"]


def _readiness_failure(sc: Scenario) -> Result:
    return Result(name=sc.name, file="", outcome=Outcome.ERROR, message=(
        "service 'svc' exited with code 3 before it was ready (waiting for: x)"))


def _restart_fixes(s: Scenario) -> Result:
    """Fake runner: passes only when svc restarts on failure (as the real container does)."""
    if s.services["svc"].restart:
        return Result(name=s.name, file="", outcome=Outcome.PASSED)
    return _readiness_failure(s)


def test_second_heal_of_the_same_class_takes_fewer_attempts() -> None:
    sc = load_scenario(SET / "crashed_on_start_1.clnrm.toml")
    assert classify(_readiness_failure(sc), sc).failure_class is FailureClass.crashed_on_start
    fixed = heal_test(sc, _readiness_failure(sc), _restart_fixes, FixedOrder())
    assert fixed.healing is not None and fixed.healing.attempts == 2  # retry_step first
    bandit = RemediationBandit(7)
    first = [heal_test(sc, _readiness_failure(sc), _restart_fixes, bandit).healing
             for _ in range(1)]
    later = [heal_test(sc, _readiness_failure(sc), _restart_fixes, bandit).healing
             for _ in range(5)]
    assert all(r is not None and r.healed and r.remediation == "restart_service"
               for r in first + later)
    assert sum(r.attempts for r in later if r) / 5 <= 1.2
    assert bandit.stats()["crashed_on_start"]["restart_service"]["successes"] == 6


def test_bandit_is_deterministic_and_checkpointable(tmp_path: Path) -> None:
    sc = load_scenario(SET / "crashed_on_start_1.clnrm.toml")
    diag = _diag(FailureClass.crashed_on_start, sc)
    names = ["retry_step", "restart_service", "raise_memory_limit"]
    a, b = RemediationBandit(3), RemediationBandit(3)
    assert [a.suggest(diag, names) for _ in range(20)] == [b.suggest(diag, names)
                                                           for _ in range(20)]
    a.observe(diag, "restart_service", True, 1.0, record_id="r1")
    a.observe(diag, "restart_service", True, 1.0, record_id="r1")  # folded once
    a.save(str(tmp_path / "bandit.json"))
    c = RemediationBandit.load(str(tmp_path / "bandit.json"))
    assert c.stats() == a.stats()
    assert c.stats()["crashed_on_start"]["restart_service"]["tries"] == 1
    assert [a.suggest(diag, names) for _ in range(5)] == [c.suggest(diag, names)
                                                          for _ in range(5)]


def test_an_untried_remediation_is_not_presumed_free() -> None:
    """An arm never tried costs what a try of its class costs: presumed at 0 s it beat a
    remediation that had just healed (30 s a try) about half the time."""
    sc = load_scenario(SET / "crashed_on_start_1.clnrm.toml")
    diag = _diag(FailureClass.crashed_on_start, sc)
    bandit = RemediationBandit(11)
    for i in range(3):
        bandit.observe(diag, "restart_service", True, 30.0, record_id=f"r{i}")
    picks = [bandit.suggest(diag, ["restart_service", "raise_memory_limit"])
             for _ in range(200)]
    assert picks.count("restart_service") >= 140  # Beta(4,1) vs Beta(1,1): 80 % expected


def test_the_heal_json_shape() -> None:
    sc = load_scenario(SET / "crashed_on_start_1.clnrm.toml")
    final = heal_test(sc, _readiness_failure(sc), _restart_fixes, FixedOrder())
    doc = final.model_dump(mode="json")["healing"]
    assert {"failure_class", "healed", "attempts", "remediation", "tried",
            "evidence"} <= set(doc)
    assert doc["tried"][0] == {"remediation": "retry_step", "outcome": "failed",
                               "detail": doc["tried"][0]["detail"],
                               "cost_s": doc["tried"][0]["cost_s"], "level": 1}
    assert final.healing is not None
    assert final.healing.human().startswith("healed by restart_service after 2 attempt(s)")


def test_port_mismatch_is_proposed_as_a_patch_not_applied() -> None:
    sc = load_scenario(SET / "port_mismatch_1.clnrm.toml")
    text_before = Path(sc.source or "").read_text()
    first = Result(name=sc.name, file="", outcome=Outcome.ERROR, message=(
        "service 'web' not ready: tcp probe failed: x did not hold within 2 s (the probe "
        "timeout); last seen: 1.2.3.4:8080: Connection refused; container status: running"))
    final = heal_test(sc, first, lambda s: pytest.fail("no rerun"), FixedOrder())  # type: ignore[arg-type,return-value]
    assert final.healing is not None and not final.healing.healed
    assert final.healing.patch and "+readiness = { tcp = 8081" in final.healing.patch
    assert Path(sc.source or "").read_text() == text_before


def _oom_first(sc: Scenario) -> Result:
    return Result(name=sc.name, file=sc.source or "", outcome=Outcome.ERROR, message=(
        "service 'svc' exited with code 137 before it was ready (OOMKilled)"))


def _needs_memory(mib: int) -> Callable[[Scenario], Result]:
    """A fake runner: the scenario passes once svc's memory limit reaches ``mib``."""
    def run_one(sc: Scenario) -> Result:
        ok = (sc.services["svc"].memory or 0) >= mib << 20
        return Result(name=sc.name, file=sc.source or "",
                      outcome=Outcome.PASSED if ok else Outcome.ERROR,
                      message="" if ok else "service 'svc' exited with code 137 (OOMKilled)")
    return run_one


def test_with_nothing_learned_a_limit_is_escalated_one_doubling_a_try() -> None:
    sc = load_scenario(SET / "oom_killed_1.clnrm.toml")  # memory = 16m
    final = heal_test(sc, _oom_first(sc), _needs_memory(100), FixedOrder(),
                      policy=HealingPolicy(max_attempts=6, strategies=["raise_memory_limit"]))
    report = final.healing
    assert report is not None and report.healed and report.attempts == 3
    assert [(t.level, t.detail.split(": ", 1)[1]) for t in report.tried] == [
        (1, "16 MiB -> 32 MiB"), (2, "16 MiB -> 64 MiB"), (3, "16 MiB -> 128 MiB")]


def test_a_limit_never_exceeds_its_ceiling_and_an_escalation_that_changes_nothing_is_skipped(
        ) -> None:
    sc = load_scenario(SET / "oom_killed_1.clnrm.toml")
    policy = HealingPolicy(max_attempts=6, strategies=["raise_memory_limit"],
                           configs={"raise_memory_limit": {"ceiling": 40.0}})
    final = heal_test(sc, _oom_first(sc), _needs_memory(100), FixedOrder(), policy=policy)
    report = final.healing
    assert report is not None and not report.healed
    assert [t.detail.split(": ", 1)[1] for t in report.tried] == [
        "16 MiB -> 32 MiB", "16 MiB -> 40 MiB"]  # level 3 would be 40 MiB again


def test_the_same_failure_again_goes_straight_to_the_learned_fix_and_magnitude() -> None:
    """Pass 1 escalates; a new bandit rebuilt from pass 1's state (what another process
    rebuilds from the memory) tries the remediation and level that healed, first."""
    sc = load_scenario(SET / "oom_killed_1.clnrm.toml")
    bandit = RemediationBandit(5)
    policy = HealingPolicy(max_attempts=6)
    first = heal_test(sc, _oom_first(sc), _needs_memory(100), bandit, policy=policy).healing
    assert first is not None and first.healed and first.attempts >= 3
    state = bandit.state()
    state.seed, state.draws = 99, 0
    again = RemediationBandit.from_state(state)
    second = heal_test(sc, _oom_first(sc), _needs_memory(100), again, policy=policy).healing
    assert second is not None and second.healed and second.attempts == 1
    assert second.tried[0].level == 3 and second.remediation == "raise_memory_limit"


def test_a_too_small_dose_is_not_counted_against_the_remediation_that_then_healed() -> None:
    sc = load_scenario(SET / "oom_killed_1.clnrm.toml")
    diag = _diag(FailureClass.oom_killed, sc)
    bandit = RemediationBandit(0)
    bandit.observe(diag, "raise_memory_limit", False, 2.0, record_id="a", level=1, heal="h1")
    bandit.observe(diag, "raise_memory_limit", False, 2.0, record_id="b", level=2, heal="h1")
    bandit.observe(diag, "raise_memory_limit", True, 2.0, record_id="c", level=3, heal="h1",
                   signature="t/t")
    arm = bandit.stats()["oom_killed"]["raise_memory_limit"]
    assert (arm["successes"], arm["tries"], arm["level"]) == (1, 1, 3)
    assert bandit.start_level(diag, "raise_memory_limit") == 3
    assert bandit.known_fix(diag, "t/t") == ("raise_memory_limit", 3)
    # the same tries folded from memory in another order (records are not ordered)
    other = RemediationBandit(0)
    for rid, ok, level in (("c", True, 3), ("a", False, 1), ("b", False, 2)):
        other.observe(diag, "raise_memory_limit", ok, 2.0, record_id=rid, level=level,
                      heal="h1")
    assert other.stats() == bandit.stats()
    # a failure in another heal still counts
    bandit.observe(diag, "raise_memory_limit", False, 2.0, record_id="d", level=3, heal="h2")
    assert bandit.stats()["oom_killed"]["raise_memory_limit"]["tries"] == 2


def test_a_test_that_flaked_before_is_known_flaky_from_memory() -> None:
    sc = load_scenario(SET / "flaky_1.clnrm.toml")
    first = Result(name=sc.name, file=sc.source or "", outcome=Outcome.FAILED, steps=[
        StepResult(name="coin", command=["sh"], outcome=Outcome.FAILED, exit_code=1,
                   stdout="draw 200",
                   message="exit code 1, expected 0")])
    runs = iter([False, True, False, True])

    def coin(s: Scenario) -> Result:
        ok = next(runs)
        return Result(name=s.name, file="", outcome=Outcome.PASSED if ok else Outcome.FAILED)

    bandit = RemediationBandit(0)
    once = heal_test(sc, first, coin, bandit).healing
    again = heal_test(sc, first, coin, bandit).healing
    assert once is not None and again is not None
    assert once.failure_class == again.failure_class == "flaky" and once.healed
    assert "known flaky" not in once.evidence and "known flaky" in again.evidence
    assert once.attempts == again.attempts == 2  # the reruns are the rerun policy's


def test_a_second_run_of_an_unhealed_failure_goes_on_where_the_first_stopped() -> None:
    sc = load_scenario(SET / "oom_killed_1.clnrm.toml")
    bandit = RemediationBandit(2)
    policy = HealingPolicy(max_attempts=2, strategies=["raise_memory_limit"])
    first = heal_test(sc, _oom_first(sc), _needs_memory(100), bandit, policy=policy).healing
    assert first is not None and not first.healed and first.attempts == 2
    after_first = bandit.state()
    second = heal_test(sc, _oom_first(sc), _needs_memory(100), bandit, policy=policy).healing
    assert second is not None and second.healed and second.attempts == 1
    assert second.tried[0].level == 3
    # an edited file is another failure: what failed on the old one does not apply
    edited = sc.model_copy(deep=True)
    edited.services["svc"].memory = 17 << 20
    third = heal_test(edited, _oom_first(edited), _needs_memory(100),
                      RemediationBandit.from_state(after_first), policy=policy).healing
    assert third is not None and third.tried[0].level == 1
