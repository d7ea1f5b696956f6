"""Service-type plugins: the registry built from the ``clnrm`` entry points.

Third parties add a service type by exposing a module with a
``@clnrm.hookspecs.hookimpl def clnrm_service_types()`` under the ``clnrm``
entry-point group; see docs/plugins.md.
"""

from __future__ import annotations

from functools import lru_cache

import pluggy

from clnrm import hookspecs
from clnrm.errors import PluginError
from clnrm.plugins.base import ServiceSpec, ServiceType, SpecContext

__all__ = ["ServiceSpec", "ServiceType", "SpecContext", "installed_plugins", "plugin_manager",
           "service_types"]


def plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with the hook specs and every installed ``clnrm`` plugin loaded."""
    pm = pluggy.PluginManager("clnrm")
    pm.add_hookspecs(hookspecs)
    try:
        pm.load_setuptools_entrypoints("clnrm")
    except Exception as exc:  # a broken third-party plugin must not be a traceback
        raise PluginError(f"a clnrm plugin failed to load: {exc}",
                          hint="pip uninstall the plugin or fix its import") from exc
    return pm


@lru_cache(maxsize=1)
def installed_plugins() -> pluggy.PluginManager:
    """One loaded manager for the registries that are read on every run (test layers,
    validators): the installed distributions are scanned once per process, not per registry."""
    return plugin_manager()


@lru_cache(maxsize=1)
def service_types() -> dict[str, ServiceType]:
    """Every service type by name; a name claimed twice is an error, not last-wins."""
    pm = plugin_manager()
    found: dict[str, ServiceType] = {}
    owners: dict[str, str] = {}
    # Walk implementations one by one (not the combined hook call) so a clash can
    # name the plugin that caused it.
    for impl in pm.hook.clnrm_service_types.get_hookimpls():
        for cls in impl.function() or []:
            if cls.name in found:
                raise PluginError(
                    f"service type {cls.name!r} is provided by both {owners[cls.name]} "
                    f"and {impl.plugin_name}",
                    plugin=cls.name, hint="uninstall one of the two plugins")
            found[cls.name] = cls()
            owners[cls.name] = impl.plugin_name
    return found


def get_service_type(name: str) -> ServiceType:
    types = service_types()
    if name not in types:
        raise PluginError(f"unknown service plugin {name!r}", plugin=name,
                          hint="installed plugins: " + ", ".join(sorted(types)))
    return types[name]
