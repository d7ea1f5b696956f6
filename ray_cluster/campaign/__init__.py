"""Long autonomous test campaigns: a loop of swarm units recorded exactly once.

    CampaignSpec, UnitSpec, UnitResult, Finding, ...    clnrm.swarm.campaign.model
    Ledger (SQLite, durable across SIGKILL)             clnrm.swarm.campaign.ledger
    run_campaign(ledger, ...)                           clnrm.swarm.campaign.driver
    campaign_app (``clnrm campaign``)                   clnrm.swarm.campaign.cli

The ledger, not the memory, is the campaign's truth: a resumed driver replays its plan and
redoes only the units it planned and never recorded (docs/campaigns.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clnrm.swarm.campaign.ledger import Ledger, LedgerError, campaign_home
    from clnrm.swarm.campaign.model import (
        CampaignSpec,
        CampaignState,
        CampaignStatus,
        FaultChoice,
        Finding,
        UnitResult,
        UnitSpec,
    )

# Lazy, so that mounting ``clnrm.swarm.campaign.cli`` keeps ``clnrm --help`` at typer's cost.
_HOMES = {
    "CampaignSpec": "model", "CampaignState": "model", "CampaignStatus": "model",
    "FaultChoice": "model", "Finding": "model", "UnitResult": "model", "UnitSpec": "model",
    "Ledger": "ledger", "LedgerError": "ledger", "campaign_home": "ledger",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "CampaignSpec",
    "CampaignState",
    "CampaignStatus",
    "FaultChoice",
    "Finding",
    "Ledger",
    "LedgerError",
    "UnitResult",
    "UnitSpec",
    "campaign_home",
]
