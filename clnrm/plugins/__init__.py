"""Service-type plugins: the registry built from the ``clnrm`` entry points.

Third parties add a service type by exposing a module with a
``@clnrm.hookspecs.hookimpl def clnrm_service_types()`` under the ``clnrm``
entry-point group; see docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

import pluggy

from clnrm import hookspecs
from clnrm.errors import PluginError
from clnrm.plugins.base import ServiceSpec, ServiceType, SpecContext

__all__ = ["ServiceSpec", "ServiceType", "SpecContext", "collect", "installed_plugins",
           "plugin_manager", "service_types"]

T = TypeVar("T")


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


def collect(hook: str, what: str, key: Callable[[T], str], *,
            pm: pluggy.PluginManager | None = None,
            check: Callable[[Any], tuple[str, str] | None] | None = None,
            builtins: Iterable[T] = ()) -> dict[str, T]:
    """What every plugin's ``hook`` returns, by name (``builtins`` first, then plugin order).

    Every registry (service types, faults, layers, validators, remediations) is built
    here so they all refuse the same things the same way: a name claimed twice is an
    error naming both plugins, not last-wins, and ``check`` may refuse an item with
    (why, hint).  Implementations are walked one by one, not through the combined hook
    call, so an error can name the plugin that caused it."""
    manager = pm if pm is not None else plugin_manager()
    found: dict[str, T] = {}
    owners: dict[str, str] = {}
    for item in builtins:
        found[key(item)] = item
        owners[key(item)] = "clnrm"
    for impl in getattr(manager.hook, hook).get_hookimpls():
        for item in impl.function() or []:
            refused = check(item) if check is not None else None
            if refused is not None:
                raise PluginError(f"{impl.plugin_name} returned {item!r} from {hook}, "
                                  f"{refused[0]}", hint=refused[1])
            name = key(item)
            if name in found:
                raise PluginError(f"{what} {name!r} is provided by both {owners[name]} "
                                  f"and {impl.plugin_name}",
                                  plugin=name, hint="uninstall one of the two plugins")
            found[name] = item
            owners[name] = impl.plugin_name
    return found


@lru_cache(maxsize=1)
def service_types() -> dict[str, ServiceType]:
    """Every service type by name; a name claimed twice is an error, not last-wins."""
    classes: dict[str, type[ServiceType]] = collect(
        "clnrm_service_types", "service type", lambda cls: cls.name)
    return {name: cls() for name, cls in classes.items()}


def get_service_type(name: str) -> ServiceType:
    types = service_types()
    if name not in types:
        raise PluginError(f"unknown service plugin {name!r}", plugin=name,
                          hint="installed plugins: " + ", ".join(sorted(types)))
    return types[name]
