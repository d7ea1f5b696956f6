"""Which fault to try next, and on which service: seeded Thompson sampling over the catalog.

A campaign has far more (fault type x service) pairs than units: the demo's five services
and the catalog's twenty-odd fault types make over a hundred.  Trying them in a fixed order
wastes the budget on pairs that never hurt anything; always repeating the one that found a
weakness never looks elsewhere.  Thompson sampling balances the two with no tuning knob:
each pair ("arm") keeps a Beta(1 + weaknesses found, 1 + tries that found none) belief, one
draw is taken from every arm's belief and the highest draw is tried.  A pair never tried
draws from Beta(1, 1), so it is picked often early (explore); a pair that found weaknesses
draws high and is picked again (exploit) until tries that find nothing pull it down.

The choice is a pure function of (scenario, history, seed): the random generator is seeded
with ``rng_seed`` alone and the arms are visited in a fixed order, so a resumed campaign
that replays its ledger chooses exactly what the first driver chose (the design of Ray
Tune's ``Searcher.suggest``, with the ledger as its checkpoint).

:func:`scenario_with_fault` writes the choice into the scenario's TOML text, as one more
``[[chaos.faults]]`` entry, judged by the scenario's own service-level expectations
re-aimed at it, so the driver runs the result like any other file.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from clnrm.swarm.campaign.model import (
    EXPLORED_PREFIX,
    FaultChoice,
    Scalar,
    UnitResult,
    UnitSpec,
)

if TYPE_CHECKING:
    from clnrm.scenario.model import Scenario, ServiceConfig

DEFAULT_PARAMS: Final[Mapping[str, Mapping[str, Scalar]]] = {
    # required parameters get a value that hurts without taking a whole host down
    "clock_skew": {"offset": "1h"},
    "corrupt": {"fraction": 0.05},
    "http_error": {"fraction": 0.5},
    "bandwidth": {"rate_kb_s": 4},
    "jitter": {"latency_ms": 200, "jitter_ms": 200},
    "latency": {"latency_ms": 1000},
    "limit_data": {"bytes": 512},
    "loss": {"fraction": 0.3},
    "reset_peer": {"toxicity": 0.3},
    "slicer": {"average_size": 8, "delay_us": 1000},
    "slow_close": {"delay_ms": 2000},
    "cpu_limit": {"cpus": 0.05},
    "memory_limit": {"limit_mb": 48},
    "memory_pressure": {"mb": 64},
    "disk_fill": {"mb": 64},
    "io_throttle": {"write_bps": 1 << 20, "read_bps": 1 << 20},
}
"""Parameters a campaign gives each fault type (the required ones at least)."""

SKEWABLE_IMAGES: Final = ("clnrm/python-otel", "clnrm/demo-app")
"""Images whose clock ``clock_skew`` can move (see :mod:`clnrm.chaos.faults.clock`)."""


@dataclass(frozen=True)
class Arm:
    """One (fault type, service) pair the explorer may choose, with its parameters."""

    fault: str
    target: str
    params: Mapping[str, Scalar]


@dataclass
class Tally:
    """What the history says of one arm: units that tried it, and those that found a weakness."""

    tries: int = 0
    weaknesses: int = 0


def arms(scenario: Scenario) -> list[Arm]:
    """Every (fault type, service) pair that applies to ``scenario``, in a fixed order.

    A proxied fault needs the service to declare a port (the proxy sits in front of it);
    ``clock_skew`` needs an image whose clock clnrm controls; ``partition`` needs a peer.
    Services are visited by name, fault types in the catalog's order.
    """
    from clnrm.chaos.catalog import fault_types

    types = fault_types()
    found: list[Arm] = []
    for name in sorted(scenario.services):
        svc = scenario.services[name]
        for fault, cls in types.items():
            if not cls.needs_target or not _applies(fault, cls.proxied, svc, scenario):
                continue
            params = dict(DEFAULT_PARAMS.get(fault, {}))
            if cls.proxied and len(svc.ports) > 1:
                params["port"] = int(svc.ports[0])
            found.append(Arm(fault, name, params))
    return found


def _applies(fault: str, proxied: bool, svc: ServiceConfig, scenario: Scenario) -> bool:
    if proxied and not svc.ports:
        return False
    if fault == "clock_skew":
        return any((svc.image or "").startswith(i) for i in SKEWABLE_IMAGES)
    if fault == "partition":
        return len(scenario.services) > 1
    return True


def tallies(history: Iterable[UnitResult], planned: Iterable[UnitSpec] = ()
            ) -> dict[tuple[str, str], Tally]:
    """Per (fault, target): tries and weaknesses found, from recorded results.

    A result's fault is read from its facts (``fault`` and ``fault_target``, which the
    driver sets) or else from its planned unit.  Its finding counts for the arm unless the
    facts say the finding was another fault's (``finding_fault``/``finding_service``, from
    :func:`clnrm.swarm.campaign.findings.finding_facts`: the file's own fault failed, not
    the explored one).  A unit that ended in ``error`` (the run itself broke) says nothing
    about the fault and is left out.
    """
    by_id = {u.id: u.fault for u in planned}
    out: dict[tuple[str, str], Tally] = {}
    for result in history:
        if result.outcome == "error":
            continue
        fault, target = result.facts.get("fault"), result.facts.get("fault_target")
        if not (isinstance(fault, str) and isinstance(target, str)):
            choice = by_id.get(result.unit)
            if choice is None:
                continue
            fault, target = choice.fault, choice.target
        tally = out.setdefault((fault, target), Tally())
        tally.tries += 1
        f_fault, f_service = result.facts.get("finding_fault"), result.facts.get(
            "finding_service")
        theirs = (f_fault is not None and f_fault != fault) or (
            f_service is not None and f_service != target)
        tally.weaknesses += result.finding is not None and not theirs
    return out


def choose_fault(scenario: Scenario, history: Sequence[UnitResult], rng_seed: int, *,
                 planned: Sequence[UnitSpec] = (),
                 prior: Mapping[tuple[str, str], Tally] | None = None) -> FaultChoice | None:
    """The (fault, target) to inject in the next unit of ``scenario``; None when no fault
    of the catalog applies to it (it declares no services).

    Deterministic for (scenario, history, ``rng_seed``).  ``planned`` lets results whose
    facts do not name their fault be matched to their unit; ``prior`` adds tallies from
    elsewhere (memory's chaos records) to the history's.
    """
    candidates = arms(scenario)
    if not candidates:
        return None
    seen = tallies(history, planned)
    for key, extra in (prior or {}).items():
        tally = seen.setdefault(key, Tally())
        tally.tries += extra.tries
        tally.weaknesses += extra.weaknesses
    rng = random.Random(rng_seed)
    best: tuple[float, Arm, Tally] | None = None
    for arm in candidates:
        tally = seen.get((arm.fault, arm.target), Tally())
        draw = rng.betavariate(1 + tally.weaknesses, 1 + tally.tries - tally.weaknesses)
        if best is None or draw > best[0]:
            best = (draw, arm, tally)
    assert best is not None
    draw, arm, tally = best
    exploit = tally.weaknesses > 0
    if tally.tries == 0:
        why = f"never tried on {arm.target} (Thompson draw {draw:.2f})"
    else:
        why = (f"{tally.weaknesses} weakness(es) in {tally.tries} tr"
               f"{'y' if tally.tries == 1 else 'ies'} on {arm.target} "
               f"(Thompson draw {draw:.2f})")
    return FaultChoice(fault=arm.fault, target=arm.target, params=dict(arm.params),
                       explore=not exploit, reason=f"{arm.fault} on {arm.target}: {why}")


def fault_name(choice: FaultChoice) -> str:
    """The ``[[chaos.faults]]`` name an explored fault gets (unique in any file: the prefix)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"{EXPLORED_PREFIX}{choice.fault}_{choice.target}")


def scenario_with_fault(text: str, choice: FaultChoice, *, source: str | None = None) -> str:
    """``text`` (a scenario's TOML) with ``choice`` as its ``[chaos]`` fault.

    With steady-state probes the fault starts 1 s after the steady state holds and lasts
    2 s; without probes it starts with the steps and lasts until they end.  Every
    resilience expectation the file declares on a probe (its service level: a success
    rate, a downtime) is declared again for the new fault, so the fault is judged by the
    file's own bar.

    A file without faults of its own gets the fault appended (its lines keep their
    numbers, so errors still point at the user's file).  A file with faults of its own
    runs the new fault instead of them, and without the expectations aimed at them: two
    faults at once would blame the explored one for what the file's own did (the file as
    written is what the campaign's first round runs).  The result is loaded (and so
    validated against the fault catalog) before it is returned; a file the loader refuses
    raises its located :class:`~clnrm.errors.ScenarioError`.
    """
    from clnrm.scenario.loader import loads_scenario

    base = loads_scenario(text, source=source)
    name = fault_name(choice)
    chaos = base.chaos
    entry: dict[str, Any] = {"name": name, "type": choice.fault, "target": choice.target}
    if chaos is not None and chaos.probes:
        entry.update(after="steady_state", at="1s", duration="2s")
    entry.update(choice.params)
    bars: list[dict[str, Any]] = []
    for exp in base.expect.resilience:
        bar = exp.model_dump(exclude_none=True, exclude_defaults=True,
                             include={"probe", "min_success_rate_during", "max_error_rate",
                                      "max_downtime_ms", "max_failover_time_ms"})
        if exp.probe is not None and len(bar) >= 2:
            bars.append({"name": f"{exp.name or exp.probe}@{name}", "fault": name, **bar})
    note = f"# -- added by a clnrm campaign: {choice.reason}"
    if chaos is None or not chaos.faults:
        lines = ["", note, "[[chaos.faults]]"]
        lines += [f"{_key(k)} = {toml_value(v)}" for k, v in entry.items()]
        for bar in bars:
            lines += ["", "[[expect.resilience]]"]
            lines += [f"{_key(k)} = {toml_value(v)}" for k, v in bar.items()]
        out = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    else:
        doc = parsed(text, source)
        own = {f.label for f in chaos.faults} | {f.type for f in chaos.faults}
        doc["chaos"]["faults"] = [entry]
        expect = doc.setdefault("expect", {})
        kept = [e for e in expect.get("resilience", []) if e.get("fault") not in own]
        expect["resilience"] = kept + bars
        out = (f"# {source or 'scenario'} with its own faults ({', '.join(sorted(own))}) "
               f"replaced\n{note}\n" + to_toml(doc))
    loads_scenario(out, source=source)
    return out


def parsed(text: str, source: str | None = None) -> dict[str, Any]:
    """The scenario ``text`` as a TOML document (rendered first when it is a template)."""
    import tomli

    from clnrm.scenario.loader import _is_template

    if _is_template(text):
        from clnrm.scenario.template import render_template

        text = render_template(text, file=source)
    return tomli.loads(text)


_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def toml_value(value: Any) -> str:
    """One TOML value (strings as JSON-escaped basic strings, which TOML accepts)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {toml_value(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def to_toml(doc: Mapping[str, Any]) -> str:
    """A parsed TOML document written back: tables as ``[a.b]`` headers, lists of tables as
    ``[[a.b]]``, everything else inline (enough for scenario files, whose values are
    strings, numbers, booleans, lists and small inline tables)."""
    lines: list[str] = []
    _table(lines, (), doc)
    return "\n".join(lines).strip() + "\n"


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _inline(value: Any) -> bool:
    """Written as ``key = value``: scalars, lists of scalars, and small flat tables
    (``health_check = { cmd = [...], interval = "50ms" }``), as people write them."""
    if _is_table_list(value):
        return False
    if not isinstance(value, dict):
        return True
    flat = all(not isinstance(v, dict) and not _is_table_list(v) for v in value.values())
    return bool(value) and flat and len(toml_value(value)) <= 100


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    def inline(value: Any) -> bool:  # a top-level table keeps its [header], as people write it
        return _inline(value) and not (not path and isinstance(value, dict))

    for k, v in table.items():
        if inline(v):
            lines.append(f"{_key(k)} = {toml_value(v)}")
    for k, v in table.items():
        if inline(v):
            continue
        here = (*path, k)
        header = ".".join(_key(p) for p in here)
        if isinstance(v, dict):
            if not v or any(_inline(x) for x in v.values()):
                lines += ["", f"[{header}]"]
            _table(lines, here, v)
        elif _is_table_list(v):
            for item in v:
                lines += ["", f"[[{header}]]"]
                _table(lines, here, item)


__all__ = ["DEFAULT_PARAMS", "Arm", "Tally", "arms", "choose_fault", "fault_name",
           "scenario_with_fault", "tallies", "to_toml", "toml_value"]
