"""The fault registry, built from the ``clnrm_fault_types`` hook of every plugin."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from clnrm.errors import PluginError

if TYPE_CHECKING:
    from clnrm.chaos.base import Fault


@lru_cache(maxsize=1)
def fault_types() -> dict[str, type[Fault]]:
    """Every fault type by name; a name claimed twice is an error, not last-wins."""
    from clnrm.plugins import plugin_manager

    pm = plugin_manager()
    found: dict[str, type[Fault]] = {}
    owners: dict[str, str] = {}
    for impl in pm.hook.clnrm_fault_types.get_hookimpls():
        for cls in impl.function() or []:
            if cls.type in found:
                raise PluginError(f"fault type {cls.type!r} is provided by both "
                                  f"{owners[cls.type]} and {impl.plugin_name}",
                                  plugin=cls.type, hint="uninstall one of the two plugins")
            found[cls.type] = cls
            owners[cls.type] = impl.plugin_name
    return dict(sorted(found.items(), key=lambda kv: (kv[1].category, kv[0])))


def get_fault_type(name: str) -> type[Fault]:
    types = fault_types()
    if name not in types:
        raise PluginError(f"unknown chaos fault type {name!r}", plugin=name,
                          hint="`clnrm chaos list` shows the catalog: " + ", ".join(types))
    return types[name]


def markdown_table() -> str:
    """The catalog as the Markdown table in docs/chaos.md (regenerate it with
    ``python -m clnrm.chaos.catalog``; a test keeps the two in step)."""
    rows = ["| type | category | what it does | parameters (* required) |", "|---|---|---|---|"]
    for cls in fault_types().values():
        entry = cls.describe()
        params = ", ".join(f"`{k}`*" if k in entry["required"] else f"`{k}`"
                           for k in entry["parameters"])
        summary = entry["summary"].replace("|", "\\|")
        rows.append(f"| `{cls.type}` | {cls.category} | {summary} | {params or '-'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
