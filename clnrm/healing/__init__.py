"""The healer: classify a failed test, remediate its environment, rerun, learn.

``classify.classify`` puts a failure in a :class:`FailureClass` with quoted evidence;
remediations are plugins (``clnrm_remediation_types``) that may change only the
environment (:mod:`clnrm.healing.environment` enforces it); a seeded Thompson
sampling bandit (:mod:`clnrm.healing.bandit`) picks the next remediation from what
the shared memory remembers; :func:`heal_test` strings them together for
``clnrm run --heal`` and the healer agent.  numpy and the memory store are imported
only when a bandit is built.  The names below load on first use: every process imports
this package for its plugin entry (:mod:`clnrm.healing.builtin`), and a run that never
heals must not pay for the classifier.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clnrm.healing.classify import context_of, macro_f1
    from clnrm.healing.environment import (
        EnvironmentChange,
        HealingRuleError,
        ServiceChange,
        apply_change,
        check_environment_only,
    )
    from clnrm.healing.model import (
        Classification,
        FailureClass,
        FailureContext,
        HealingReport,
        TriedRemediation,
    )
    from clnrm.healing.remedies import (
        Remediation,
        RemediationConfig,
        candidates,
        remediation_types,
    )

_HOME = {
    "context_of": "classify", "macro_f1": "classify",
    "EnvironmentChange": "environment", "HealingRuleError": "environment",
    "ServiceChange": "environment", "apply_change": "environment",
    "check_environment_only": "environment",
    "Classification": "model", "FailureClass": "model", "FailureContext": "model",
    "HealingReport": "model", "TriedRemediation": "model",
    "Remediation": "remedies", "RemediationConfig": "remedies", "candidates": "remedies",
    "remediation_types": "remedies",
}


def __getattr__(name: str) -> Any:
    """Load a name's module on first use (``classify`` the function lives in
    :mod:`clnrm.healing.classify`, the submodule of the same name)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"clnrm.healing.{home}"), name)
    globals()[name] = value
    return value

__all__ = [
    "Classification",
    "EnvironmentChange",
    "FailureClass",
    "FailureContext",
    "HealingReport",
    "HealingRuleError",
    "Remediation",
    "RemediationConfig",
    "ServiceChange",
    "TriedRemediation",
    "apply_change",
    "candidates",
    "check_environment_only",
    "context_of",
    "macro_f1",
    "remediation_types",
]
