"""The swarm's driver: intake, negotiation rounds and hand-out of work, through the board.

Plain code like the agents it drives: no Ray here (``clnrm.swarm.launch`` starts
the actors and hands their handles to :class:`Swarm`).  The driver owns no
verdicts.  It posts one architecture task per file, asks every agent for bids
on each task as it becomes ready, records the bids and the award
(:func:`clnrm.agents.blackboard.award`), and hands the task to the winner, whose
``work`` claims, acts and records.  It talks to agents through
:class:`AgentHandle` futures, so the same loop drives Ray actors
(``clnrm.swarm.actors``) and, in unit tests, plain agents on threads.

Tasks become ready when their ``after`` tasks have outcomes (whatever the
verdict: the healer exists for failures) and no conflicting task of the same
scenario is in flight; the board enforces the same rule again at claim time.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Protocol

from clnrm.agents.base import Bid, Layer, SwarmAgent, Task, TaskOutcome, TaskStatus, conflicts
from clnrm.agents.blackboard import Award, Blackboard, award
from clnrm.memory import Agent
from pydantic import BaseModel, Field

SwarmEvent = Callable[[str, str], None]
"""``(scenario slug, message)`` for a progress display; cheap, called from the driver thread."""

POLL_S = 0.2
WAIT_LIMIT_S = 600.0
"""How long a task the board keeps refusing (claimed elsewhere) waits before it is lost."""


class AgentHandle(Protocol):
    """An agent somewhere (a thread, a Ray actor): calls return futures."""

    agent: Agent

    def propose(self, tasks: list[Task]) -> Future[list[Bid]]: ...

    def work(self, task: Task) -> Future[TaskOutcome]: ...


class LocalHandle:
    """A plain agent behind one thread: one call at a time, like an actor."""

    def __init__(self, agent: SwarmAgent) -> None:
        self.agent = agent.agent
        self._impl = agent
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"agent-{agent.name}")

    def propose(self, tasks: list[Task]) -> Future[list[Bid]]:
        return self._pool.submit(lambda: [b for t in tasks if (b := self._impl.propose(t))])

    def work(self, task: Task) -> Future[TaskOutcome]:
        return self._pool.submit(self._impl.work, task)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class Decision(BaseModel):
    """One line of a run's record on the board, as ``clnrm swarm run`` prints it."""

    agent: Agent
    action: str
    topic: str
    reason: str
    bid: float | None = None


class SwarmReport(BaseModel):
    """A swarm run as data: what the CLI prints and ``--format json`` emits."""

    run_id: str
    memory: str
    ray: str = ""
    duration_s: float = 0.0
    tasks: list[Task] = Field(default_factory=list)
    outcomes: list[TaskOutcome] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    summary: str = ""

    @property
    def exit_code(self) -> int:
        """As ``clnrm run``: 2 nothing could be judged somewhere, 1 a verdict failed, 0 passed.

        As ``clnrm run --heal``, a scenario the healer healed counts as passed: its failed
        orchestration run is superseded by the healed rerun (a healer never heals a product
        defect, so a wrong answer stays red)."""
        healed = {o.task_id.rsplit("/", 1)[0] for o in self.outcomes
                  if o.agent is Agent.self_healing and o.status is TaskStatus.done
                  and o.facts.get("healed") is True}
        codes = [o.exit_code for o in self.outcomes if o.exit_code is not None
                 and not (o.agent is Agent.orchestration
                          and o.task_id.rsplit("/", 1)[0] in healed)]
        if any(o.status is TaskStatus.lost for o in self.outcomes) or 2 in codes:
            return 2
        return 1 if 1 in codes else 0


def new_swarm_run_id() -> str:
    return f"swarm-{secrets.token_hex(5)}"


def intake_tasks(run_id: str, files: Sequence[tuple[str, str]]) -> list[Task]:
    """One architecture task per ``(path, TOML text)``; slugs are unique within the run."""
    tasks: list[Task] = []
    seen: set[str] = set()
    for source, text in files:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).name.removesuffix(".toml")
                      .removesuffix(".clnrm")) or "scenario"
        slug, n = base, 2
        while slug in seen:
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        tasks.append(Task(id=f"{run_id}/{slug}/{Layer.architecture.value}", run_id=run_id,
                          layer=Layer.architecture, scenario=slug, source=source, text=text,
                          purpose="plan the layers for this file"))
    return tasks


class Swarm:
    """One swarm run over a board and a set of agent handles."""

    def __init__(self, board: Blackboard, handles: Sequence[AgentHandle], *,
                 run_id: str | None = None, on_event: SwarmEvent | None = None,
                 memory: str = "", ray: str = "") -> None:
        self.board = board
        self.handles = {h.agent: h for h in handles}
        self.run_id = run_id or new_swarm_run_id()
        self._emit = on_event or (lambda scenario, message: None)
        self.memory = memory
        self.ray = ray
        self._rank: dict[str, float] = {}  # task id -> the winning bid's value per second
        self._first: set[str] = set()  # first tasks posted (a non-owner won a task)
        self._plans: dict[str, set[Layer]] = {}  # plan id -> its layers, for order notes

    def run(self, files: Sequence[tuple[str, str]]) -> SwarmReport:
        started = time.monotonic()
        intake = intake_tasks(self.run_id, files)
        self.board.post_intake(self.run_id, intake)
        pending: dict[str, Task] = {t.id: t for t in intake}
        awarded: dict[str, Agent] = {}
        done: dict[str, TaskOutcome] = {}
        inflight: dict[Future[TaskOutcome], Task] = {}
        refused: dict[str, tuple[float, float]] = {}  # task id -> (first refusal, ask again at)
        try:
            while pending or inflight:
                now = time.monotonic()
                ready = [t for t in pending.values() if refused.get(t.id, (0, 0))[1] <= now
                         and self._ready(t, done, inflight)]
                known = len(pending)
                declined = self._negotiate([t for t in ready if t.id not in awarded], awarded,
                                           pending)
                posted_first = len(pending) > known  # a non-owner won: its first task is new
                for task, outcome in declined:
                    pending.pop(task.id)
                    done[task.id] = outcome
                # best value per cost first: an agent's calls queue in this order
                for task in sorted(ready, key=lambda t: (-self._rank.get(t.id, 0.0), t.id)):
                    if task.id in awarded and task.id in pending:
                        self._emit(task.scenario, f"{task.layer.value}: {awarded[task.id].value} "
                                                  f"works")
                        inflight[self.handles[awarded[task.id]].work(task)] = pending.pop(task.id)
                if not inflight:
                    if declined or posted_first:
                        continue  # their dependants, or a first task, may be ready now
                    if any(refused.get(t, (0, 0))[1] > now for t in pending):
                        time.sleep(POLL_S)
                        continue
                    for task in list(pending.values()):  # nothing can ever become ready
                        done[task.id] = self._finish_lost(task, "its dependencies never "
                                                          "finished (unknown task id)")
                        pending.pop(task.id)
                    continue
                finished, _ = wait(list(inflight), timeout=POLL_S, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = inflight.pop(fut)
                    outcome = self._result_of(fut, task)
                    if outcome.status is TaskStatus.waiting:  # the board said "not yet"
                        first = refused.get(task.id, (now, 0))[0]
                        if now - first > WAIT_LIMIT_S:
                            done[task.id] = self._finish_lost(
                                task, f"not claimable for {WAIT_LIMIT_S:.0f} s: {outcome.reason}")
                        else:
                            pending[task.id] = task
                            refused[task.id] = (first, now + POLL_S)
                        continue
                    done[task.id] = outcome
                    self._emit(task.scenario, f"{task.layer.value}: {outcome.status.value}")
                    if task.layer is Layer.architecture and outcome.status is TaskStatus.done:
                        pending.update({t.id: t for t in self.board.plan_tasks(task.id)})
        except BaseException as exc:
            # Best effort: the interrupt (or a memory failure) is what the caller must see.
            with contextlib.suppress(Exception):
                self.board.decide(self.run_id, f"{self.run_id}:summary",
                                  f"swarm run {self.run_id} interrupted "
                                  f"({type(exc).__name__}) with {len(inflight)} task(s) in "
                                  "flight; their containers are reaped when the agents stop")
            raise
        return self._report(done, time.monotonic() - started)

    def _report(self, done: dict[str, TaskOutcome], duration_s: float) -> SwarmReport:
        """The report, in plan order, and the run's summary decision."""
        tasks = self.board.tasks(self.run_id)
        order = {t.id: i for i, t in enumerate(tasks)}
        report = SwarmReport(run_id=self.run_id, memory=self.memory, ray=self.ray,
                             duration_s=duration_s, tasks=tasks,
                             outcomes=sorted(done.values(),
                                             key=lambda o: order.get(o.task_id, len(order))))
        report.summary = _summary(report)
        self.board.decide(self.run_id, f"{self.run_id}:summary", report.summary)
        report.decisions = [Decision(agent=e.agent, action=e.action.value, topic=e.topic,
                                     reason=e.reason, bid=e.bid)
                            for e in self.board.history(self.run_id)
                            if not e.id.endswith((":post", ":result"))]  # outcomes say those
        return report

    def _ready(self, task: Task, done: dict[str, TaskOutcome],
               inflight: dict[Future[TaskOutcome], Task]) -> bool:
        if any(dep not in done for dep in task.after):
            return False
        return not any(other.plan_id == task.plan_id and conflicts(other.layer, task.layer)
                       for other in inflight.values())

    def _negotiate(self, tasks: list[Task], awarded: dict[str, Agent],
                   pending: dict[str, Task]) -> list[tuple[Task, TaskOutcome]]:
        """Ask every agent, record bids and awards; return the tasks nobody would take.

        An award to the task's own agent hands it out.  An award to another agent posts
        that agent's first task (:meth:`Blackboard.post_first`) and puts it in
        ``pending``, awarded; the task itself waits for it and is negotiated again
        when it is ready.  Tasks of one round are handed out best value per cost first,
        and each decision says where its task stood in the round.
        """
        if not tasks:
            return []
        asked = [h.propose(tasks) for h in self.handles.values()]
        bids = [b for fut in asked for b in fut.result()]
        self.board.record_bids(bids, self.run_id)
        declined: list[tuple[Task, TaskOutcome]] = []
        decisions: list[tuple[Task, Award]] = []
        for task in tasks:
            decided = award(task, bids, gone_first=self._first, planned=self._layers(task))
            if decided.winner is not None and decided.winner in self.handles:
                if decided.first is not None:
                    first, later = self.board.post_first(task, decided)
                    self._first.add(first.id)
                    pending[task.id] = later
                    pending[first.id] = first
                    awarded[first.id] = decided.winner
                    self._rank[first.id] = decided.per_second
                    self._emit(task.scenario, f"{task.layer.value}: {decided.winner.value} "
                                              "goes first")
                    continue
                awarded[task.id] = decided.winner
                self._rank[task.id] = decided.per_second
                decisions.append((task, decided))
                continue
            self.board.record_award(task, decided)
            outcome = TaskOutcome(task_id=task.id, agent=task.layer.agent,
                                  status=TaskStatus.declined, reason=decided.reason)
            declined.append((task, self.board.finish(task, outcome)))
            self._emit(task.scenario, f"{task.layer.value}: declined")
        self._record_round(decisions)
        return declined

    def _layers(self, task: Task) -> set[Layer] | None:
        """The layers planned for ``task``'s scenario (read once per plan)."""
        if task.plan_id is None:
            return None
        if task.plan_id not in self._plans:
            self._plans[task.plan_id] = {t.layer for t in self.board.plan_tasks(task.plan_id)}
        return self._plans[task.plan_id]

    def _record_round(self, decisions: list[tuple[Task, Award]]) -> None:
        """Record each award; when one round awarded several tasks, say which was handed out
        before which and why, in the award and in a short ``<task>:order`` decision (what a
        question like "why was chaos run before performance" finds)."""
        ranked = sorted(decisions, key=lambda d: (-d[1].per_second, d[0].id))
        for n, (task, decided) in enumerate(ranked):
            if len(ranked) > 1:
                mine = f"{decided.per_second:.4f}/s"
                later = ", ".join(f"{t.layer.value} for {t.scenario}" for t, _ in ranked[n + 1:])
                earlier = ", ".join(f"{t.layer.value} for {t.scenario}" for t, _ in ranked[:n])
                theirs = ", ".join(f"{d.per_second:.4f}/s" for t, d in ranked if t is not task)
                said = []  # short on purpose: it is what a question in plain words matches
                if later:
                    said.append(f"{task.layer.value} for {task.scenario} was run before "
                                f"{later} because its value per cost is higher")
                if earlier:
                    said.append(f"{task.layer.value} for {task.scenario} was run after "
                                f"{earlier} because its value per cost is lower")
                note = " and ".join(said) + f" ({mine} against {theirs})"
                decided = decided.model_copy(update={
                    "reason": f"{decided.reason}. Round of {len(ranked)} tasks handed out by "
                              f"value per cost: {note}"})
                self.board.decide(task.run_id, f"{task.id}:order", note, topic=task.id,
                                  agent=decided.winner or Agent.architect)
            self.board.record_award(task, decided)

    def _result_of(self, fut: Future[TaskOutcome], task: Task) -> TaskOutcome:
        try:
            return fut.result()
        except Exception as exc:  # the actor died for good, or the agent raised
            return self._finish_lost(task, f"{type(exc).__name__}: {str(exc)[:400]}")

    def _finish_lost(self, task: Task, why: str) -> TaskOutcome:
        outcome = TaskOutcome(task_id=task.id, agent=task.layer.agent, status=TaskStatus.lost,
                              exit_code=2, reason=f"{task.layer.value} for {task.scenario} "
                                                  f"lost: {why}")
        return self.board.finish(task, outcome)


def _summary(report: SwarmReport) -> str:
    verdicts = {0: "passed", 1: "failed", 2: "could not be judged"}
    parts = [f"{o.task_id.split('/')[1]} {o.task_id.rsplit('/', 1)[1]} {o.status.value}"
             for o in report.outcomes if o.status is not TaskStatus.done
             or o.task_id.endswith(f"/{Layer.orchestration.value}")]
    return (f"swarm run {report.run_id} {verdicts[report.exit_code]}: "
            + ("; ".join(parts) or "nothing ran") + f" ({report.duration_s:.1f} s)")
