"""One failed test healed or not: classify, rerun policy, remediate, rerun, learn.

:func:`heal_test` is the loop ``clnrm run --heal``, the bench and the healer agent
share.  It never calls a test healed unless a rerun *passed* with every expectation
unchanged (the change went through :func:`~clnrm.healing.environment.apply_change`);
``product_defect`` is never remediated, and each try's outcome goes to the chooser
and the memory ledger the moment it is known.

A try is a remediation at a magnitude (:attr:`Remediation.max_level`): with nothing
learned, a scalable remediation starts at its smallest step and a failed try offers the
next step up as a candidate beside the untried remediations; the chooser picks among
them.  What was learned short-cuts this: the fix that healed this very failure before
(same class, same scenario and test, same services' configuration) is tried first, at
the level that healed it; what failed on it before is not tried again (the heal goes on
where the last one stopped); otherwise a remediation starts at the level that healed
its class in this context.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from pydantic import BaseModel, Field

from clnrm.healing.classify import classify
from clnrm.healing.environment import HealingRuleError, apply_change
from clnrm.healing.model import (
    Classification,
    FailureClass,
    HealingReport,
    TriedRemediation,
)
from clnrm.healing.remedies import candidates, unknown_strategies

if TYPE_CHECKING:
    from clnrm.healing.bandit import RemediationLedger
    from clnrm.results import TestResult
    from clnrm.scenario.model import Scenario

log = structlog.get_logger("clnrm.healing")

RERUN_CLASSES: frozenset[FailureClass] = frozenset({
    FailureClass.product_defect, FailureClass.timeout, FailureClass.unknown})
"""Failures rerun unchanged before the verdict: the classes that would otherwise stay red,
so a flaky test is told apart from a defect (any pass on a rerun: ``flaky``)."""

WHY_NOT: dict[FailureClass, str] = {
    FailureClass.product_defect: "product defect: an expectation failed while the "
                                 "environment was healthy; the healer never hides a defect",
    FailureClass.timeout: "a step's own timeout is an expectation; the healer extends only "
                          "set-up limits",
    FailureClass.port_or_config_mismatch: "the test file names a wrong port or host: a patch "
                                          "is proposed (clnrm heal propose), never applied",
    FailureClass.unknown: "no failure class fits the evidence, so no remediation is safe",
}


class Chooser(Protocol):
    def suggest(self, diag: Classification, names: list[str]) -> str | None: ...

    def observe(self, diag: Classification, name: str, success: bool, cost_s: float, *,
                record_id: str | None = None, level: int = 1, signature: str | None = None,
                heal: str | None = None) -> None: ...

    def start_level(self, diag: Classification, name: str) -> int: ...

    def known_fix(self, diag: Classification, signature: str) -> tuple[str, int] | None: ...

    def known_misses(self, diag: Classification, signature: str) -> dict[str, int]: ...


class HealingPolicy(BaseModel):
    """``[self_healing]`` as the loop reads it (CLI flags override)."""

    max_attempts: int = Field(default=3, ge=0)
    strategies: list[str] = Field(default_factory=list)  # allow-list; empty: all
    backoff_s: float = Field(default=0.0, ge=0)  # wait before each remediated rerun
    reruns: int = Field(default=3, ge=0)  # the rerun policy for flakiness
    configs: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def of(cls, sc: Scenario, *, max_attempts: int | None = None,
           reruns: int | None = None) -> HealingPolicy:
        sh = sc.self_healing
        policy = cls() if sh is None else cls(max_attempts=sh.max_attempts,
                                              strategies=list(sh.strategies),
                                              backoff_s=float(sh.backoff or 0.0))
        if max_attempts is not None:
            policy.max_attempts = max_attempts
        if reruns is not None:
            policy.reruns = reruns
        return policy


RunOne = Callable[["Scenario"], "TestResult"]


def heal_test(sc: Scenario, first: TestResult, run_one: RunOne, chooser: Chooser, *,
              policy: HealingPolicy | None = None, ledger: RemediationLedger | None = None,
              rebuild: Callable[[list[str]], None] | None = None,
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> TestResult:
    """The test's final result, carrying its ``healing`` report (``first`` if not healed)."""
    policy = policy or HealingPolicy.of(sc)
    final = _heal(sc, first, run_one, chooser, policy=policy, ledger=ledger, rebuild=rebuild,
                  sleep=sleep, clock=clock)
    unknown = unknown_strategies(policy.strategies)
    if unknown:  # an allow-list naming nothing real must not silently heal nothing
        final.warnings.append(f"[self_healing] strategies names unknown remediation(s) "
                              f"{', '.join(unknown)}; `clnrm heal list` shows the catalog")
    return final


def _heal(sc: Scenario, first: TestResult, run_one: RunOne, chooser: Chooser, *,
          policy: HealingPolicy, ledger: RemediationLedger | None,
          rebuild: Callable[[list[str]], None] | None, sleep: Callable[[float], None],
          clock: Callable[[], float]) -> TestResult:
    diag = classify(first, sc)
    signature = failure_signature(sc, first)
    heal_id = uuid.uuid4().hex[:16]
    report = HealingReport(failure_class=diag.failure_class.value, healed=False,
                           evidence=diag.evidence_text, confidence=diag.confidence)
    if diag.failure_class in RERUN_CLASSES and policy.reruns:
        # a test the memory saw flake before is still rerun (no memory makes a rerun pass
        # sooner), but the verdict says it was known, and a rerun that never passes says
        # the known flakiness did not explain it this time
        flaked = chooser.known_fix(diag.model_copy(update={
            "failure_class": FailureClass.flaky}), signature) is not None
        memory_says = ("known flaky: the memory holds an unchanged rerun of this test that "
                       "passed before")
        reruns: list[bool] = []
        for _ in range(policy.reruns):
            started = clock()
            again = run_one(sc)
            reruns.append(again.outcome.value == "passed")
            if reruns[-1]:
                diag = classify(first, sc, reruns=reruns)
                if flaked:
                    diag = diag.model_copy(update={"evidence": [*diag.evidence, memory_says]})
                cost = clock() - started
                report = _report(diag, healed=True, attempts=len(reruns),
                                 remediation="retry_step",
                                 tried=[TriedRemediation(remediation="retry_step",
                                                         outcome="passed" if ok else "failed")
                                        for ok in reruns])
                _learn(chooser, ledger, diag, sc, first, "retry_step", True, cost,
                       len(reruns), "rerun unchanged passed", signature=signature,
                       heal=heal_id)
                again.warnings.append(f"flaky: failed first, passed on unchanged rerun "
                                      f"{len(reruns)} (confidence {diag.confidence:g})")
                again.healing = report
                return again
        diag = classify(first, sc, reruns=reruns)
        if flaked:
            diag = diag.model_copy(update={"evidence": [
                *diag.evidence, f"{memory_says}, yet {len(reruns)} reruns failed now"]})
        report = _report(diag, healed=False, attempts=0)
    if not diag.failure_class.healable:
        return _not_healable(sc, first, diag, report, policy)
    current = first
    tried: list[TriedRemediation] = []
    known = chooser.known_fix(diag, signature)
    # remediation -> highest level tried that failed: this heal's, and before it what
    # failed on this very failure last time (unless that rules out every candidate)
    failed_at: dict[str, int] = {} if known else dict(chooser.known_misses(diag, signature))
    usable = [r for r in candidates(diag, sc, allow=policy.strategies, configs=policy.configs)
              if not r.proposal]
    if all(failed_at.get(r.name, 0) >= r.max_level for r in usable):
        failed_at = {}
    done: set[str] = set()  # changes already tried (a level past a ceiling repeats one)
    for attempt in range(1, policy.max_attempts + 1):
        options: dict[str, Any] = {}
        for r in usable:
            level = (failed_at[r.name] + 1 if r.name in failed_at
                     else max(chooser.start_level(diag, r.name),
                              known[1] if known and known[0] == r.name else 1))
            while level <= r.max_level:
                remedy_at = r.at_level(level)
                change_at = remedy_at.change(diag, sc)
                if change_at.summary not in done:
                    options[r.name] = (remedy_at, change_at)
                    break
                level += 1
        # breadth first for a chooser that takes the first name: every remediation at its
        # start level before any escalation, then catalog order
        names = sorted(options, key=lambda n: options[n][0].level)
        if known is not None and known[0] in options and attempt == 1:
            name: str | None = known[0]  # this very failure was healed by it: go straight
        else:
            name = chooser.suggest(diag, names)
        if name is None:
            break
        remedy, change = options[name]
        done.add(change.summary)
        try:
            changed = apply_change(sc, change)
        except HealingRuleError as exc:  # a plugin overstepped: a failed try, said loudly
            tried.append(TriedRemediation(remediation=name, outcome="failed", detail=str(exc)))
            failed_at[name] = remedy.max_level  # never again in this heal
            continue
        if policy.backoff_s:
            sleep(policy.backoff_s * attempt)
        started = clock()
        if change.rebuild_images and rebuild is not None:
            rebuild(change.rebuild_images)
        current = run_one(changed)
        cost = clock() - started
        ok = current.outcome.value == "passed"
        tried.append(TriedRemediation(remediation=name, outcome="passed" if ok else "failed",
                                      detail=change.summary, cost_s=round(cost, 3),
                                      level=remedy.level))
        failed_at[name] = remedy.level
        _learn(chooser, ledger, diag, sc, first, name, ok, cost, attempt, change.summary,
               level=remedy.level, params=remedy.config.model_dump(), signature=signature,
               heal=heal_id)
        log.info("healing.try", test=first.name, failure_class=diag.failure_class.value,
                 remediation=name, magnitude=remedy.level, passed=ok,
                 attempt=attempt)  # not level=: structlog's own key
        if ok:
            report = _report(diag, healed=True, attempts=attempt, remediation=name, tried=tried)
            current.warnings.append(f"healed by {name} after {attempt} attempt(s): "
                                    f"{diag.failure_class.value} ({change.summary})")
            current.healing = report
            return current
    report = _report(diag, healed=False, attempts=len(tried), tried=tried,
                     why_not=("no remediation fits" if not tried else
                              f"{len(tried)} remediation(s) tried, none passed"))
    first.healing = report
    return first


def _not_healable(sc: Scenario, first: TestResult, diag: Classification,
                  report: HealingReport, policy: HealingPolicy) -> TestResult:
    tried: list[TriedRemediation] = []
    patch = None
    if diag.failure_class is FailureClass.port_or_config_mismatch:
        for remedy in candidates(diag, sc, allow=policy.strategies, configs=policy.configs):
            change = remedy.change(diag, sc)
            if change.patch:
                patch = change.patch
                tried.append(TriedRemediation(remediation=remedy.name, outcome="proposed",
                                              detail=change.summary))
                break
    first.healing = report.model_copy(update={
        "why_not": WHY_NOT.get(diag.failure_class, "not healable"), "tried": tried,
        "patch": patch})
    return first


def failure_signature(sc: Scenario, test: TestResult) -> str:
    """This failure's identity across runs: scenario, test and a digest of its services'
    configuration (an edited file is a new failure; what was learned on it is void)."""
    import hashlib
    import json

    services = {n: cfg.model_dump(mode="json") for n, cfg in sorted(sc.services.items())}
    digest = hashlib.sha256(json.dumps(services, sort_keys=True, default=str).encode())
    return f"{sc.name}/{test.name}@{digest.hexdigest()[:10]}"


def _report(diag: Classification, **fields: Any) -> HealingReport:
    return HealingReport(failure_class=diag.failure_class.value, evidence=diag.evidence_text,
                         confidence=diag.confidence, **fields)


def _learn(chooser: Chooser, ledger: RemediationLedger | None, diag: Classification,
           sc: Scenario, first: TestResult, name: str, ok: bool, cost: float, attempt: int,
           detail: str, *, level: int = 1, params: dict[str, Any] | None = None,
           signature: str | None = None, heal: str | None = None) -> None:
    record_id = None
    if ledger is not None:
        try:
            record_id = ledger.remember(diag, test=first.name, scenario=sc.source or sc.name,
                                        action=name, success=ok, cost_s=cost,
                                        attempt=attempt, detail=detail, level=level,
                                        params=params, signature=signature, heal=heal).id
        except Exception as exc:  # memory down: learn in-process, say so, keep healing
            log.warning("healing.memory_unavailable", error=str(exc))
    chooser.observe(diag, name, ok, cost, record_id=record_id, level=level,
                    signature=signature, heal=heal)


__all__ = ["RERUN_CLASSES", "WHY_NOT", "Chooser", "HealingPolicy", "heal_test"]
