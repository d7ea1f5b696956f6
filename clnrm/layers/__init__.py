"""The layer registry: every :class:`TestLayer` installed, and which are on for a scenario.

Layers register through the ``clnrm_test_layers`` hook of a ``clnrm`` entry-point plugin
(the built-in orchestration, chaos and performance layers do it the same way, see
``pyproject.toml``), so a package adds a layer without touching clnrm.  Registering costs
nothing: a layer module imports its engine only inside :meth:`TestLayer.session`, so a
test that does not use chaos or performance never loads their engines.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from clnrm.errors import PluginError
from clnrm.layers.base import (
    LayerContext,
    LayerSession,
    LiveSystem,
    Session,
    StepsRun,
    TestLayer,
    switched_on,
    why_off,
)

if TYPE_CHECKING:
    from clnrm.scenario.model import Scenario

__all__ = [
    "BUILTIN_LAYERS",
    "LayerContext",
    "LayerSession",
    "LiveSystem",
    "Session",
    "StepsRun",
    "TestLayer",
    "active_layers",
    "get_layer",
    "layer_active",
    "switched_on",
    "test_layers",
    "why_off",
]


BUILTIN_LAYERS = ("orchestration", "chaos", "performance")
"""Registered through clnrm's own entry points (``pyproject.toml``)."""


def _not_a_layer(item: object) -> tuple[str, str] | None:
    if isinstance(item, TestLayer):
        return None
    return ("which is not a test layer",
            "return instances with name, order, active() and session() "
            "(clnrm.layers.TestLayer)")


@lru_cache(maxsize=1)
def test_layers() -> tuple[TestLayer, ...]:
    """Every installed layer in hook order; a name claimed twice is an error, not last-wins."""
    from clnrm import plugins

    found: dict[str, TestLayer] = plugins.collect(
        "clnrm_test_layers", "test layer", lambda layer: layer.name,
        pm=plugins.installed_plugins(), check=_not_a_layer)
    missing = [name for name in BUILTIN_LAYERS if name not in found]
    if missing:  # never run a chaos test without its chaos layer because metadata is stale
        raise PluginError(f"the built-in test layers {', '.join(missing)} are not registered",
                          hint="reinstall clnrm (pip install -e . in a checkout): its "
                               "entry points are missing")
    return tuple(sorted(found.values(), key=lambda layer: (layer.order, layer.name)))


test_layers.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def get_layer(name: str) -> TestLayer | None:
    return next((layer for layer in test_layers() if layer.name == name), None)


def layer_active(scenario: Scenario, name: str) -> bool:
    """Whether layer ``name`` is on for ``scenario``: the registered layer's own
    :meth:`~TestLayer.active`, else (a layer not installed, e.g. ``self_healing`` before
    its plugin is) the shared rule :func:`switched_on`."""
    layer = get_layer(name)
    return layer.active(scenario) if layer is not None else switched_on(scenario, name)


def active_layers(scenario: Scenario, *, also: Iterable[str] = ()) -> list[TestLayer]:
    """The layers on for ``scenario``, in order; ``also`` names layers to include anyway."""
    forced = set(also)
    return [layer for layer in test_layers()
            if layer.name in forced or layer.active(scenario)]
