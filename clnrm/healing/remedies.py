"""Remediations are plugins: a small base class, a hook, and the catalog built from it.

A plugin ships classes derived from :class:`Remediation` through the
``clnrm_remediation_types`` hook (entry point group ``clnrm``), exactly as fault
types are shipped; each has a typed ``Config`` (``[self_healing.config.NAME]``
keys or a healer's defaults), names the failure classes it may address, and
returns an :class:`~clnrm.healing.environment.EnvironmentChange`, never a scenario:
what it can express is only environment, and :func:`apply_change` checks it again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from clnrm.healing.model import Classification, FailureClass

if TYPE_CHECKING:
    from clnrm.healing.environment import EnvironmentChange
    from clnrm.scenario.model import Scenario


class RemediationConfig(BaseModel):
    """A remediation's parameters; subclasses add typed fields with defaults."""

    model_config = ConfigDict(extra="forbid")


RC = TypeVar("RC", bound=RemediationConfig)


class Remediation(ABC, Generic[RC]):
    """One way to mend an environment: which classes it addresses and what it changes.

    Generic over its config (as a fault is), so ``self.config`` is typed in each
    remediation without an ``isinstance`` check."""

    name: ClassVar[str]
    summary: ClassVar[str]
    classes: ClassVar[frozenset[FailureClass]]
    proposal: ClassVar[bool] = False  # only proposes a patch to the test file
    Config: ClassVar[type[RemediationConfig]] = RemediationConfig
    max_level: ClassVar[int] = 1
    """How many magnitudes the remediation has (1: none).  Level 1 is the configured first
    step (the smallest change that might do); each level up doubles the change (a factor
    is squared, cubed...), so with no memory a healer escalates one try at a time and a
    learned level (:mod:`clnrm.healing.bandit`) lets it start where a fix was found."""

    def __init__(self, config: RC | None = None, *, level: int = 1) -> None:
        self.config: RC = config if config is not None else cast("RC", self.Config())
        self.level = max(1, min(level, self.max_level))

    def at_level(self, level: int) -> Remediation[RC]:
        """This remediation (same config) at magnitude ``level``."""
        return type(self)(self.config, level=level)

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        """Why this remediation cannot act on this failure (None: it can)."""
        return None

    @abstractmethod
    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        """The environment change for one rerun."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "summary": cls.summary,
                "classes": sorted(c.value for c in cls.classes), "proposal": cls.proposal,
                "parameters": {k: f.default for k, f in cls.Config.model_fields.items()},
                "levels": cls.max_level}


@lru_cache(maxsize=1)
def remediation_types() -> dict[str, type[Remediation[Any]]]:
    """Every remediation by name, from every plugin; a name claimed twice is an error."""
    from clnrm.plugins import collect

    return collect("clnrm_remediation_types", "remediation", lambda cls: cls.name)


def candidates(diag: Classification, sc: Scenario, *,
               allow: list[str] | None = None,
               configs: dict[str, dict[str, Any]] | None = None) -> list[Remediation[Any]]:
    """The remediations that may act on ``diag`` in ``sc``, in catalog order.

    ``allow`` is ``[self_healing] strategies`` (empty: all).  ``product_defect`` gets
    none, whatever a plugin claims: the rule the healer exists under.
    """
    if diag.failure_class is FailureClass.product_defect:
        return []
    out: list[Remediation[Any]] = []
    for name, cls in remediation_types().items():
        if diag.failure_class not in cls.classes or (allow and name not in allow):
            continue
        remedy = cls(cls.Config.model_validate((configs or {}).get(name, {})))
        if remedy.why_not(diag, sc) is None:
            out.append(remedy)
    return out


def unknown_strategies(names: list[str]) -> list[str]:
    return [n for n in names if n not in remediation_types()]


__all__ = ["Remediation", "RemediationConfig", "candidates", "remediation_types",
           "unknown_strategies"]
