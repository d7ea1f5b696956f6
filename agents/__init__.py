"""The agents: plain classes that negotiate through the blackboard in shared memory.

One module per agent (``architect``, ``orchestrator``, ``chaos``,
``performance``, ``healer``, ``intelligence``), the interface they share in
:mod:`clnrm.agents.base` (with :class:`ScenarioRunningAgent`, the life of the three
that run a scenario), the negotiation records in :mod:`clnrm.agents.blackboard` and
the driver of the rounds in :mod:`clnrm.agents.negotiation`.  Nothing here imports
Ray or Chroma: ``ray_cluster/`` wraps agents in actors and ``memory/`` hides
the store.
"""

from __future__ import annotations

from clnrm.agents.base import (
    Bid,
    DecliningAgent,
    Layer,
    RunSettings,
    ScenarioRunningAgent,
    SwarmAgent,
    Task,
    TaskOutcome,
    TaskStatus,
    conflicts,
    precedence,
)
from clnrm.agents.blackboard import Award, Blackboard, Claim, award
from clnrm.agents.negotiation import AgentHandle, Decision, LocalHandle, Swarm, SwarmReport

__all__ = [
    "AgentHandle",
    "Award",
    "Bid",
    "Blackboard",
    "Claim",
    "Decision",
    "DecliningAgent",
    "Layer",
    "LocalHandle",
    "RunSettings",
    "ScenarioRunningAgent",
    "Swarm",
    "SwarmAgent",
    "SwarmReport",
    "Task",
    "TaskOutcome",
    "TaskStatus",
    "award",
    "conflicts",
    "precedence",
]
