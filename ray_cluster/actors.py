"""Agents as Ray actors: the only place an agent meets Ray.

Each agent runs in its own actor process and opens the memory itself (an
embedded store is reached through its elected writer, a server over HTTP), so
nothing but small pydantic models crosses the Ray boundary.  Actors restart
(``max_restarts``) and Ray resends the call that was running when one died
(``max_task_retries``); the resent ``work`` finds the agent's own claim on the
board and resumes it, and a task already recorded is returned, not redone.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Final

import structlog
from clnrm.agents.base import Bid, RunSettings, SwarmAgent, Task, TaskOutcome
from clnrm.agents.blackboard import Blackboard
from clnrm.memory import Agent
from clnrm.swarm.session import ENGINE_RESOURCE
from pydantic import BaseModel, Field

log = structlog.get_logger("clnrm.swarm")

SWARM: Final[tuple[Agent, ...]] = (Agent.architect, Agent.orchestration, Agent.performance,
                                   Agent.chaos, Agent.self_healing, Agent.intelligence)
"""Every agent of a swarm run, one actor each."""


RUN_SCENARIOS: Final = frozenset({Agent.orchestration, Agent.performance, Agent.chaos,
                                  Agent.self_healing})
"""Agents whose layer starts containers: placed only on nodes with an engine."""


class AgentSpec(BaseModel):
    """Everything an actor needs to build its agent; pickled once, reused on restarts."""

    agent: Agent
    memory: str
    run_id: str
    settings: RunSettings = Field(default_factory=RunSettings)


AgentFactory = Callable[[Blackboard, str, AgentSpec], SwarmAgent]
"""``(board, claimer name, spec) -> agent``; agents are imported only in their own actor."""


def _agent(path: str, *, runs_scenarios: bool = False) -> AgentFactory:
    """The agent class at ``module:Class``; one that runs scenarios also gets the settings."""
    def make(board: Blackboard, name: str, spec: AgentSpec) -> SwarmAgent:
        module, _, cls = path.partition(":")
        extra: dict[str, Any] = {"settings": spec.settings} if runs_scenarios else {}
        return getattr(importlib.import_module(module), cls)(  # type: ignore[no-any-return]
            board, name=name, **extra)

    return make


AGENT_FACTORIES: Final[dict[Agent, AgentFactory]] = {
    Agent.architect: _agent("clnrm.agents.architect:Architect"),
    Agent.orchestration: _agent("clnrm.agents.orchestrator:OrchestratorAgent", runs_scenarios=True),
    Agent.performance: _agent("clnrm.agents.performance:PerformanceAgent", runs_scenarios=True),
    Agent.chaos: _agent("clnrm.agents.chaos:ChaosAgent", runs_scenarios=True),
    Agent.self_healing: _agent("clnrm.agents.healer:Healer", runs_scenarios=True),
    Agent.intelligence: _agent("clnrm.agents.intelligence:IntelligenceAgent",
                               runs_scenarios=True),  # reads the runs' artifacts folder
}


def build_agent(spec: AgentSpec, board: Blackboard) -> SwarmAgent:
    """The plain agent for ``spec.agent``; its name is the stable claimer identity."""
    return AGENT_FACTORIES[spec.agent](board, f"{spec.agent.value}@{spec.run_id}", spec)


class AgentActor:
    """The body of every agent actor (``ray.remote`` is applied in :func:`start_agents`)."""

    def __init__(self, spec: AgentSpec) -> None:
        from clnrm.memory import open_memory

        self.spec = spec
        self.board = Blackboard(open_memory(spec.memory))
        self.agent = build_agent(spec, self.board)
        self.restarted = _reconstructed()
        self.held = [t.id for t in self.board.unfinished_claims(spec.run_id, self.agent.name)] \
            if self.restarted else []
        if self.restarted:
            log.warning("swarm.agent_restarted", agent=self.agent.name, resumes=self.held)

    def propose(self, tasks: list[Task]) -> list[Bid]:
        return [b for t in tasks if (b := self.agent.propose(t)) is not None]

    def work(self, task: Task) -> TaskOutcome:
        return self.agent.work(task)

    def resume(self) -> list[TaskOutcome]:
        return self.agent.resume(self.spec.run_id)

    def close(self) -> None:
        """Release the memory (a writer hands over); a killed actor needs no call."""
        self.board.store.close()

    def info(self) -> dict[str, Any]:
        return {"agent": self.spec.agent.value, "pid": os.getpid(),
                "incarnation": self.agent.incarnation, "restarted": self.restarted,
                "held": self.held}


def _reconstructed() -> bool:
    import ray

    try:
        with warnings.catch_warnings():  # Ray's own property reads its deprecated actor_id
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # not inside an actor (a plain AgentActor in this process)
        return False


class RayAgentHandle:
    """An :class:`~clnrm.agents.negotiation.AgentHandle` over one agent actor."""

    def __init__(self, agent: Agent, actor: Any) -> None:
        self.agent = agent
        self.actor = actor

    def propose(self, tasks: list[Task]) -> Future[list[Bid]]:
        return self.actor.propose.remote(tasks).future()  # type: ignore[no-any-return]

    def work(self, task: Task) -> Future[TaskOutcome]:
        return self.actor.work.remote(task).future()  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        import ray

        return ray.get(self.actor.info.remote(), timeout=120)  # type: ignore[no-any-return]


def start_agents(memory: str, run_id: str, settings: RunSettings, *,
                 agents: Sequence[Agent] = SWARM, max_restarts: int = 3,
                 max_task_retries: int = 3) -> list[RayAgentHandle]:
    """One restartable actor per agent, named ``<run>-<agent>`` in the ``clnrm`` namespace.

    ``num_cpus=0``: agents wait on Docker and memory, they do not compute, so
    six of them fit a two-core machine next to the containers they start.
    Agents that start containers also ask for a sliver of
    :data:`ENGINE_RESOURCE`, so on a cluster they land only where an engine is.
    """
    import ray

    remote = ray.remote(AgentActor)
    handles = []
    for agent in agents:
        needs = ({ENGINE_RESOURCE: 0.01}
                 if agent in RUN_SCENARIOS and settings.backend == "docker" else {})
        actor = remote.options(  # type: ignore[attr-defined]
            name=f"{run_id}-{agent.value}", num_cpus=0, resources=needs, max_concurrency=1,
            max_restarts=max_restarts, max_task_retries=max_task_retries,
        ).remote(AgentSpec(agent=agent, memory=memory, run_id=run_id, settings=settings))
        handles.append(RayAgentHandle(agent, actor))
    return handles
