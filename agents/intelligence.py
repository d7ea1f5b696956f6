"""The intelligence agent: triages failures and flakiness from what memory holds.

Analysis is its own issue and has not landed, so today this agent declines
its tasks on the record instead of inventing an analysis.  It is planned last,
after every other layer of the scenario, because it reads all their results.
"""

from __future__ import annotations

from clnrm.agents.base import DecliningAgent, Layer
from clnrm.memory import Agent


class IntelligenceAgent(DecliningAgent):
    pending_issue = "none filed yet (test-generation layer)"
    agent = Agent.intelligence
    layer = Layer.intelligence
