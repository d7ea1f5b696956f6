"""The healer: classify a failed test, remediate its environment, rerun, learn.

``classify`` puts a failure in a :class:`FailureClass` with quoted evidence;
remediations are plugins (``clnrm_remediation_types``) that may change only the
environment (:mod:`clnrm.healing.environment` enforces it); a seeded Thompson
sampling bandit (:mod:`clnrm.healing.bandit`) picks the next remediation from what
the shared memory remembers; :func:`heal_test` strings them together for
``clnrm run --heal`` and the healer agent.  numpy and the memory store are imported
only when a bandit is built.
"""

from __future__ import annotations

from clnrm.healing.classify import classify, context_of, macro_f1
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
from clnrm.healing.remedies import Remediation, RemediationConfig, candidates, remediation_types

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
    "classify",
    "context_of",
    "macro_f1",
    "remediation_types",
]
