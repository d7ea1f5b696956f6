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
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple

from clnrm.memory import Agent, FailureRecord, Record, RunRecord
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from clnrm.agents.blackboard import Blackboard
    from clnrm.memory import MemoryStore

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
    """An agent's answer to "will you take this task?"; ``value`` None is a decline.

    A bid states what the task is worth to the bidder (``value``, 0..1, read from the
    memory: see :mod:`clnrm.agents.evidence`) and what it will cost (``cost_s``: the
    median duration of the bidder's past runs of the scenario, or its layer's stated
    default), with the memory facts behind both in ``evidence``, so the award rule can
    weigh value per second and the decision can quote why.  ``cost_s`` None means
    the bidder does not know: the award rule charges its layer's default and says so.
    """

    task_id: str
    agent: Agent
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: str
    cost_s: float | None = Field(default=None, gt=0.0)
    evidence: str = ""

    @property
    def declined(self) -> bool:
        return self.value is None

    @property
    def cost(self) -> float:
        """Seconds charged by the award rule: the stated cost, else the layer's default."""
        return self.cost_s if self.cost_s is not None else DEFAULT_COST_S[layer_of(self.agent)]

    @property
    def per_second(self) -> float:
        """Value per second of cost: what the award rule ranks (0 for a decline)."""
        return (self.value or 0.0) / self.cost


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


# -- the conflict rules --------------------------------------------------------


class ConflictRule(NamedTuple):
    """Two layers that never work on one scenario at the same time, and who goes first."""

    first: Layer
    second: Layer
    name: str
    why: str


CONFLICT_RULES: Final[tuple[ConflictRule, ...]] = (
    ConflictRule(Layer.performance, Layer.chaos, "measurement before perturbation",
                 "a baseline measured under injected faults would hide regressions"),
    ConflictRule(Layer.self_healing, Layer.performance, "healing before re-measuring",
                 "a measurement taken while remediations change the environment, or of a "
                 "failure not healed yet, would be kept as the scenario's performance"),
)
"""The conflict rules, as data: the architect chains each pair in a plan, the board
applies them again at claim time (a plan's own ``after`` edge between the two wins: a
healer planned after a measurement waits for it, and measures nothing)."""

CONFLICTING_LAYERS: Final[frozenset[frozenset[Layer]]] = frozenset(
    frozenset({r.first, r.second}) for r in CONFLICT_RULES)
"""Layers that must never work on the same scenario at the same time."""

PRECEDENCE: Final[tuple[Layer, ...]] = (
    Layer.architecture, Layer.orchestration, Layer.performance, Layer.chaos,
    Layer.self_healing, Layer.intelligence,
)
"""Plan order (the healer after every run whose failures it would mend)."""

DEFAULT_COST_S: Final[dict[Layer, float]] = {
    Layer.architecture: 1.0, Layer.orchestration: 30.0, Layer.performance: 60.0,
    Layer.chaos: 60.0, Layer.self_healing: 90.0, Layer.intelligence: 5.0,
}
"""A layer's cost in seconds when the memory has no past run to measure it by: one
scenario run is about 30 s on the 2-core CI machine (demo), a performance or chaos run
twice that (iterations, steady state and recovery), healing a run and a healed rerun
plus its remediation; architecture and intelligence run nothing."""


def layer_of(agent: Agent) -> Layer:
    """The layer an agent owns."""
    return Layer.architecture if agent is Agent.architect else Layer(agent.value)


def conflicts(a: Layer, b: Layer) -> bool:
    return frozenset({a, b}) in CONFLICTING_LAYERS


def precedence(a: Layer, b: Layer) -> tuple[Layer, Layer, str]:
    """``(first, second, reason)`` for two conflicting layers on one scenario.

    *Measurement before perturbation*: performance measures its baseline on an
    undisturbed system, and only then may chaos inject faults.  A baseline measured
    under injected faults would make every later regression look normal, whereas
    chaos loses nothing by waiting.  *Healing before re-measuring*: a measurement
    that comes after a healing waits for it, because remediations change the
    environment (a restart, more memory) and an unhealed failure is no performance.
    """
    rule = next(r for r in CONFLICT_RULES if {r.first, r.second} == {a, b})
    return rule.first, rule.second, (f"conflict rule '{rule.name}': {rule.first.value} goes "
                                     f"before {rule.second.value} on the same scenario, "
                                     f"because {rule.why}")


def first_task_id(task: Task, layer: Layer) -> str:
    """The id of the task ``layer``'s agent does first when it wins ``task`` (another
    layer's): one per scenario and layer, e.g. ``<run>/<scenario>/self_healing-first``."""
    return f"{task.id.rsplit('/', 1)[0]}/{layer.value}-first"


# -- agents ------------------------------------------------------------------


def scenario_name(task: Task) -> str:
    """The scenario's name as memory records it (``[meta] name``), else the task's slug."""
    from clnrm.errors import ClnrmError
    from clnrm.scenario import loads_scenario

    try:
        return loads_scenario(task.text, source=task.source).name
    except ClnrmError:
        return task.scenario


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
        """A full bid for my own layer, at the cost my past runs of the scenario measured;
        no opinion (None) on anyone else's.  Agents with evidence override this."""
        if task.layer is not self.layer:
            return None
        cost, why = self.cost(scenario_name(task))
        return Bid(task_id=task.id, agent=self.agent, value=1.0, cost_s=cost, evidence=why,
                   reason=f"{self.name} does {self.layer.value} work; {why}")

    @property
    def memory(self) -> MemoryStore | None:
        """The shared memory bids read, or None (an agent without a board bids blind)."""
        return self._board.store if self._board is not None else None

    def cost(self, scenario: str, *, agent: Agent | None = None, factor: float = 1.0,
             what: str = "") -> tuple[float, str]:
        """Seconds my task on ``scenario`` will take and why: the median duration of
        ``agent``'s (mine) past runs of it in memory, else my layer's stated default."""
        from clnrm.agents.evidence import past_cost

        return past_cost(self.memory, scenario, agent or self.agent, self.layer,
                         factor=factor, what=what)

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

    # -- the bid ---------------------------------------------------------------
    def propose(self, task: Task) -> Bid | None:
        """My layer's tasks only: a decline when the file gives my layer nothing to do,
        else the value :meth:`value` reads from memory at the cost my past runs measured."""
        from clnrm.errors import ClnrmError
        from clnrm.scenario import loads_scenario

        if task.layer is not self.layer:
            return None
        try:
            scenario = loads_scenario(task.text, source=task.source)
        except ClnrmError:
            return super().propose(task)  # act reports the bad file as a failed task
        why_not = self.declines(scenario)
        if why_not is not None:
            return Bid(task_id=task.id, agent=self.agent, value=None,
                       reason=f"{self.name} declines {task.layer.value} for {task.scenario}: "
                              f"{why_not}")
        value, why = self.value(task, scenario)
        cost, cost_why = self.cost(scenario.name)
        evidence = f"{why}; {cost_why}"
        return Bid(task_id=task.id, agent=self.agent, value=value, cost_s=cost,
                   evidence=evidence, reason=f"{self.name}: {evidence}")

    def value(self, task: Task, scenario: Scenario) -> tuple[float, str]:
        """What my run of ``scenario`` is worth (0..1) and why, from memory."""
        return 1.0, f"only {self.layer.value} can run {scenario.name}'s {self.layer.value} work"

    def verdict_failed(self, task: Task) -> TaskOutcome | None:
        """The scenario's failed verdict run among my task's dependencies, if any."""
        from clnrm.agents.evidence import failed_verdict

        if self._board is None or not task.after:
            return None
        return failed_verdict(self.board.outcomes(list(task.after)), task)

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

    def run_tags(self, result: RunResult) -> dict[str, Scalar]:
        """Metadata on every record of the run (``m.<key>``), for later bids to filter on."""
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
        tag: dict[str, Scalar] = {"swarm_run": task.run_id, "task": task.id, "scenario": name,
                                  **self.run_tags(result)}
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
