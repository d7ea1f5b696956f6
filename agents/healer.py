"""The healer: heals the failed scenarios of a swarm run and remembers what worked.

Its task comes after the scenario's orchestration task.  It runs the scenario
again (an agent on another node has only the task's text), and when it fails,
heals it exactly as ``clnrm run --heal`` does: classify with quoted evidence,
the rerun policy for flakiness, remediations that change only the environment,
chosen by the Thompson-sampling bandit rebuilt from the shared memory's
``RemediationRecord``s.  Every try is put to memory the moment it ends, so a
killed healer actor loses no learned outcome and the next healer (in this
swarm, another process, another swarm on the same memory) starts from it.

Its bid says what it knows: high when the orchestrator's failure falls in a class
the memory has healed before, lower for a class it has never healed, low when the
scenario passed (there is nothing to heal, only to confirm).

A plain class: no Ray import; ``clnrm.swarm.actors`` wraps it like every agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from clnrm.agents.base import (
    MESSAGE_LIMIT,
    Bid,
    Layer,
    RunSettings,
    SwarmAgent,
    Task,
    TaskOutcome,
    TaskStatus,
    run_options,
)
from clnrm.memory import Agent

if TYPE_CHECKING:
    from clnrm.agents.blackboard import Blackboard

    from clnrm.healing.bandit import RemediationLedger
    from clnrm.healing.model import Classification


class Healer(SwarmAgent):
    """One self-healing task = one scenario run, healed if it fails."""

    agent = Agent.self_healing
    layer = Layer.self_healing

    def __init__(self, board: Blackboard | None = None, *, name: str | None = None,
                 settings: RunSettings | None = None, seed: int = 0) -> None:
        super().__init__(board, name=name)
        self.settings = settings or RunSettings()
        self.seed = seed

    def _ledger(self, run_id: str) -> RemediationLedger:
        from clnrm.healing.bandit import RemediationLedger

        return RemediationLedger(self.board.store, run_id=run_id)

    def _prior(self, task: Task) -> tuple[TaskOutcome | None, bool]:
        """The failed outcome of a task this one waits for (the orchestrator's run), and
        whether every such task finished without failing (then there is nothing to heal)."""
        if not task.after:
            return None, False
        done = self.board.outcomes(list(task.after))
        failed = next((o for o in done.values() if o.status is TaskStatus.failed), None)
        passed = len(done) == len(task.after) and all(
            o.status is TaskStatus.done for o in done.values())
        return failed, passed

    def _known(self, diag: Classification, run_id: str) -> tuple[str, float] | None:
        stats = self._ledger(run_id).bandit(self.seed).stats().get(diag.failure_class.value)
        if not stats:
            return None
        name, figures = max(stats.items(), key=lambda kv: kv[1]["preference"])
        return (name, figures["preference"]) if figures["successes"] else None

    def propose(self, task: Task) -> Bid | None:
        """My own task, valued by what the memory knows of the failure's class (known: 0.9,
        never healed: 0.5, nothing failed: 0.2); a performance or chaos task of a scenario
        whose verdict run failed, to go first (:meth:`_first`); no opinion otherwise."""
        if task.layer is not self.layer:
            return self._first(task)
        prior, passed = self._prior(task)
        if prior is None:
            value, why = 0.2, (f"{task.scenario} " + (
                "passed: nothing to heal" if passed else
                "has no failure on the board yet; will run it and heal it if it fails"))
        else:
            value, why = self._value(task, prior)
        return self._bid(task, value, why)

    FIRST: ClassVar[dict[Layer, str]] = {Layer.performance: "heal first, then re-measure",
                                         Layer.chaos: "heal first, then perturb"}
    """The tasks the healer bids to go before when the scenario's verdict run failed."""

    def _first(self, task: Task) -> Bid | None:
        """Bid on a measurement or a perturbation of a scenario whose verdict run failed
        and whose healing is on: winning it, the healer heals first (a task of its own,
        ``<scenario>/self_healing-first``), then the task is negotiated again."""
        from clnrm.agents.base import first_task_id
        from clnrm.agents.evidence import failed_verdict

        from clnrm.errors import ClnrmError
        from clnrm.healing.layer import healing_on
        from clnrm.scenario import loads_scenario

        if task.layer not in self.FIRST or self._board is None or not task.after:
            return None
        prior = failed_verdict(self.board.outcomes(list(task.after)), task)
        if prior is None or self.board.posted(first_task_id(task, self.layer)):
            return None  # nothing failed, or I went first on this scenario already
        try:
            if not healing_on(loads_scenario(task.text, source=task.source)):
                return None
        except ClnrmError:
            return None
        value, why = self._value(task, prior)
        return self._bid(task, value, f"{task.scenario}'s verdict run failed; "
                                      f"{self.FIRST[task.layer]}: {why}")

    def _value(self, task: Task, prior: TaskOutcome) -> tuple[float, str]:
        from clnrm.healing.classify import classify
        from clnrm.results import Outcome, TestResult

        diag = classify(TestResult(name=task.scenario, file=task.source,
                                   outcome=Outcome.ERROR, message=prior.reason))
        known = self._known(diag, task.run_id)
        if known is not None:
            return 0.9, (f"{diag.failure_class.value} is a known failure class; {known[0]} "
                         f"healed it before (preference {known[1]:.2f})")
        return 0.5, (f"{diag.failure_class.value} has not been healed before; will explore "
                     "the catalog")

    def _bid(self, task: Task, value: float, why: str) -> Bid:
        """The bid at the cost of a run and a healed rerun of the scenario."""
        from clnrm.agents.base import scenario_name

        cost, cost_why = self.cost(scenario_name(task), agent=Agent.orchestration, factor=2.0,
                                   what="a run and a healed rerun, 2 x the ")
        return Bid(task_id=task.id, agent=self.agent, value=value, cost_s=cost,
                   evidence=f"{why}; {cost_why}", reason=f"{self.name}: {why}; {cost_why}")

    def act(self, task: Task) -> TaskOutcome:
        from clnrm.errors import ClnrmError
        from clnrm.healing.heal import heal_test
        from clnrm.healing.layer import healing_on
        from clnrm.healing.runs import rebuild_images, scenario_runner
        from clnrm.scenario import loads_scenario

        _, passed = self._prior(task)
        if passed:  # the runs this task waits for passed: no rerun, nothing pretended
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                               exit_code=0, reason=f"{task.scenario} passed: nothing to heal",
                               facts={"healed": False, "attempts": 0})
        try:
            sc = loads_scenario(task.text, source=task.source)
            if not healing_on(sc):  # the self_healing layer's rule, as the architect's
                return TaskOutcome(task_id=task.id, agent=self.agent,
                                   status=TaskStatus.declined,
                                   reason=f"{self.name} declined {sc.name}: its "
                                          "[self_healing] is absent or switched off")
            run_one = scenario_runner(run_options(self.settings))
            first = run_one(sc)
            if first.outcome.value == "passed":
                return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.done,
                                   exit_code=0, reason=f"{sc.name} passed: nothing to heal",
                                   facts={"healed": False, "attempts": 0})
            ledger = self._ledger(task.run_id)
            final = heal_test(sc, first, run_one, ledger.bandit(self.seed), ledger=ledger,
                              rebuild=rebuild_images)
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, reason=f"healer could not run {task.scenario} "
                                                   f"({task.source}): {exc}")
        report = final.healing
        assert report is not None
        return TaskOutcome(
            task_id=task.id, agent=self.agent,
            status=TaskStatus.done if report.healed else TaskStatus.failed,
            exit_code=0 if report.healed else 1,
            reason=f"{sc.name}: {report.human()}; evidence: {report.evidence}"[:MESSAGE_LIMIT],
            facts={"failure_class": report.failure_class, "healed": report.healed,
                   "attempts": report.attempts, "remediation": report.remediation or ""})
