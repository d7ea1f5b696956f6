"""The performance agent: repeats a scenario and compares its timings with a baseline.

Measuring is its own issue and has not landed, so today this agent declines
every performance task with that reason rather than report numbers it never
measured.  Its place in the plan is already fixed: before chaos on the same
scenario (the conflict rule in :mod:`agents.base`), because a baseline must be
measured on an undisturbed system.
"""

from __future__ import annotations

from agents.base import DecliningAgent, Layer
from memory import Agent


class PerformanceAgent(DecliningAgent):
    pending_issue = "#8 (performance layer)"
    agent = Agent.performance
    layer = Layer.performance
