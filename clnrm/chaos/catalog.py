"""The fault registry, built from the ``clnrm_fault_types`` hook of every plugin, and the
load-time check of ``[[chaos.faults]]`` against it.

The scenario loader checks faults here (type known, parameters fit the plugin's typed
config, a proxied fault's port) without importing the chaos engine; the engine resolves
the same entries through the same functions when a test runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from clnrm.errors import ChaosError, PluginError
from clnrm.scenario.diagnostics import Problem

if TYPE_CHECKING:
    from clnrm.chaos.base import Fault, FaultConfig
    from clnrm.scenario.layers import Chaos, FaultSpec


@lru_cache(maxsize=1)
def fault_types() -> dict[str, type[Fault[Any]]]:
    """Every fault type by name; a name claimed twice is an error, not last-wins."""
    from clnrm.plugins import collect

    found: dict[str, type[Fault[Any]]] = collect("clnrm_fault_types", "fault type",
                                                 lambda cls: cls.type)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].category, kv[0])))


def get_fault_type(name: str) -> type[Fault[Any]]:
    types = fault_types()
    if name not in types:
        raise PluginError(f"unknown chaos fault type {name!r}", plugin=name,
                          hint="`clnrm chaos list` shows the catalog: " + ", ".join(types))
    return types[name]


def check_faults(chaos: Chaos, ports: Mapping[str, Sequence[int]]) -> list[Problem]:
    """Every fault's type exists and its parameters fit the plugin's typed config.

    Called while loading a file (``ports``: each declared service's ports), so a typo in
    ``latency_ms`` is a located error before any container starts.
    """
    problems: list[Problem] = []
    try:
        types = fault_types()
    except PluginError as exc:
        return [Problem(exc.message, ("chaos", "faults"), exc.hint)]
    for index, fault in enumerate(chaos.faults):
        here = ("chaos", "faults", index)
        cls = types.get(fault.type)
        if cls is None:
            problems.append(Problem(f"unknown fault type {fault.type!r}", (*here, "type"),
                                    "`clnrm chaos list` shows the catalog: "
                                    + ", ".join(types)))
            continue
        if cls.needs_target and fault.target is None:
            problems.append(Problem(f"fault '{fault.label}' ({fault.type}) needs a target "
                                    "service", here, 'add target = "<service name>"'))
        try:
            config = cls.Config.model_validate(fault.params)
        except ValidationError as exc:
            for issue in exc.errors(include_url=False):
                loc = tuple(issue["loc"])
                key = loc[0] if loc else None
                what = ("unknown parameter" if issue["type"] == "extra_forbidden"
                        else issue["msg"])
                allowed = ", ".join(sorted(f.alias or name for name, f
                                           in cls.Config.model_fields.items())) or "none"
                problems.append(Problem(
                    f"fault '{fault.label}' ({fault.type}): {what}"
                    + (f" ({'.'.join(map(str, loc))})" if loc else ""),
                    (*here, key) if isinstance(key, str) else here,
                    f"parameters of {fault.type}: {allowed}; scheduling keys: at, after, "
                    "trigger, window, duration, every, repeat, probability"))
            continue
        if cls.proxied and fault.target is not None and fault.target in ports:
            try:
                proxied_port(fault, config, ports[fault.target])
            except ChaosError as exc:
                problems.append(Problem(exc.message, (*here, "port"), exc.hint))
    return problems


def proxied_port(fault: FaultSpec, config: FaultConfig, declared: Sequence[int]) -> int:
    """The target port a proxied fault acts on: its ``port``, else the only declared one."""
    port = getattr(config, "port", None)
    if port:
        return int(port)
    if len(declared) == 1:
        return int(declared[0])
    raise ChaosError(f"fault '{fault.label}' ({fault.type}) must say which port of "
                     f"{fault.target!r} to disturb: it declares "
                     + (f"ports {list(declared)}" if declared else "no ports"),
                     hint="add port = <number> to the fault")


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
