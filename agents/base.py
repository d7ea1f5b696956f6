"""The one interface every agent shares: observe the board, propose, act, record.

An agent is a plain class that reads and writes the blackboard in memory and
nothing else; it never knows whether it runs in the caller's process or in a
Ray actor (``ray_cluster/`` decides that), so the same class is unit-tested
here and deployed there.  The life of a task, as every agent sees it::

    observe(run_id)  -> the open tasks of my layer
    propose(task)    -> a Bid (a value, or a decline with its reason), or None
    act(task)        -> a TaskOutcome (done, failed or declined, always with a reason)
    record(task, o)  -> the outcome lands on the board under a deterministic id

``work`` strings them together with the claim rule of
:mod:`clnrm.agents.blackboard`, so an agent restarted mid-task resumes its own claim
and a finished task is never recorded twice.

Agents that run a scenario through clnrm's Runner (orchestration, performance,
chaos) share one life, :class:`ScenarioRunningAgent`: load the task's file, run
it as ``clnrm run`` would, remember the run, report the verdict; each says only
what differs (when it declines, what it changes in the scenario, its facts).

The conflict rule lives here because both the architect (when it orders a
plan) and the board (when it grants a claim) apply it; see :func:`precedence`.
"""

from __future__ import annotations

import os
import secrets
from abc import ABC, abstractmethod
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Final

from clnrm.memory import Agent, FailureRecord, Record, RunRecord
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from clnrm.agents.blackboard import Blackboard

    from clnrm.results import RunResult, TestResult
    from clnrm.runner import RunOptions
    from clnrm.scenario.model import Scenario

Scalar = str | int | float | bool

MESSAGE_LIMIT: Final = 600
"""Longest test message or failure text an agent copies into memory."""


class Layer(StrEnum):
    """What a task is for; each layer has exactly one agent that can do it."""

    architecture = "architecture"  # turn a scenario file into a plan
    orchestration = "orchestration"  # run the scenario: the verdict
    performance = "performance"  # repeat runs, compare with a baseline
    chaos = "chaos"  # run with injected faults
    self_healing = "self_healing"  # apply remediations to failures
    intelligence = "intelligence"  # analyse every result

    @property
    def agent(self) -> Agent:
        return Agent.architect if self is Layer.architecture else Agent(self.value)


class Task(BaseModel):
    """One unit of work on the board; ``id`` is ``<run>/<scenario slug>/<layer>``.

    ``source`` and ``text`` travel with the task so an agent on another node
    needs no shared file system to load the scenario.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    run_id: str
    layer: Layer
    scenario: str  # the file's slug inside this run
    source: str  # the file path as the user gave it
    text: str = Field(repr=False)
    after: tuple[str, ...] = ()  # task ids that must be finished first
    plan_id: str | None = None  # the architecture task that posted this one
    purpose: str = ""  # one line for people: "run the scenario", "measure a baseline"

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Task:
        return cls.model_validate_json(text)


class Bid(BaseModel):
    """An agent's answer to "will you take this task?"; ``value`` None is a decline."""

    task_id: str
    agent: Agent
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: str

    @property
    def declined(self) -> bool:
        return self.value is None


class TaskStatus(StrEnum):
    done = "done"  # the work happened and its verdict, if it has one, passed
    failed = "failed"  # the work could not be carried out, or its verdict is a failure
    declined = "declined"  # no agent could do it; nothing was pretended
    lost = "lost"  # its agent died for good before finishing
    waiting = "waiting"  # not finished: a dependency or the conflict rule holds it back

    @property
    def final(self) -> bool:
        return self is not TaskStatus.waiting


class TaskOutcome(BaseModel):
    """What became of a task, said so that ``clnrm memory query`` can explain it later."""

    task_id: str
    agent: Agent
    status: TaskStatus
    reason: str
    exit_code: int | None = None  # for tasks that produce a verdict (0/1/2 as `clnrm run`)
    attempt: int = 1
    facts: dict[str, Scalar] = Field(default_factory=dict)


# -- the conflict rule -------------------------------------------------------

CONFLICTING_LAYERS: Final[frozenset[frozenset[Layer]]] = frozenset({
    frozenset({Layer.performance, Layer.chaos}),
})
"""Layers that must never work on the same scenario at the same time."""

PRECEDENCE: Final[tuple[Layer, ...]] = (
    Layer.architecture, Layer.orchestration, Layer.performance, Layer.chaos,
    Layer.self_healing, Layer.intelligence,
)
"""Plan order, and who goes first when two conflicting layers want the same scenario."""


def conflicts(a: Layer, b: Layer) -> bool:
    return frozenset({a, b}) in CONFLICTING_LAYERS


def precedence(a: Layer, b: Layer) -> tuple[Layer, Layer, str]:
    """``(first, second, reason)`` for two conflicting layers on one scenario.

    The rule is *measurement before perturbation*: performance measures its
    baseline on an undisturbed system, and only then may chaos inject faults.
    A baseline measured under injected faults would make every later
    regression look normal, whereas chaos loses nothing by waiting.
    """
    first, second = sorted((a, b), key=PRECEDENCE.index)
    return first, second, (f"conflict rule 'measurement before perturbation': {first.value} "
                           f"goes before {second.value} on the same scenario, because a "
                           f"baseline measured under injected faults would hide regressions")


# -- agents ------------------------------------------------------------------


def incarnation_id() -> str:
    """Tells this process's attempt at a claim from a restarted one with the same name."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


class SwarmAgent(ABC):
    """Base of every agent; subclasses say which layer they serve and implement ``act``.

    ``name`` is the stable claimer identity: a restarted actor gets the same
    name and so finds its own claims, while ``incarnation`` tells attempts apart.
    """

    agent: ClassVar[Agent]
    layer: ClassVar[Layer]

    def __init__(self, board: Blackboard | None = None, *, name: str | None = None) -> None:
        self._board = board
        self.name = name or self.agent.value
        self.incarnation = incarnation_id()

    @property
    def board(self) -> Blackboard:
        """The board this agent negotiates on; only taking part in a swarm needs one."""
        if self._board is None:
            from clnrm.errors import ClnrmError

            raise ClnrmError(f"agent {self.name} has no blackboard",
                             hint=f"{type(self).__name__}(board) to take part in a swarm")
        return self._board

    # -- observe / propose / act / record -----------------------------------
    def observe(self, run_id: str) -> list[Task]:
        """The tasks of my layer in ``run_id`` that nobody has finished yet."""
        mine = [t for t in self.board.tasks(run_id) if t.layer is self.layer]
        finished = self.board.outcomes([t.id for t in mine])
        return [t for t in mine if t.id not in finished]

    def propose(self, task: Task) -> Bid | None:
        """A full bid for my own layer; no opinion (None) on anyone else's."""
        if task.layer is not self.layer:
            return None
        return Bid(task_id=task.id, agent=self.agent, value=1.0,
                   reason=f"{self.name} does {self.layer.value} work")

    @abstractmethod
    def act(self, task: Task) -> TaskOutcome:
        """Do the work; report failures as outcomes, never by pretending success."""

    def record(self, task: Task, outcome: TaskOutcome) -> TaskOutcome:
        """Store the outcome once; a second attempt gets the first one back."""
        return self.board.finish(task, outcome)

    # -- the loop the swarm calls --------------------------------------------
    def work(self, task: Task) -> TaskOutcome:
        """Claim, act, record; safe to call again after a crash (see the claim rule)."""
        claim = self.board.claim(task, claimer=self.name, incarnation=self.incarnation,
                                 agent=self.agent)
        if claim.outcome is not None:
            return claim.outcome  # finished before, maybe by an earlier incarnation
        if not claim.won:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.waiting,
                               reason=claim.reason, attempt=claim.attempt)
        outcome = self.act(task).model_copy(update={"attempt": claim.attempt})
        return self.record(task, outcome)

    def resume(self, run_id: str) -> list[TaskOutcome]:
        """Finish every task this agent claimed in ``run_id`` but did not record."""
        return [self.work(task) for task in self.board.unfinished_claims(run_id, self.name)]


class DecliningAgent(SwarmAgent):
    """An agent whose layer is not built yet: it says so, on the record, every time.

    It still takes part (it is asked, it answers, its answer is stored) so a
    run's record shows that the layer was requested and why it did not happen.
    """

    pending_issue: ClassVar[str] = "not filed yet"

    @property
    def decline_reason(self) -> str:
        return f"layer not implemented yet: issue {self.pending_issue}"

    def propose(self, task: Task) -> Bid | None:
        if task.layer is not self.layer:
            return None
        return Bid(task_id=task.id, agent=self.agent, value=None,
                   reason=f"{self.name} declines {task.layer.value} for {task.scenario}: "
                          f"{self.decline_reason}")

    def act(self, task: Task) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.declined,
                           reason=f"{self.name} did not act on {task.scenario}: "
                                  f"{self.decline_reason}")


# -- agents that run a scenario -----------------------------------------------


class RunSettings(BaseModel):
    """What ``clnrm swarm run`` passes through to every scenario run (as ``clnrm run`` options)."""

    backend: str = "docker"
    seed: int | None = None
    default_image: str = "clnrm/busybox:latest"
    image_map: dict[str, str] = Field(default_factory=dict)
    artifacts_dir: str | None = None


def run_options(settings: RunSettings | None = None, **extra: Any) -> RunOptions:
    """``clnrm run`` options from the swarm's run settings (None: the defaults);
    ``extra`` adds layer options (``perf=...``)."""
    from pathlib import Path

    from clnrm.runner import RunOptions

    s = settings or RunSettings()
    return RunOptions(backend=s.backend, seed=s.seed, default_image=s.default_image,
                      image_map=dict(s.image_map),
                      artifacts_dir=Path(s.artifacts_dir) if s.artifacts_dir else None, **extra)


def run_status(result: RunResult) -> str:
    """The run's verdict in one word, as memory records it."""
    return {0: "passed", 1: "failed"}.get(result.exit_code, "error")


class ScenarioRunningAgent(SwarmAgent):
    """An agent whose task is one run of the scenario through clnrm's Runner.

    ``act`` is the same for all of them: load the task's TOML, decline on the
    record when the file gives the layer nothing to do, run it exactly as
    ``clnrm run`` would (a file that cannot be set up is a failed task with exit
    code 2, never an exception), remember the run and its failures in memory,
    and report the verdict with facts.  Subclasses override only the hooks
    below; the verdict stays the Runner's unless :meth:`exit_code` says why not.
    """

    verb: ClassVar[str]
    """How the outcome's reason starts: ``"<verb> <summary>"``."""

    def __init__(self, board: Blackboard | None = None, *, name: str | None = None,
                 settings: RunSettings | None = None) -> None:
        super().__init__(board, name=name)
        self.settings = settings or RunSettings()

    # -- the hooks -------------------------------------------------------------
    def declines(self, scenario: Scenario) -> str | None:
        """Why this file gives my layer nothing to do, or None to run it."""
        return None

    def prepare(self, scenario: Scenario) -> Scenario:
        """The scenario as my layer runs it (e.g. without its chaos table)."""
        return scenario

    def options(self) -> RunOptions:
        return run_options(self.settings)

    def headline(self, result: RunResult) -> str:
        """Added to the summary's first line, after the run id."""
        return ""

    def test_lines(self, test: TestResult) -> list[str]:
        """What the summary says about one test beyond its failure message."""
        return []

    def test_records(self, task: Task, name: str, result: RunResult, test: TestResult,
                     tag: dict[str, Scalar]) -> list[Record]:
        """Memory records for one test, besides the run's own record."""
        return []

    def facts(self, result: RunResult) -> dict[str, Scalar]:
        """Layer facts, between the clnrm run id and the duration."""
        return {}

    def exit_code(self, result: RunResult) -> int:
        """The task's verdict as ``clnrm run``'s exit code; ``done`` when 0."""
        return result.exit_code

    # -- the life every one of them shares ------------------------------------
    def act(self, task: Task) -> TaskOutcome:
        from clnrm.errors import ClnrmError
        from clnrm.runner import Runner, make_backend, new_run_id
        from clnrm.scenario import loads_scenario

        clnrm_run = new_run_id()
        try:
            scenario = loads_scenario(task.text, source=task.source)
            why_not = self.declines(scenario)
            if why_not is not None:
                return TaskOutcome(task_id=task.id, agent=self.agent,
                                   status=TaskStatus.declined,
                                   reason=f"{self.name} did not act on {task.scenario}: "
                                          f"{why_not}")
            scenario = self.prepare(scenario)
            options = self.options()
            runner = Runner(options, backend=make_backend(options.backend, clnrm_run))
            result = runner.run([scenario])
        except ClnrmError as exc:
            return TaskOutcome(task_id=task.id, agent=self.agent, status=TaskStatus.failed,
                               exit_code=2, facts={"clnrm_run": clnrm_run},
                               reason=f"{self.layer.value} could not run {task.scenario} "
                                      f"({task.source}): {exc}")
        summary = self.summary(scenario.name, task, result)
        self.board.store.put(self.records(task, scenario.name, result, summary))
        code = self.exit_code(result)
        return TaskOutcome(task_id=task.id, agent=self.agent,
                           status=TaskStatus.done if code == 0 else TaskStatus.failed,
                           exit_code=code, reason=f"{self.verb} {summary}"[:2000],
                           facts={"clnrm_run": result.run_id, **self.facts(result),
                                  "duration_s": round(result.duration_s, 3)})

    def summary(self, name: str, task: Task, result: RunResult) -> str:
        """The run in words: verdict, then each test that did not pass and the layer's lines."""
        parts = [f"{name} ({task.source}) {run_status(result)} as clnrm run {result.run_id}"
                 + self.headline(result)]
        for t in result.tests:
            if t.message and t.outcome.value != "passed":
                parts.append(f"{t.name} {t.outcome.value}: {t.message[:MESSAGE_LIMIT]}")
            parts.extend(self.test_lines(t))
        return "; ".join(parts)

    def records(self, task: Task, name: str, result: RunResult, summary: str) -> list[Record]:
        """The run, tagged with the swarm run and task, then what each test adds."""
        tag: dict[str, Scalar] = {"swarm_run": task.run_id, "task": task.id}
        records: list[Record] = [RunRecord(
            agent=self.agent, run_id=result.run_id, scenario=name, status=run_status(result),
            duration_s=result.duration_s, summary=summary, metadata=tag)]
        for t in result.tests:
            records.extend(self.test_records(task, name, result, t, tag))
        return records


def failure_record(agent: Agent, result: RunResult, test: TestResult, message: str,
                   signature: str, tag: dict[str, Scalar]) -> FailureRecord:
    """One failure of ``test`` in memory, as every scenario-running agent files it."""
    return FailureRecord(agent=agent, run_id=result.run_id, test=test.name, message=message,
                         signature=signature, metadata=tag)
