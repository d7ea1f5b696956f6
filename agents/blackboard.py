"""The agents' negotiation, kept as records in shared memory so a run can be explained later.

Every move is a :class:`~clnrm.memory.BlackboardEntry` with a deterministic id, so a
retried write lands on the same record and anyone can find a task's state by
id, without a similarity search::

    <run>:intake             post      the files submitted, one architecture task each
    <task>:post              post      a task, its JSON in ``m.task``
    <arch task>:plan         post      the architect's plan for one scenario, with reasons
    <task>:bid:<agent>       bid       a bid (``bid`` = value) or a decline (``bid`` None)
    <task>:assign            decision  who got the task and why (the award rule)
    <task>:order             decision  why it was handed out before/after others of its round
    <task>:claim             claim     ``m.claimer``, ``m.incarnation``, ``m.attempt``
    <task>:wait              decision  why a claim is refused for now
    <task>:resume:<attempt>  decision  a restarted agent picked its claim up again
    <task>:result            decision  ``m.status``, ``m.exit_code``, facts as ``m.f.*``
    <run>:summary            decision  the run's verdict in one sentence

**Award rule.** Bids state a value (0..1, from memory) and a cost (seconds, from
past runs); the bid with the highest value per second of cost wins, a tie goes to
the agent whose layer the task is, then to the smaller agent name.  With no bid at
all the task is declined, and the decision quotes every decline.  Another layer's
agent that wins a task does not do that layer's work: it goes first with its own
(``<scenario>/<its layer>-first``, posted before the task), and the task is negotiated
again once that is done, without its bid (``heal first, then perturb``).  The
``<task>:assign`` decision says the value, cost and evidence of the winner, every
competing bid, the rule, and the conflict rules that order the task.

**Claim rule.** A task may be claimed once its ``after`` tasks are finished and
no conflicting task of the same scenario is unfinished ahead of it (see
:func:`clnrm.agents.base.precedence`).  Only the awarded agent may claim it.  The
claim is an upsert of ``<task>:claim``, then read back: the claimer whose
incarnation is read back holds it.  Memory has no compare-and-set, so two
*different* claimers racing between the check and the put could both read
themselves back in turn; the award closes that window, because exactly one
agent name is allowed to claim each task.  The same name claiming again is a
restarted incarnation resuming its own work (``attempt`` + 1).

**Result rule.** ``<task>:result`` is written once: ``finish`` reads it first
and returns the stored outcome instead of writing a second one.  The work of an
attempt that died before recording is redone by the next attempt (at least
once), but a task is recorded as done exactly once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from clnrm.agents.base import (
    CONFLICT_RULES,
    Bid,
    Layer,
    Scalar,
    Task,
    TaskOutcome,
    TaskStatus,
    conflicts,
    first_task_id,
    layer_of,
    precedence,
)
from clnrm.memory import Agent, BlackboardAction, BlackboardEntry, MemoryStore
from pydantic import BaseModel


class Claim(BaseModel):
    """The board's answer to a claim: won, refused for now, or already finished."""

    task_id: str
    won: bool
    attempt: int = 1
    reason: str = ""
    outcome: TaskOutcome | None = None  # set when the task was finished before


class Award(BaseModel):
    task_id: str
    winner: Agent | None
    reason: str
    value: float | None = None  # the winning bid's
    cost_s: float | None = None  # the cost the rule charged it
    first: str | None = None  # a non-owner won: the id of the task it does first

    @property
    def per_second(self) -> float:
        return (self.value or 0.0) / self.cost_s if self.cost_s else 0.0


AWARD_RULE = ("highest value per second of cost wins; a tie goes to the task's own layer, "
              "then to the smaller agent name")
"""The award rule in words, quoted by every decision."""

GOES_FIRST: dict[tuple[Layer, Layer], str] = {
    (Layer.self_healing, Layer.chaos): "heal first, then perturb",
    (Layer.self_healing, Layer.performance): "heal first, then re-measure",
}
"""Why a winning non-owner goes first, by (its layer, the task's layer)."""


def _offer(bid: Bid) -> str:
    cost = (f"{bid.cost:.1f} s" if bid.cost_s is not None
            else f"{bid.cost:.0f} s (its layer's default)")
    return f"value {bid.value:.2f} / cost {cost} = {bid.per_second:.4f}/s"


def order_note(task: Task, planned: Collection[Layer] | None = None) -> str:
    """The conflict rules that order ``task`` against its scenario's other layers
    (``planned``: the layers of its plan, when known: a rule with an unplanned layer is
    left out)."""
    def waits_for(layer: Layer) -> bool:
        return any(d.rsplit("/", 1)[1] in (layer.value, f"{layer.value}-first")
                   for d in task.after)

    notes = []
    for rule in CONFLICT_RULES:  # as the plan applies them: its own edges win (blocked_by)
        if planned is not None and not {rule.first, rule.second} <= {*planned, task.layer}:
            continue
        if task.layer is rule.second and waits_for(rule.first):
            notes.append(f"{rule.second.value} is run after {rule.first.value} on "
                         f"{task.scenario}, never before it (conflict rule '{rule.name}')")
        elif task.layer is rule.first and not waits_for(rule.second):
            notes.append(f"{rule.first.value} is run before {rule.second.value} on "
                         f"{task.scenario} (conflict rule '{rule.name}')")
    deps = f"it waits for {', '.join(d.rsplit('/', 1)[1] for d in task.after)}" \
        if task.after else "it waits for nothing"
    return "; ".join([deps, *notes])


def award(task: Task, bids: Iterable[Bid], *, gone_first: Collection[str] = (),
          planned: Collection[Layer] | None = None) -> Award:
    """The award rule (module docstring): value per cost, then own layer, then name.

    ``gone_first``: ids of first tasks already posted in this run; a non-owner whose
    first task is among them (or among ``task.after``) went first already, and its bid
    no longer counts.  ``planned``: the layers of the task's plan, for the order note.
    Pure: the same bids give the same award.
    """
    offers = [b for b in bids if b.task_id == task.id]
    owner = task.layer.agent
    done_first = {*task.after, *gone_first}
    live = [b for b in offers if not b.declined and (
        b.agent is owner or first_task_id(task, layer_of(b.agent)) not in done_first)]
    if not live:
        declines = "; ".join(b.reason for b in offers if b.declined) or "no agent answered"
        return Award(task_id=task.id, winner=None,
                     reason=f"{task.layer.value} for {task.scenario} declined: {declines}")
    ranked = sorted(live, key=lambda b: (-round(b.per_second, 12), b.agent is not owner,
                                         b.agent.value))
    best, others = ranked[0], ranked[1:]
    parts = [f"{task.layer.value} for {task.scenario} awarded to {best.agent.value}: "
             f"{_offer(best)} ({best.reason})"]
    parts.append("competing bids: " + "; ".join(f"{b.agent.value} {_offer(b)} ({b.reason})"
                                                for b in others) if others else "the only bid")
    gone = [b for b in offers if not b.declined and b not in live]
    if gone:
        parts.append("not counted (went first already): "
                     + ", ".join(b.agent.value for b in gone))
    declined = [b for b in offers if b.declined]
    if declined:
        parts.append("declined: " + "; ".join(b.reason for b in declined))
    parts.append(f"rule: {AWARD_RULE}")
    first = None
    if best.agent is not owner:
        mine = layer_of(best.agent)
        first = first_task_id(task, mine)
        why = GOES_FIRST.get((mine, task.layer), f"{mine.value} first, then {task.layer.value}")
        parts.append(f"{best.agent.value} does not own {task.layer.value}: it goes first with "
                     f"its own {mine.value} work on {task.scenario} ({first}), then "
                     f"{task.layer.value} is negotiated again without its bid ({why})")
    parts.append("order: " + order_note(task, planned))
    return Award(task_id=task.id, winner=best.agent, reason=". ".join(parts), value=best.value,
                 cost_s=best.cost, first=first)


def _entry(record_id: str, *, agent: Agent, topic: str, action: BlackboardAction, reason: str,
           run_id: str, bid: float | None = None,
           metadata: dict[str, Scalar] | None = None) -> BlackboardEntry:
    return BlackboardEntry(id=record_id, agent=agent, topic=topic, action=action, reason=reason,
                           run_id=run_id, bid=bid, metadata=metadata or {})


def _bb(record_id: str) -> str:
    return f"blackboard:{record_id}"


class Blackboard:
    """Negotiation records of the swarm over any :class:`~clnrm.memory.MemoryStore`.

    One instance per process; its lock makes check-then-write atomic for the
    threads of that process (across processes, see the claim rule).
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._lock = threading.RLock()

    # -- posting -------------------------------------------------------------
    def post_intake(self, run_id: str, tasks: Sequence[Task]) -> None:
        files = ", ".join(t.source for t in tasks)
        self._post_tasks(tasks, by=Agent.architect)
        self.store.put([_entry(f"{run_id}:intake", agent=Agent.architect, topic=run_id,
                               action=BlackboardAction.post, run_id=run_id,
                               reason=f"swarm run {run_id}: {len(tasks)} scenario file(s) "
                                      f"submitted: {files}",
                               metadata={"tasks": json.dumps([t.id for t in tasks])})])

    def post_plan(self, plan_task: Task, tasks: Sequence[Task], reason: str) -> None:
        """The architect's plan: its tasks first, then the plan naming them."""
        self._post_tasks(tasks, by=Agent.architect)
        self.store.put([_entry(f"{plan_task.id}:plan", agent=Agent.architect, topic=plan_task.id,
                               action=BlackboardAction.post, run_id=plan_task.run_id,
                               reason=reason,
                               metadata={"tasks": json.dumps([t.id for t in tasks]),
                                         "scenario": plan_task.scenario,
                                         "source": plan_task.source})])

    def _post_tasks(self, tasks: Sequence[Task], *, by: Agent) -> None:
        self.store.put([_entry(f"{t.id}:post", agent=by, topic=t.id, run_id=t.run_id,
                               action=BlackboardAction.post,
                               reason=f"task: {t.purpose or t.layer.value} for {t.scenario} "
                                      f"({t.source})",
                               metadata={"task": t.to_json(), "layer": t.layer.value,
                                         "scenario": t.scenario}) for t in tasks])

    # -- reading -------------------------------------------------------------
    def _entries(self, ids: Sequence[str]) -> dict[str, BlackboardEntry]:
        return {r.id: r for r in self.store.get([_bb(i) for i in ids])
                if isinstance(r, BlackboardEntry)}

    def _listed(self, record_id: str) -> list[str]:
        found = self._entries([record_id]).get(_bb(record_id))
        return json.loads(str(found.metadata["tasks"])) if found else []

    def plan_tasks(self, plan_task_id: str) -> list[Task]:
        return self._tasks(self._listed(f"{plan_task_id}:plan"))

    def tasks(self, run_id: str) -> list[Task]:
        """Every task of a run: its architecture tasks, then each plan's tasks, in order."""
        intake = self._tasks(self._listed(f"{run_id}:intake"))
        planned = self._tasks([i for t in intake for i in self._listed(f"{t.id}:plan")])
        return intake + planned

    def _tasks(self, ids: Sequence[str]) -> list[Task]:
        posts = self._entries([f"{i}:post" for i in ids])
        return [Task.from_json(str(posts[_bb(f"{i}:post")].metadata["task"]))
                for i in ids if _bb(f"{i}:post") in posts]

    def posted(self, task_id: str) -> bool:
        """Whether ``task_id`` was posted (one read by id)."""
        return bool(self._entries([f"{task_id}:post"]))

    def outcome(self, task_id: str) -> TaskOutcome | None:
        return self.outcomes([task_id]).get(task_id)

    def outcomes(self, task_ids: Sequence[str]) -> dict[str, TaskOutcome]:
        found = self._entries([f"{i}:result" for i in task_ids])
        return {str(e.metadata["task"]): _outcome_of(e) for e in found.values()}

    def claim_of(self, task_id: str) -> BlackboardEntry | None:
        return self._entries([f"{task_id}:claim"]).get(_bb(f"{task_id}:claim"))

    def history(self, run_id: str) -> list[BlackboardEntry]:
        """Every record of a run in the order it was written: what ``explain`` prints."""
        tasks = self.tasks(run_id)
        claims = self._entries([f"{t.id}:claim" for t in tasks])
        ids = [f"{run_id}:intake", f"{run_id}:summary"]
        for task in tasks:
            ids += [f"{task.id}:{suffix}" for suffix in ("post", "plan", "assign", "order",
                                                         "wait", "result")]
            ids += [f"{task.id}:bid:{a.value}" for a in Agent]
            claim = claims.get(_bb(f"{task.id}:claim"))
            attempts = int(claim.metadata["attempt"]) if claim else 1
            ids += [f"{task.id}:resume:{n}" for n in range(2, attempts + 1)]
        found = {**self._entries(ids), **claims}
        return sorted(found.values(), key=lambda e: e.created_at)

    # -- negotiating ---------------------------------------------------------
    def record_bids(self, bids: Iterable[Bid], run_id: str) -> None:
        self.store.put([_entry(f"{b.task_id}:bid:{b.agent.value}", agent=b.agent,
                               topic=b.task_id, action=BlackboardAction.bid, reason=b.reason,
                               run_id=run_id, bid=b.value,
                               metadata={"cost_s": b.cost} if not b.declined else {})
                         for b in bids])

    def record_award(self, task: Task, decided: Award) -> None:
        metadata: dict[str, Scalar] = {"winner": decided.winner.value if decided.winner
                                       else "", "layer": task.layer.value,
                                       "scenario": task.scenario}
        if decided.value is not None and decided.cost_s is not None:
            metadata.update(value=decided.value, cost_s=decided.cost_s,
                            per_second=round(decided.per_second, 6))
        self.store.put([_entry(f"{task.id}:assign", agent=decided.winner or Agent.architect,
                               topic=task.id, action=BlackboardAction.decision,
                               reason=decided.reason, run_id=task.run_id, bid=decided.value,
                               metadata=metadata)])

    def post_first(self, task: Task, decided: Award) -> tuple[Task, Task]:
        """A non-owner won ``task``: post its first task (its own layer, waiting for what
        ``task`` waits for) into the plan before ``task``, make ``task`` wait for it, and
        record the award on the first task.  Returns ``(first, task as it now waits)``."""
        assert decided.winner is not None and decided.first is not None
        first = Task(id=decided.first, run_id=task.run_id, layer=layer_of(decided.winner),
                     scenario=task.scenario, source=task.source, text=task.text,
                     after=task.after, plan_id=task.plan_id,
                     purpose=f"go first, before {task.layer.value}")
        later = task.model_copy(update={"after": (*task.after, first.id)})
        with self._lock:
            self._post_tasks([first, later], by=Agent.architect)
            if task.plan_id is not None:
                plan = self._entries([f"{task.plan_id}:plan"]).get(_bb(f"{task.plan_id}:plan"))
                if plan is not None:
                    ids = [i for i in json.loads(str(plan.metadata["tasks"])) if i != first.id]
                    ids.insert(ids.index(task.id) if task.id in ids else len(ids), first.id)
                    self.store.put([plan.model_copy(update={"metadata": {
                        **plan.metadata, "tasks": json.dumps(ids)}})])
            self.record_award(first, decided.model_copy(update={"task_id": first.id}))
        return first, later

    def decide(self, run_id: str, key: str, reason: str, *, topic: str | None = None,
               agent: Agent = Agent.architect) -> None:
        """A free-standing decision (``<key>`` is its id), e.g. the run summary."""
        self.store.put([_entry(key, agent=agent, topic=topic or run_id, reason=reason,
                               action=BlackboardAction.decision, run_id=run_id)])

    # -- claiming and finishing ---------------------------------------------
    def blocked_by(self, task: Task) -> str | None:
        """Why ``task`` may not start yet, or None: dependencies, then the conflict rule."""
        siblings = [t for t in self.plan_tasks(task.plan_id) if t.id != task.id] \
            if task.plan_id else []
        rivals = [t for t in siblings if conflicts(t.layer, task.layer)]
        done = self.outcomes([*task.after, *(t.id for t in rivals)])
        for dep in task.after:
            if dep not in done:
                return f"{task.id} waits for {dep} to finish"
        for rival in rivals:
            if rival.id in done or task.id in rival.after:
                continue  # finished, or the plan puts the rival after me: it waits for me
            first, _, rule = precedence(rival.layer, task.layer)
            if first is rival.layer or self.claim_of(rival.id) is not None:
                return f"{task.id} waits for {rival.id}: {rule}"
        return None

    def claim(self, task: Task, *, claimer: str, incarnation: str, agent: Agent) -> Claim:
        """Apply the claim rule (module docstring); never blocks."""
        with self._lock:
            finished = self.outcome(task.id)
            if finished is not None:
                return Claim(task_id=task.id, won=False, attempt=finished.attempt,
                             reason="already finished", outcome=finished)
            assigned = self._entries([f"{task.id}:assign"]).get(_bb(f"{task.id}:assign"))
            winner = str(assigned.metadata.get("winner", "")) if assigned else agent.value
            if winner != agent.value:
                return Claim(task_id=task.id, won=False,
                             reason=f"awarded to {winner or 'nobody'}, not {agent.value}")
            blocker = self.blocked_by(task)
            if blocker is not None:
                self.decide(task.run_id, f"{task.id}:wait", blocker, topic=task.id, agent=agent)
                return Claim(task_id=task.id, won=False, reason=blocker)
            current = self.claim_of(task.id)
            holder = str(current.metadata["claimer"]) if current else None
            if holder is not None and holder != claimer:
                return Claim(task_id=task.id, won=False, reason=f"claimed by {holder}")
            attempt = int(current.metadata["attempt"]) + 1 if current else 1
            writes = [_entry(f"{task.id}:claim", agent=agent, topic=task.id,
                             action=BlackboardAction.claim, run_id=task.run_id,
                             reason=f"{claimer} claims {task.layer.value} for {task.scenario} "
                                    f"(attempt {attempt})",
                             metadata={"claimer": claimer, "incarnation": incarnation,
                                       "attempt": attempt,
                                       "claimed_at": datetime.now(UTC).isoformat()})]
            if current is not None:
                writes.append(_entry(
                    f"{task.id}:resume:{attempt}", agent=agent, topic=task.id,
                    action=BlackboardAction.decision, run_id=task.run_id,
                    reason=f"{claimer} resumes its unfinished claim of {task.id} (attempt "
                           f"{attempt}; the previous attempt stopped before recording a result)"))
            self.store.put(writes)
            back = self.claim_of(task.id)
            won = back is not None and back.metadata.get("incarnation") == incarnation
            return Claim(task_id=task.id, won=won, attempt=attempt,
                         reason="claimed" if won else "lost the claim on read-back")

    def unfinished_claims(self, run_id: str, claimer: str) -> list[Task]:
        """Tasks ``claimer`` holds in ``run_id`` with no result yet: what a restart resumes."""
        tasks = self.tasks(run_id)
        claims = self._entries([f"{t.id}:claim" for t in tasks])
        done = self.outcomes([t.id for t in tasks])
        return [t for t in tasks if t.id not in done
                and (c := claims.get(_bb(f"{t.id}:claim"))) is not None
                and c.metadata.get("claimer") == claimer]

    def finish(self, task: Task, outcome: TaskOutcome) -> TaskOutcome:
        """Record ``outcome`` unless one is recorded already; return the one that counts."""
        with self._lock:
            earlier = self.outcome(task.id)
            if earlier is not None:
                return earlier
            metadata: dict[str, Scalar] = {"task": task.id, "status": outcome.status.value,
                                           "attempt": outcome.attempt, "layer": task.layer.value,
                                           "scenario": task.scenario}
            if outcome.exit_code is not None:
                metadata["exit_code"] = outcome.exit_code
            metadata.update({f"f.{k}": v for k, v in outcome.facts.items()})
            self.store.put([_entry(f"{task.id}:result", agent=outcome.agent, topic=task.id,
                                   action=BlackboardAction.decision, reason=outcome.reason,
                                   run_id=task.run_id, metadata=metadata)])
            return outcome


def _outcome_of(entry: BlackboardEntry) -> TaskOutcome:
    m = entry.metadata
    exit_code = m.get("exit_code")
    return TaskOutcome(task_id=str(m["task"]), agent=entry.agent,
                       status=TaskStatus(str(m["status"])), reason=entry.reason,
                       exit_code=int(exit_code) if exit_code is not None else None,
                       attempt=int(m.get("attempt", 1)),
                       facts={k[2:]: v for k, v in m.items() if k.startswith("f.")})


__all__ = ["AWARD_RULE", "Award", "Blackboard", "Claim", "award", "order_note"]
