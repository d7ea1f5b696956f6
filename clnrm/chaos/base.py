"""The fault plugin contract.

A fault is a class with a typed config, ``inject()`` and ``rollback()``, so the
engine can treat twenty-odd very different failures (a proxy toxic, a paused
container, a lowered rlimit) the same way: schedule it, record it on the timeline,
and undo it on every exit path.  ``undo_record``/``undo`` exist for the one exit
path with no Python left to run (SIGKILL): the engine writes the record to the run's
journal before injecting, and ``clnrm gc`` replays ``undo`` from it later.

Third parties add faults through the ``clnrm_fault_types`` hook (see
:mod:`clnrm.hookspecs`), exactly like service types.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from clnrm.chaos.context import ChaosContext, UndoEnv

Category = Literal["network", "container", "resource", "application"]
CATEGORIES: tuple[Category, ...] = ("network", "container", "resource", "application")


class FaultConfig(BaseModel):
    """Base of every fault's own parameters (the keys of ``[[chaos.faults]]`` that are not
    scheduling keys).  Unknown keys are errors so a typo is caught at load time."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


C = TypeVar("C", bound=FaultConfig)
"""A fault's own config type: ``class Kill(Fault[KillConfig])`` types ``self.config``."""


class Fault(ABC, Generic[C]):
    """One injectable failure of one target service, generic over its config type.

    Subclasses set the class variables and implement :meth:`inject` and
    :meth:`rollback`.  The engine guarantees: ``rollback`` is called exactly once
    after a successful ``inject`` (and also after an ``inject`` that raised half way,
    so ``rollback`` must tolerate a partly applied fault); it is never called
    concurrently with ``inject``.
    """

    type: ClassVar[str]
    category: ClassVar[Category]
    summary: ClassVar[str]
    """One line for ``clnrm chaos list``."""
    Config: ClassVar[builtins.type[FaultConfig]] = FaultConfig  # `type` is the name above
    proxied: ClassVar[bool] = False
    """True for faults acting through the chaos proxy: the engine puts the target's port
    behind a proxy when the target starts (before any client connects), so the toxic
    also reaches connections opened before the fault (pools, keep-alive)."""
    needs_target: ClassVar[bool] = True

    def __init__(self, config: C, ctx: ChaosContext, target: str) -> None:
        self.config: C = config
        self.ctx = ctx
        self.target = target
        self._cid: str | None = None

    @property
    def cid(self) -> str:
        """The target's container id, looked up once: a restart keeps the container."""
        if self._cid is None:
            self._cid = self.ctx.container_id(self.target)
        return self._cid

    @abstractmethod
    def inject(self) -> str:
        """Apply the fault; return one line for the timeline ("paused db")."""

    @abstractmethod
    def rollback(self) -> str:
        """Undo the fault; return one line for the timeline.  Idempotent; raises only
        when the system could not be restored (the engine reports that loudly)."""

    def undo_record(self) -> dict[str, Any] | None:
        """JSON-able facts ``undo`` needs after a SIGKILL (container id, old limit...);
        None when nothing outlives this process (e.g. a toxic inside a child proxy that
        dies with us)."""
        return None

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        """Undo from a journal record, without a live context (``clnrm gc``)."""
        return "nothing to undo"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Catalog entry: name, category, summary and the config's JSON schema."""
        schema = cls.Config.model_json_schema()
        return {"type": cls.type, "category": cls.category, "summary": cls.summary,
                "proxied": cls.proxied, "parameters": schema.get("properties", {}),
                "required": schema.get("required", [])}
