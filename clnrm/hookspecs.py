"""Every hook a clnrm plugin can implement, declared in one place.

Plugins are found through the ``clnrm`` entry-point group (built-ins are
registered the same way, see ``pyproject.toml``), so a third party adds a
service type by shipping a module with ``@hookimpl`` functions and an entry
point; nothing in clnrm has to change.  Hooks are grouped by the phase of a run
in which they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from clnrm.chaos.base import Fault
    from clnrm.healing.remedies import Remediation
    from clnrm.plugins.base import ServiceType

hookspec = pluggy.HookspecMarker("clnrm")
hookimpl = pluggy.HookimplMarker("clnrm")

# --- load phase -------------------------------------------------------------


@hookspec
def clnrm_service_types() -> list[type[ServiceType]]:  # type: ignore[empty-body]
    """Return the service types this plugin provides.

    Called once when the plugin manager is built, before any test file is
    checked. Each class's ``name`` is the value of ``plugin = "..."`` in a
    ``[services.NAME]`` table; two plugins claiming one name is an error.
    Not firstresult: every plugin's list is collected.
    """


@hookspec
def clnrm_fault_types() -> list[type[Fault]]:  # type: ignore[empty-body]
    """Return the chaos fault types this plugin provides.

    Each class's ``type`` is the value of ``type = "..."`` in a ``[[chaos.faults]]``
    table; two plugins claiming one type is an error. See :mod:`clnrm.chaos.base`.
    """


@hookspec
def clnrm_remediation_types() -> list[type[Remediation]]:  # type: ignore[empty-body]
    """Return the self-healing remediations this plugin provides.

    Each class's ``name`` is what ``[self_healing] strategies`` and ``clnrm heal list``
    name; two plugins claiming one name is an error. A remediation returns only an
    environment change (see :mod:`clnrm.healing.remedies`). Not firstresult.
    """
