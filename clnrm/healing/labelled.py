"""The labelled broken set (``tests/healing/``) and one healing pass over it.

Each file starts with ``# expected: <class>`` and ``# healable: yes|no``; a pass runs
every file through the Runner, heals it with the given chooser exactly as
``clnrm run --heal`` does, and returns per-file outcomes the bench turns into heal
rate, false heals, mean attempts and the classifier's macro-F1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from clnrm.healing.classify import macro_f1

if TYPE_CHECKING:
    from clnrm.healing.bandit import RemediationLedger
    from clnrm.healing.heal import Chooser
    from clnrm.results import TestResult
    from clnrm.scenario.model import Scenario

_LABEL = re.compile(r"^#\s*(expected|healable):\s*(\S+)", re.M)
FIRST_FAILURE_TRIES = 6
"""A flaky file may pass its first run; it is run until it fails, at most this often."""


class LabelledCase(BaseModel):
    path: str
    expected: str
    healable: bool


class CaseOutcome(BaseModel):
    path: str
    expected: str
    predicted: str
    healable: bool
    healed: bool
    attempts: int
    remediation: str | None = None
    seconds: float = 0.0
    broken: bool = True  # False: never failed (a flaky file that kept passing)


class PassSummary(BaseModel):
    cases: list[CaseOutcome]

    @property
    def broken(self) -> list[CaseOutcome]:
        return [c for c in self.cases if c.broken]

    @property
    def macro_f1(self) -> float:
        return macro_f1([(c.expected, c.predicted) for c in self.broken])

    @property
    def heal_rate(self) -> float:
        pool = [c for c in self.broken if c.healable]
        return sum(c.healed for c in pool) / len(pool) if pool else 0.0

    @property
    def false_heals(self) -> int:
        return sum(1 for c in self.broken if c.expected == "product_defect" and c.healed)

    @property
    def mean_attempts(self) -> float:
        """Mean remediation attempts over the healable cases this pass healed, flaky ones
        aside: their attempts are the rerun policy's unchanged reruns, not a chooser's
        picks, so no memory can lower them (see :attr:`mean_flaky_reruns`)."""
        healed = [c.attempts for c in self.broken
                  if c.healable and c.healed and c.expected != "flaky"]
        return sum(healed) / len(healed) if healed else 0.0

    @property
    def mean_flaky_reruns(self) -> float:
        reruns = [c.attempts for c in self.broken if c.expected == "flaky" and c.healed]
        return sum(reruns) / len(reruns) if reruns else 0.0


def labelled_set(folder: Path) -> list[LabelledCase]:
    cases = []
    for path in sorted(folder.glob("*.clnrm.toml")):
        labels = dict(_LABEL.findall(path.read_text(encoding="utf-8")[:400]))
        if "expected" in labels:
            cases.append(LabelledCase(path=str(path), expected=labels["expected"],
                                      healable=labels.get("healable", "no") == "yes"))
    return cases


def run_pass(cases: list[LabelledCase], chooser: Chooser, *,
             run_one: Callable[[Scenario], TestResult],
             ledger: RemediationLedger | None = None,
             on_case: Callable[[CaseOutcome], None] | None = None) -> PassSummary:
    """Heal every case once, in order (deterministic for one chooser seed)."""
    from clnrm.healing.heal import HealingPolicy, heal_test
    from clnrm.healing.runs import rebuild_images
    from clnrm.scenario import load_scenario

    out = []
    for case in cases:
        sc = load_scenario(Path(case.path))
        started = time.monotonic()
        first = run_one(sc)
        tries = 1
        while first.outcome.value == "passed" and tries < FIRST_FAILURE_TRIES:
            first, tries = run_one(sc), tries + 1
        if first.outcome.value == "passed":
            outcome = CaseOutcome(path=case.path, expected=case.expected, predicted="passed",
                                  healable=case.healable, healed=False, attempts=0,
                                  broken=False)
        else:
            final = heal_test(sc, first, run_one, chooser, policy=HealingPolicy.of(sc),
                              ledger=ledger, rebuild=rebuild_images)
            report = final.healing
            assert report is not None
            outcome = CaseOutcome(path=case.path, expected=case.expected,
                                  predicted=report.failure_class, healable=case.healable,
                                  healed=report.healed, attempts=report.attempts,
                                  remediation=report.remediation,
                                  seconds=round(time.monotonic() - started, 2))
        out.append(outcome)
        if on_case is not None:
            on_case(outcome)
    return PassSummary(cases=out)


__all__ = ["CaseOutcome", "LabelledCase", "PassSummary", "labelled_set", "run_pass"]
