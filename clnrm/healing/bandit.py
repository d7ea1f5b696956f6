"""Which remediation to try next: a seeded contextual Thompson-sampling bandit.

One Beta posterior per (failure class, context, remediation) and one per (failure
class, remediation) pooled over contexts; a choice samples each candidate from
Beta(1 + s_ctx + w*s_class, 1 + f_ctx + w*f_class) and takes the best sample per
expected second (cheaper fixes win a tie of odds).  So a remediation learned on
``db`` (postgres, tcp probe) is tried first on the next ``db`` failure, and a
different service of the same class starts from the class's pooled experience.

It learns magnitudes too: a scalable remediation (readiness x2/x4/x8, memory x2/x4/x8,
restarts 1/2/4...) is tried at its smallest step when nothing is known, and escalated
one try at a time; the level that healed is kept per (class, context, remediation), so
the next failure of that class in that context starts there, and per failure signature
(scenario and test), so a second run of the same broken scenario goes straight to the
fix that healed it (:meth:`known_fix`).  A try that failed at a level below the one that
then healed in the same heal was too small a dose, not a wrong remediation: it is not
counted against the remediation's odds (its seconds are).

The shape is Ray Tune's searcher: two verbs (:meth:`suggest`, :meth:`observe`) and
checkpointable state (:meth:`state` / :meth:`from_state`); outcomes live in the shared
memory as ``RemediationRecord``s (:class:`RemediationLedger`), so a killed healer
loses nothing and another process or swarm sharing the memory starts where this
one stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, Field

from clnrm.healing.model import Classification, FailureContext

if TYPE_CHECKING:
    from clnrm.memory import MemoryStore, RemediationRecord

POOL_WEIGHT: Final = 0.5
"""How much a class's experience in other contexts counts against this context's own."""


class Arm(BaseModel):
    successes: float = 0.0
    failures: float = 0.0
    cost_s: float = 0.0  # total seconds spent on tries

    @property
    def tries(self) -> float:
        return self.successes + self.failures

    @property
    def mean_cost(self) -> float:
        return self.cost_s / self.tries if self.tries else 0.0


class BanditState(BaseModel):
    """The whole learned state; JSON-checkpointable, rebuilt from memory when lost."""

    seed: int = 0
    draws: int = 0  # how many choices were made (the RNG stream position)
    arms: dict[str, Arm] = Field(default_factory=dict)  # "class|context|action" -> arm
    seen: list[str] = Field(default_factory=list)  # record ids folded in (idempotence)
    levels: dict[str, int] = Field(default_factory=dict)  # "class|context|action" -> level
    fixes: dict[str, tuple[str, int]] = Field(default_factory=dict)  # "class|signature"
    misses: dict[str, int] = Field(default_factory=dict)  # "class|signature|action" -> level
    doses: dict[str, list[int]] = Field(default_factory=dict)  # "heal|action" -> failed levels
    healed: dict[str, int] = Field(default_factory=dict)  # "heal|action" -> level that healed


def context_key(context: FailureContext) -> str:
    return ",".join(f"{k}={v}" for k, v in context.features().items())


class RemediationBandit:
    """Seeded, so one seed and one history give the same choices."""

    def __init__(self, seed: int = 0, *, state: BanditState | None = None) -> None:
        self._state = state or BanditState(seed=seed)
        self._seen = set(self._state.seen)

    # -- the two verbs ----------------------------------------------------------
    def suggest(self, diag: Classification, names: Sequence[str]) -> str | None:
        """The remediation to try next among ``names`` (already filtered to fit)."""
        import numpy as np

        if not names:
            return None
        cls, ctx = diag.failure_class.value, context_key(diag.context)
        # one generator per draw, from (seed, draw number): a restored checkpoint
        # continues the same stream without pickling the generator
        rng = np.random.default_rng([self._state.seed, self._state.draws])
        self._state.draws += 1
        best, best_score = names[0], -1.0
        unknown_cost = self._class_cost(cls)
        for name in names:
            own = self._arm(cls, ctx, name)
            pool = self._arm(cls, "*", name)
            a = 1.0 + own.successes + POOL_WEIGHT * (pool.successes - own.successes)
            b = 1.0 + own.failures + POOL_WEIGHT * (pool.failures - own.failures)
            p = float(rng.beta(a, b))
            # an untried remediation is not free: until it is tried it costs what a try
            # of this class costs (presuming 0 s favoured every untried arm over one that
            # had just healed, so a learned class kept exploring)
            cost = pool.mean_cost if pool.tries else unknown_cost
            score = p / (1.0 + cost / 60.0)  # a minute of cost halves a sure fix's score
            if score > best_score:
                best, best_score = name, score
        return best

    def observe(self, diag: Classification, name: str, success: bool, cost_s: float, *,
                record_id: str | None = None, level: int = 1, signature: str | None = None,
                heal: str | None = None) -> None:
        """Fold in one outcome (once per ``record_id``): ``level`` is the magnitude tried,
        ``signature`` the failing test's identity, ``heal`` the id shared by one heal's
        tries."""
        self._fold(diag.failure_class.value, context_key(diag.context), name, success,
                   cost_s, record_id, level=level, signature=signature, heal=heal)

    def start_level(self, diag: Classification, name: str) -> int:
        """The level to try ``name`` at first: the highest that healed this class in this
        context (1 when none did)."""
        key = f"{diag.failure_class.value}|{context_key(diag.context)}|{name}"
        return self._state.levels.get(key, 1)

    def known_fix(self, diag: Classification, signature: str) -> tuple[str, int] | None:
        """The remediation and level that last healed this very failure (class and test)."""
        return self._state.fixes.get(f"{diag.failure_class.value}|{signature}")

    def known_misses(self, diag: Classification, signature: str) -> dict[str, int]:
        """Per remediation, the highest level that failed on this very failure before: a
        second run starts above it (where the last one stopped), not from scratch."""
        head = f"{diag.failure_class.value}|{signature}|"
        return {k.removeprefix(head): lv for k, lv in self._state.misses.items()
                if k.startswith(head)}

    def _fold(self, cls: str, ctx: str, name: str, success: bool, cost_s: float,
              record_id: str | None, *, level: int = 1, signature: str | None = None,
              heal: str | None = None) -> None:
        if record_id is not None:
            if record_id in self._seen:
                return
            self._seen.add(record_id)
            self._state.seen.append(record_id)
        dose = f"{heal}|{name}" if heal else None
        counted = True  # a too-small dose of what then healed is no evidence against it
        if dose is not None and success:
            self._state.healed[dose] = max(level, self._state.healed.get(dose, 0))
            undone = [lv for lv in self._state.doses.pop(dose, []) if lv < level]
            for key_ctx in (ctx, "*"):
                self._arm(cls, key_ctx, name).failures -= len(undone)
        elif dose is not None:
            if self._state.healed.get(dose, 0) > level:
                counted = False
            else:
                self._state.doses.setdefault(dose, []).append(level)
        for key_ctx in (ctx, "*"):
            arm = self._arm(cls, key_ctx, name)
            if success:
                arm.successes += 1
            elif counted:
                arm.failures += 1
            arm.cost_s += cost_s
        if success:
            key = f"{cls}|{ctx}|{name}"
            self._state.levels[key] = max(level, self._state.levels.get(key, 1))
            if signature:
                self._state.fixes[f"{cls}|{signature}"] = (name, level)
        elif signature:
            key = f"{cls}|{signature}|{name}"
            self._state.misses[key] = max(level, self._state.misses.get(key, 0))

    def _class_cost(self, cls: str) -> float:
        """Mean seconds of one try of any remediation on this class (0 before any)."""
        tried = [arm for key, arm in self._state.arms.items()
                 if key.startswith(f"{cls}|*|") and arm.tries]
        tries = sum(arm.tries for arm in tried)
        return sum(arm.cost_s for arm in tried) / tries if tries else 0.0

    def _arm(self, cls: str, ctx: str, name: str) -> Arm:
        return self._state.arms.setdefault(f"{cls}|{ctx}|{name}", Arm())

    # -- state --------------------------------------------------------------------
    def state(self) -> BanditState:
        return self._state.model_copy(deep=True)

    @classmethod
    def from_state(cls, state: BanditState) -> RemediationBandit:
        return cls(state=state.model_copy(deep=True))

    def save(self, path: str) -> None:
        from pathlib import Path

        Path(path).write_text(self._state.model_dump_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str) -> RemediationBandit:
        from pathlib import Path

        return cls(state=BanditState.model_validate_json(Path(path).read_text("utf-8")))

    def fold_records(self, records: Iterable[RemediationRecord]) -> int:
        """Learn from remembered outcomes (idempotent by record id); returns how many new."""
        before = len(self._seen)
        for rec in records:
            if rec.outcome.value not in ("succeeded", "failed"):
                continue
            meta = rec.metadata
            cls = str(meta.get("failure_class", ""))
            if not cls:
                continue
            self._fold(cls, str(meta.get("context", "")), rec.action,
                       rec.outcome.value == "succeeded", float(meta.get("cost_s", 0.0)),
                       rec.id, level=int(meta.get("level", 1) or 1),
                       signature=str(meta.get("signature") or "") or None,
                       heal=str(meta.get("heal") or "") or None)
        return len(self._seen) - before

    def stats(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per class, per remediation (pooled over contexts): tries, successes, mean cost,
        and the posterior mean (the learned preference)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for key, arm in sorted(self._state.arms.items()):
            cls, ctx, name = key.split("|", 2)
            if ctx != "*" or not arm.tries:
                continue
            out.setdefault(cls, {})[name] = {
                "tries": arm.tries, "successes": arm.successes,
                "mean_cost_s": round(arm.mean_cost, 3),
                "preference": round((1 + arm.successes) / (2 + arm.tries), 3),
                "level": max((lv for k, lv in self._state.levels.items()
                              if k.startswith(f"{cls}|") and k.endswith(f"|{name}")),
                             default=1)}
        return out


class FixedOrder:
    """The baseline: the catalog order, no memory (what the bench compares against)."""

    def suggest(self, diag: Classification, names: Sequence[str]) -> str | None:
        return names[0] if names else None

    def observe(self, diag: Classification, name: str, success: bool, cost_s: float, *,
                record_id: str | None = None, level: int = 1, signature: str | None = None,
                heal: str | None = None) -> None:
        return None

    def start_level(self, diag: Classification, name: str) -> int:
        return 1

    def known_fix(self, diag: Classification, signature: str) -> tuple[str, int] | None:
        return None

    def known_misses(self, diag: Classification, signature: str) -> dict[str, int]:
        return {}


class RemediationLedger:
    """The bandit's outcomes in the shared memory (``swarm/self_healing``).

    Each try is put the moment it ends, so a killed healer loses at most the try it
    was in; :meth:`bandit` rebuilds the learned state from every record there.
    """

    def __init__(self, store: MemoryStore, *, run_id: str | None = None) -> None:
        self.store = store
        self.run_id = run_id

    def records(self) -> list[RemediationRecord]:
        from clnrm.memory import Kind, RemediationRecord

        return [r for r in self.store.records(Kind.remediation)
                if isinstance(r, RemediationRecord) and "failure_class" in r.metadata]

    def bandit(self, seed: int = 0) -> RemediationBandit:
        bandit = RemediationBandit(seed)
        bandit.fold_records(self.records())
        return bandit

    def remember(self, diag: Classification, *, test: str, scenario: str, action: str,
                 success: bool, cost_s: float, attempt: int, detail: str, level: int = 1,
                 params: dict[str, Any] | None = None, signature: str | None = None,
                 heal: str | None = None) -> RemediationRecord:
        from clnrm.memory import Agent, RemediationOutcome, RemediationRecord

        ctx = context_key(diag.context)
        failure_id = _digest(self.run_id, scenario, test, attempt, action,
                             datetime.now(UTC).isoformat())
        service = diag.context.service or "-"
        outcome = "fixed" if success else "not fixed"
        record = RemediationRecord(
            agent=Agent.self_healing, run_id=self.run_id, failure_id=failure_id,
            action=action,
            outcome=RemediationOutcome.succeeded if success else RemediationOutcome.failed,
            detail=(f"the {diag.failure_class.value.replace('_', ' ')} "
                    f"({diag.failure_class.value}) on {service} in {test} was {outcome} by "
                    f"{action}: {detail}; evidence: {diag.evidence_text[:300]}"),
            metadata={"failure_class": diag.failure_class.value, "context": ctx,
                      "cost_s": round(cost_s, 3), "test": test, "scenario": scenario,
                      "service": service, "attempt": attempt, "level": level,
                      "signature": signature or "", "heal": heal or "",
                      **{f"param_{k}": v for k, v in (params or {}).items()},
                      **{f"ctx_{k}": v for k, v in diag.context.features().items()}})
        self.store.put([record])
        return record


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


__all__ = ["BanditState", "FixedOrder", "RemediationBandit", "RemediationLedger",
           "context_key"]
