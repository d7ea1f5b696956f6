"""The built-in fault catalog, registered through the ``clnrm`` entry point like any
third-party fault plugin (``chaos_faults`` in pyproject.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clnrm.hookspecs import hookimpl

if TYPE_CHECKING:
    from clnrm.chaos.base import Fault


@hookimpl
def clnrm_fault_types() -> list[type[Fault[Any]]]:
    from clnrm.chaos.faults import clock, container, netfilter, resource, toxics

    return [*toxics.FAULTS, *netfilter.FAULTS, *container.FAULTS, *resource.FAULTS,
            *clock.FAULTS]
