"""The agents: plain classes that negotiate through the blackboard in shared memory.

One module per agent (``architect``, ``orchestrator``, ``chaos``,
``performance``, ``healer``, ``intelligence``), the interface they share in
:mod:`agents.base` and the negotiation records in :mod:`agents.blackboard`.
Nothing here imports Ray or Chroma: ``ray_cluster/`` wraps agents in actors
and ``memory/`` hides the store.
"""

from __future__ import annotations

from agents.base import (
    Bid,
    DecliningAgent,
    Layer,
    SwarmAgent,
    Task,
    TaskOutcome,
    TaskStatus,
    conflicts,
    precedence,
)
from agents.blackboard import Award, Blackboard, Claim, award

__all__ = [
    "Award",
    "Bid",
    "Blackboard",
    "Claim",
    "DecliningAgent",
    "Layer",
    "SwarmAgent",
    "Task",
    "TaskOutcome",
    "TaskStatus",
    "award",
    "conflicts",
    "precedence",
]
