"""What agents remember: typed records, one pydantic model per kind.

Agents exchange these and never see the store behind them.  Every record has a
deterministic ``id`` derived from its natural key (a run id, a test name, a
failure message...), so a retried write lands on the same id and an upsert makes
it idempotent.  Ids are prefixed with the kind (``failure:3fa9...``) so the same
natural key can never collide across kinds.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

Scalar: TypeAlias = str | int | float | bool
"""What Chroma accepts as a metadata value; extra metadata is limited to it."""


class Agent(StrEnum):
    """The swarm's namespaces (``swarm/<value>``), as in the seed's memory schema."""

    architect = "architect"
    orchestration = "orchestration"
    intelligence = "intelligence"
    chaos = "chaos"
    performance = "performance"
    self_healing = "self_healing"

    @property
    def namespace(self) -> str:
        return f"swarm/{self.value}"

    @classmethod
    def parse(cls, value: str | Agent) -> Agent:
        """Accept ``chaos``, ``swarm/chaos`` and the agents' own names (``healer``)."""
        if isinstance(value, Agent):
            return value
        name = value.strip().removeprefix("swarm/").replace("-", "_")
        name = _AGENT_ALIASES.get(name, name)
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(a.value for a in cls)
            raise ValueError(f"unknown agent {value!r}; expected one of: {valid}") from None


_AGENT_ALIASES: dict[str, str] = {"orchestrator": "orchestration", "healer": "self_healing",
                                  "healing": "self_healing"}


class Kind(StrEnum):
    """Record kinds; each is stored in its own collection so a kind filter is free."""

    run = "run"
    test_result = "test_result"
    failure = "failure"
    remediation = "remediation"
    baseline = "baseline"
    pattern = "pattern"
    blackboard = "blackboard"


def _digest(*parts: object) -> str:
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class RecordBase(BaseModel):
    """Fields every record has; subclasses add their own and say what identifies them."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    kind: Kind
    id: str = ""
    agent: Agent
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    run_id: str | None = None
    metadata: dict[str, Scalar] = Field(default_factory=dict)

    #: Fields whose values make up the natural key hashed into ``id``.
    identity: ClassVar[tuple[str, ...]] = ()

    @field_validator("agent", mode="before")
    @classmethod
    def _agent(cls, value: Any) -> Any:
        return Agent.parse(value) if isinstance(value, str) else value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive datetimes are taken as UTC: the store compares instants, not wall clocks.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _deterministic_id(self) -> RecordBase:
        prefix = f"{self.kind.value}:"
        if not self.id:
            self.id = prefix + _digest(*(getattr(self, f) for f in self.identity))
        elif not self.id.startswith(prefix):
            self.id = prefix + self.id
        return self

    @property
    def namespace(self) -> str:
        return self.agent.namespace

    def embedding_text(self) -> str:
        """The prose a similarity query is matched against."""
        raise NotImplementedError


class RunRecord(RecordBase):
    """One ``clnrm run``: what ran and how it ended."""

    kind: Literal[Kind.run] = Kind.run
    run_id: str
    scenario: str
    status: str
    duration_s: float | None = None
    summary: str = ""
    identity: ClassVar[tuple[str, ...]] = ("run_id",)

    def embedding_text(self) -> str:
        return f"run {self.scenario} {self.status} {self.summary}"


class TestResultRecord(RecordBase):
    """The outcome of one test of a run."""

    __test__ = False  # not a pytest class, despite the name
    kind: Literal[Kind.test_result] = Kind.test_result
    run_id: str
    test: str
    status: str
    duration_s: float | None = None
    message: str = ""
    identity: ClassVar[tuple[str, ...]] = ("run_id", "test")

    def embedding_text(self) -> str:
        return f"{self.test} {self.status} {self.message}"


class FailureRecord(RecordBase):
    """A failed expectation or crash, the thing the healer and intelligence look up."""

    kind: Literal[Kind.failure] = Kind.failure
    test: str
    message: str
    signature: str = ""
    service: str | None = None
    identity: ClassVar[tuple[str, ...]] = ("run_id", "test", "message")

    def embedding_text(self) -> str:
        return f"{self.test} {self.service or ''} {self.signature} {self.message}"


class RemediationOutcome(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    reverted = "reverted"


class RemediationRecord(RecordBase):
    """A fix tried for a failure and whether it worked; re-put with the outcome to update."""

    kind: Literal[Kind.remediation] = Kind.remediation
    failure_id: str
    action: str
    outcome: RemediationOutcome = RemediationOutcome.pending
    detail: str = ""
    identity: ClassVar[tuple[str, ...]] = ("failure_id", "action")

    def embedding_text(self) -> str:
        return f"{self.action} {self.outcome.value} {self.detail}"


class BaselineRecord(RecordBase):
    """A performance figure that later runs are compared against."""

    kind: Literal[Kind.baseline] = Kind.baseline
    scenario: str
    metric: str
    value: float
    unit: str = ""
    identity: ClassVar[tuple[str, ...]] = ("scenario", "metric", "run_id")

    def embedding_text(self) -> str:
        return f"baseline {self.scenario} {self.metric} {self.unit}"


class PatternRecord(RecordBase):
    """A recurring shape found across failures, with how sure the finder is."""

    kind: Literal[Kind.pattern] = Kind.pattern
    name: str
    description: str
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    support: int = 0
    identity: ClassVar[tuple[str, ...]] = ("name",)

    def embedding_text(self) -> str:
        return f"{self.name} {self.description}"


class BlackboardAction(StrEnum):
    post = "post"
    claim = "claim"
    bid = "bid"
    decision = "decision"


class BlackboardEntry(RecordBase):
    """One move in the agents' negotiation on a topic: post, claim, bid or decision."""

    kind: Literal[Kind.blackboard] = Kind.blackboard
    topic: str
    action: BlackboardAction
    reason: str
    bid: float | None = None
    identity: ClassVar[tuple[str, ...]] = ("topic", "agent", "action", "reason")

    def embedding_text(self) -> str:
        return f"{self.topic} {self.action.value} {self.reason}"


Record: TypeAlias = Annotated[
    RunRecord | TestResultRecord | FailureRecord | RemediationRecord | BaselineRecord
    | PatternRecord | BlackboardEntry,
    Field(discriminator="kind"),
]
"""Any record; pydantic picks the model from ``kind``."""

RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)
RECORDS_ADAPTER: TypeAdapter[list[Record]] = TypeAdapter(list[Record])

_BASE_KEYS = frozenset(RecordBase.model_fields)


def parse_record(data: str | bytes | dict[str, Any]) -> Record:
    """Validate one record from JSON text or a dict (raises pydantic's ValidationError)."""
    if isinstance(data, str | bytes):
        return RECORD_ADAPTER.validate_json(data)
    return RECORD_ADAPTER.validate_python(data)


def flat_metadata(record: RecordBase) -> dict[str, Scalar]:
    """Scalar-only metadata for Chroma: what ``where`` filters may name.

    The record's own scalar fields keep their names, ``created_at`` becomes epoch
    seconds (so ``forget --before`` is a range filter), ``None`` is dropped and
    the free-form metadata is prefixed ``m.``.
    """
    flat: dict[str, Scalar] = {"kind": record.kind.value, "agent": record.agent.value,
                               "namespace": record.namespace,
                               "created_at": record.created_at.timestamp()}
    if record.run_id is not None:
        flat["run_id"] = record.run_id
    for name in type(record).model_fields:
        if name in _BASE_KEYS:
            continue
        value = getattr(record, name)
        if isinstance(value, StrEnum):
            flat[name] = value.value
        elif isinstance(value, str | int | float | bool):
            flat[name] = value
    for key, value in record.metadata.items():
        flat[f"m.{key}"] = value
    return flat
