"""The built-in remediation catalog's plugin entry (``healing_remediations`` in
pyproject.toml).  Every process loads the ``clnrm`` entry points to find test layers, so
this module imports nothing heavy: the remediations themselves load when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clnrm.hookspecs import hookimpl

if TYPE_CHECKING:
    from clnrm.healing.remedies import Remediation


@hookimpl
def clnrm_remediation_types() -> list[type[Remediation[Any]]]:
    from clnrm.healing.remediations import BUILTIN

    return list(BUILTIN)
