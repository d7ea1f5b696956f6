"""``clnrm run --heal``: the failed tests of a run healed one by one, through the Runner.

Each rerun is a fresh run of one scenario (its own sandbox, network and receiver,
removed when it ends), so an attempt can leak nothing the Runner would not; the
chooser is the bandit rebuilt from the shared memory when one can be opened, else
an in-process bandit (said in a warning, never silently).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.healing.heal import Chooser, HealingPolicy, heal_test

if TYPE_CHECKING:
    from clnrm.healing.bandit import RemediationLedger
    from clnrm.results import RunResult, TestResult
    from clnrm.runner import RunOptions
    from clnrm.scenario.model import Scenario

log = structlog.get_logger("clnrm.healing")


def wants_healing(sc: Scenario, flag: bool | None) -> bool:
    """Whether ``sc`` is healed with ``--heal`` (True), ``--no-heal`` (False) or neither
    (None): the ``self_healing`` layer's rule on the file as the flag makes it
    (:func:`clnrm.healing.layer.with_heal_flag`)."""
    from clnrm.healing.layer import healing_on, with_heal_flag

    return healing_on(with_heal_flag(sc, flag))


def scenario_runner(options: RunOptions, on_event: Callable[[str, str], None] | None = None
                    ) -> Callable[[Scenario], TestResult]:
    """Runs one scenario as ``clnrm run`` would and returns its one test result; an image
    missing before the run starts is that test's ERROR result, not an exception."""

    def run_one(sc: Scenario) -> TestResult:
        from clnrm.errors import ImageMissingError
        from clnrm.results import Outcome, TestResult
        from clnrm.runner import Runner, make_backend, new_run_id

        run_id = new_run_id()
        runner = Runner(options, backend=make_backend(options.backend, run_id),
                        on_event=on_event)
        try:
            result = runner.run([sc])
        except ImageMissingError as exc:
            return TestResult(name=sc.name, file=sc.source or "", outcome=Outcome.ERROR,
                              message=str(exc))
        return result.tests[0]

    return run_one


def rebuild_images(names: list[str]) -> None:
    from clnrm.backends.docker import docker_client
    from clnrm.images import build_images

    build_images(docker_client(), names)


def open_ledger(location: str | None, run_id: str | None) -> tuple[RemediationLedger | None,
                                                                    str | None]:
    """The memory ledger, or None and the reason (memory extra missing, store locked...)."""
    try:
        from clnrm.healing.bandit import RemediationLedger
        from clnrm.memory import open_memory

        return RemediationLedger(open_memory(location), run_id=run_id), None
    except Exception as exc:  # ImportError, MemoryStoreError: learning stays in-process
        return None, f"shared memory unavailable ({exc}); learning only within this run"


def heal_run(result: RunResult, scenarios: list[Scenario], options: RunOptions, *,
             flag: bool | None, max_attempts: int | None = None, seed: int = 0,
             memory: str | None = None, chooser: Chooser | None = None,
             on_event: Callable[[str, str], None] | None = None) -> RunResult:
    """Heal each failed test of ``result`` whose file wants it; returns ``result`` with the
    healed tests replaced and every attempted test carrying its ``healing`` report."""
    from clnrm.results import Outcome

    by_source = {(sc.source or "", sc.name): sc for sc in scenarios}
    todo = [(i, t) for i, t in enumerate(result.tests)
            if t.outcome in (Outcome.FAILED, Outcome.ERROR)
            and (sc := by_source.get((t.file, t.name))) is not None and wants_healing(sc, flag)]
    if not todo:
        return result
    ledger, why = (None, None) if chooser is not None else open_ledger(memory, result.run_id)
    if why:
        result.limitations.append(why)
    if chooser is None:
        chooser = ledger.bandit(seed) if ledger is not None else _fresh_bandit(seed)
    run_one = scenario_runner(options, on_event)
    try:
        for i, test in todo:
            sc = by_source[(test.file, test.name)]
            policy = HealingPolicy.of(sc, max_attempts=max_attempts)
            result.tests[i] = heal_test(sc, test, run_one, chooser, policy=policy,
                                        ledger=ledger, rebuild=rebuild_images)
    finally:
        if ledger is not None:
            ledger.store.close()
    return result


def _fresh_bandit(seed: int) -> Any:
    from clnrm.healing.bandit import RemediationBandit

    return RemediationBandit(seed)


__all__ = ["heal_run", "open_ledger", "scenario_runner", "wants_healing"]
