"""The chaos agent: injects the faults of ``[chaos]`` while a scenario runs.

Fault injection is its own issue and has not landed, so today this agent
declines every chaos task, on the record and with that reason, instead of
running the scenario without faults and calling it a chaos run.  When the
layer lands, ``act`` runs the scenario under ``Scenario.chaos.faults`` and the
plan's conflict rule (performance measures before chaos perturbs) still holds.
"""

from __future__ import annotations

from agents.base import DecliningAgent, Layer
from memory import Agent


class ChaosAgent(DecliningAgent):
    pending_issue = "#7 (chaos layer)"
    agent = Agent.chaos
    layer = Layer.chaos
