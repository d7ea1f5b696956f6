"""Every hook a clnrm plugin can implement, declared in one place.

Plugins are found through the ``clnrm`` entry-point group (built-ins are
registered the same way, see ``pyproject.toml``), so a third party adds a
service type by shipping a module with ``@hookimpl`` functions and an entry
point; nothing in clnrm has to change.  Hooks are grouped by the phase of a run
in which they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from clnrm.chaos.base import Fault
    from clnrm.healing.remedies import Remediation
    from clnrm.layers.base import TestLayer
    from clnrm.plugins.base import ServiceType
    from clnrm.validators.base import SpanValidator

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
def clnrm_remediation_types() -> list[type[Remediation[Any]]]:  # type: ignore[empty-body]
    """Return the self-healing remediations this plugin provides.

    Each class's ``name`` is what ``[self_healing] strategies`` and ``clnrm heal list``
    name; two plugins claiming one name is an error. A remediation returns only an
    environment change (see :mod:`clnrm.healing.remedies`). Not firstresult.
    """


@hookspec
def clnrm_validators() -> list[SpanValidator]:  # type: ignore[empty-body]
    """Return span validators (instances) to run beside the built-in ones.

    Each meets :class:`clnrm.validators.base.SpanValidator` (a ``name`` and
    ``validate(expect, index, where)``); :func:`clnrm.validators.validate` runs them
    after the built-ins on every test that has expectations, and a validator that
    raises becomes one ERROR result.  A name claimed twice (or a built-in's) is an error.
    """


# --- run phase --------------------------------------------------------------


@hookspec
def clnrm_test_layers() -> list[TestLayer]:  # type: ignore[empty-body]
    """Return the test layers (instances) this plugin provides.

    Each meets :class:`clnrm.layers.TestLayer`: a ``name`` (the scenario table and
    ``[layers]`` switch it reads), an ``order``, ``active(scenario)`` (the one rule for
    whether it is on) and ``session(ctx)``, whose hooks run while a test runs and whose
    ``judge(test)`` adds the layer's verdicts; see :mod:`clnrm.layers.base` for when each
    hook is called.  Orchestration, chaos and performance register here too.  Import
    heavy engines inside ``session``, not at module level: every run loads this plugin.
    """
