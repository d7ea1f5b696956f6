"""The campaign's data: what a campaign is, what one unit is, what it found.

Plain pydantic models, no Ray, no SQLite: the ledger (:mod:`clnrm.swarm.campaign.ledger`)
stores them as JSON, the driver plans and records them, ``campaign status --format json``
prints :class:`CampaignStatus`.  A unit's id is derived from the campaign id and its index
(``<campaign>/u00042``), so planning the same unit twice names the same row: that is what
makes "record once" a primary key rather than a promise.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any, Final, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

Scalar: TypeAlias = str | int | float | bool

# What a unit may do, in the order the swarm's negotiation orders them.
UNIT_KINDS = ("run", "generate", "chaos", "performance", "heal")


class CampaignState(StrEnum):
    """``running`` while a driver owns it (or owned it and died: ``status`` tells the two
    apart by the owner's heartbeat), ``stopped`` resumable, ``done`` budget spent,
    ``failed`` nothing could continue (resumable too once the cause is fixed)."""

    running = "running"
    stopped = "stopped"
    done = "done"
    failed = "failed"


class CampaignSpec(BaseModel):
    """What ``campaign start`` was asked; stored once, never changed.  The files' text is
    kept so a resume runs what the start ran even if the files changed since."""

    model_config = ConfigDict(frozen=True)

    id: str
    paths: list[str]
    files: list[tuple[str, str]]  # (path, TOML text) at start
    budget_units: int | None = None
    duration_s: float | None = None
    workers: int = 1
    address: str | None = None
    memory: str
    seed: int = 0
    created_at: str


class FaultChoice(BaseModel):
    """The fault the explorer picked for one unit and why (explore: never or rarely tried;
    exploit: it found a weakness before)."""

    model_config = ConfigDict(frozen=True)

    fault: str
    target: str
    params: dict[str, Scalar] = Field(default_factory=dict)
    explore: bool
    reason: str


def unit_id(campaign_id: str, index: int) -> str:
    """The deterministic id of unit ``index``: the ledger's primary key."""
    return f"{campaign_id}/u{index:05d}"


class UnitSpec(BaseModel):
    """One planned unit: which scenario, which kinds of work, which fault, which seed."""

    model_config = ConfigDict(frozen=True)

    campaign_id: str
    index: int
    id: str
    scenario: str  # a path from CampaignSpec.files
    kinds: list[str]
    fault: FaultChoice | None = None
    seed: int


EXPLORED_PREFIX: Final = "campaign_"
"""Names of the faults (and expectations) a campaign adds, so a report tells them apart."""

_EXPLORED_SUFFIX: Final = re.compile(rf"@{EXPLORED_PREFIX}[A-Za-z0-9_]+")


def finding_key(failure_class: str, service: str, fault: str, expectation: str) -> str:
    """Two failures are the same finding when these four agree.

    An expectation a campaign declared again for an explored fault
    (``no_single_point_of_failure@campaign_kill_api``) is the file's own bar under that
    fault; the fault and the service are in the key already, so the suffix is left out:
    a negative's ``api`` killed and an explored kill of ``api`` judged by the same bar
    are one finding, not two.
    """
    expectation = _EXPLORED_SUFFIX.sub("", expectation)
    raw = "\x1f".join((failure_class, service, fault, expectation)).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class Finding(BaseModel):
    """A weakness a campaign found, deduplicated by :attr:`key`; ``units`` lists every unit
    that saw it (``occurrences`` counts them), ``reproducer`` is a minimal .clnrm.toml."""

    key: str
    failure_class: str
    service: str
    fault: str
    expectation: str
    message: str
    first_unit: str
    units: list[str] = Field(default_factory=list)
    occurrences: int = 1
    reproducer: str | None = None
    verified_runs: int = 0
    verified_failures: int = 0


class UnitResult(BaseModel):
    """What one unit ended with; recorded once per unit id."""

    unit: str
    index: int
    outcome: Literal["passed", "failed", "error"]
    finding: str | None = None  # Finding.key
    duration_s: float
    worker: str
    attempt: int = 1
    facts: dict[str, Scalar] = Field(default_factory=dict)
    recorded_at: float | None = None  # time.time() when the ledger recorded it


class CampaignStatus(BaseModel):
    """``campaign status ID --format json``: the issue's shape, field for field."""

    id: str
    state: CampaignState
    reason: str = ""  # why it is in that state: "budget of 50 unit(s) spent", "driver gone"
    units_planned: int
    units_done: int
    results: list[dict[str, Any]]  # {"unit", "outcome", "finding"?}
    findings: list[Finding]


__all__ = [
    "EXPLORED_PREFIX",
    "UNIT_KINDS",
    "CampaignSpec",
    "CampaignState",
    "CampaignStatus",
    "FaultChoice",
    "Finding",
    "Scalar",
    "UnitResult",
    "UnitSpec",
    "finding_key",
    "unit_id",
]
