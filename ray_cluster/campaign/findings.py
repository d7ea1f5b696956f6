"""A failed unit becomes a :class:`Finding`; a finding gets a reproducer that fails 10 of 10.

What a finding is: one weakness, named by four things that do not change from one run to
the next -- the failure class (:func:`clnrm.healing.classify.classify`), the service that
gave way, the fault in play and the expectation that failed.  Run figures (a success rate
of 0.62 here, 0.58 there) stay in the message, never in the key, so a campaign that hits
the same weakness forty times keeps one finding seen forty times.

A reproducer is the unit's scenario cut down to what shows the weakness: only the failing
expectation (or the steps up to the failing one), only the fault it judges, only the
services that fault, the probes and the steps need (and what those depend on).  It is
trusted only after the real runner ran it ``runs`` times (10 by default) and every run
failed with the same finding key; otherwise the finding says how often it reproduced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from clnrm.swarm.campaign.explore import fault_name, parsed, to_toml
from clnrm.swarm.campaign.model import FaultChoice, Finding, UnitResult, UnitSpec, finding_key

if TYPE_CHECKING:
    from clnrm.agents.negotiation import SwarmReport
    from clnrm.memory import MemoryStore

    from clnrm.results import TestResult
    from clnrm.scenario.layers import FaultSpec
    from clnrm.scenario.model import Scenario

NO_FAULT: Final = "-"
"""``Finding.fault`` / ``Finding.service`` when no fault (or no one service) was in play."""
RERUNS: Final = 10
BEFORE_ANY_FAULT: Final = "chaos: steady-state hypothesis before the faults"
"""A verdict no fault can have caused: the experiment stopped before injecting any."""
MESSAGE_LIMIT: Final = 600

RerunFn = Callable[[Path, int], "list[TestResult]"]
"""``(reproducer path, runs) -> one TestResult per run``: the real runner by default."""


@dataclass(frozen=True)
class Weakness:
    """The four parts of a finding's key, and the words that go with them."""

    failure_class: str
    service: str
    fault: str
    expectation: str
    message: str
    fault_label: str | None = None  # the [[chaos.faults]] name, for the reproducer

    @property
    def key(self) -> str:
        return finding_key(self.failure_class, self.service, self.fault, self.expectation)


def weakness_of(test: TestResult, scenario: Scenario | None,
                choice: FaultChoice | None = None, *, pick: int = 0) -> Weakness | None:
    """What ``test`` shows, or None when it passed: one of :func:`weaknesses_of`, chosen
    by ``pick`` (the unit's seed) when several verdicts failed alike, so the units of one
    campaign surface each of them, each unit deterministically."""
    found = weaknesses_of(test, scenario, choice)
    return found[pick % len(found)] if found else None


def weaknesses_of(test: TestResult, scenario: Scenario | None,
                  choice: FaultChoice | None = None) -> list[Weakness]:
    """Every weakness ``test`` shows (none when it passed).

    The failed validations, only those aimed at the explored fault ``choice`` when there
    are any (a new weakness tells more than the file's known one); without one, the first
    failed step; without that, the test's own message (a service that never started).
    """
    if test.outcome.value == "passed":
        return []
    from clnrm.healing.classify import classify

    cls = classify(test, scenario)
    failed = test.failed_validations
    if choice is not None:
        mine = f"@{fault_name(choice)}:"
        failed = [v for v in failed if mine in v.expectation] or failed
    found: list[tuple[str, str, FaultSpec | None]] = [
        (f"{v.validator}: {v.expectation}", v.message or f"expected {v.expected}; saw {v.seen}",
         _fault_of_validation(scenario, v.validator, v.expectation)) for v in failed]
    if not found and (step := next((s for s in test.steps if s.outcome.value == "failed"),
                                   None)):
        found = [(f"step {step.name}", step.message or f"exit code {step.exit_code}", None)]
    if not found:
        found = [(f"test: {cls.failure_class.value}", (test.message or "").split("\n", 1)[0],
                  None)]
    out = []
    for expectation, message, judged in found:
        if expectation.startswith(BEFORE_ANY_FAULT):  # the system was not steady: no fault
            out.append(Weakness(cls.failure_class.value, cls.context.service or NO_FAULT,
                                NO_FAULT, expectation, message[:MESSAGE_LIMIT]))
            continue
        spec = judged or _fault_in_play(scenario, choice)
        fault = spec.type if spec is not None else (choice.fault if choice else NO_FAULT)
        service = ((spec.target if spec is not None else None)
                   or (choice.target if choice else None)
                   or cls.context.service or NO_FAULT)
        out.append(Weakness(cls.failure_class.value, service, fault, expectation,
                            message[:MESSAGE_LIMIT], spec.label if spec is not None else None))
    return out


def _faults(scenario: Scenario | None) -> list[FaultSpec]:
    return list(scenario.chaos.faults) if scenario is not None and scenario.chaos else []


def _fault_of_validation(scenario: Scenario | None, validator: str,
                         expectation: str) -> FaultSpec | None:
    """The fault a resilience verdict judged (its expectation's ``fault``), or the one a
    chaos verdict names (``fault 'freeze_db' #1 applied ...``)."""
    faults = _faults(scenario)
    label: str | None = None
    if validator == "resilience" and scenario is not None:
        name = expectation.split(": ", 1)[0]
        for exp in scenario.expect.resilience:
            if (exp.name or f"resilience under {exp.fault or 'every fault'}") == name:
                label = exp.fault
                break
    elif validator == "chaos" and (m := re.match(r"fault '([^']+)'", expectation)):
        label = m.group(1)
    if label is None:
        return None
    return next((f for f in faults if f.label == label),
                next((f for f in faults if f.type == label), None))


def _fault_in_play(scenario: Scenario | None, choice: FaultChoice | None) -> FaultSpec | None:
    """The explored fault when there is one, else the file's only fault."""
    faults = _faults(scenario)
    if choice is not None:
        return next((f for f in faults if f.label == fault_name(choice)), None)
    return faults[0] if len(faults) == 1 else None


def finding_for(unit: UnitSpec, outcome: UnitResult | SwarmReport,
                test: TestResult | None = None, scenario: Scenario | None = None, *,
                text: str | None = None, memory: MemoryStore | None = None) -> Finding | None:
    """The finding a unit's failed run shows; None for a unit that passed or broke.

    Two ways in.  With the unit's :class:`UnitResult` and its ``test`` (the scenario's
    TestResult, ``scenario`` the file as loaded).  Or, as the campaign worker calls it,
    with the unit's :class:`~clnrm.agents.negotiation.SwarmReport`, the TOML ``text`` it
    ran and the ``memory`` its agents wrote to: the agents keep no TestResult, so the
    failed verdicts are read back from the failure records they filed for the unit's
    clnrm runs (:func:`test_from_memory`).  The finding names this unit as its first.
    """
    if isinstance(outcome, UnitResult):
        if outcome.outcome != "failed" or test is None:
            return None
    else:
        if outcome.exit_code != 1:
            return None
        if text is not None:
            from clnrm.scenario.loader import loads_scenario

            scenario = loads_scenario(text, source=unit.scenario)
        test = test_from_memory(outcome, memory, scenario, source=unit.scenario)
    weak = weakness_of(test, scenario, unit.fault, pick=unit.seed)
    if weak is None:
        return None
    return Finding(key=weak.key, failure_class=weak.failure_class, service=weak.service,
                   fault=weak.fault, expectation=weak.expectation, message=weak.message,
                   first_unit=unit.id, units=[unit.id], occurrences=1)


_CHAOS_MESSAGE: Final = re.compile(
    r"^chaos experiment .+?: (?P<exp>.+): expected (?P<expected>.*?); saw (?P<seen>.*)$", re.S)


def test_from_memory(report: SwarmReport, memory: MemoryStore | None,
                     scenario: Scenario | None, *, source: str = "") -> TestResult:
    """The unit's failed test as far as its agents recorded it.

    The chaos agent files one failure per failed verdict (``chaos experiment <name>:
    <expectation>: expected <x>; saw <y>``, signature ``chaos:<validator>``); the
    orchestration agent one per failed run, its signature naming the failed steps; the
    performance agent one per regression.  Those become the validations, steps and
    message :func:`clnrm.healing.classify.classify` reads.  Without a memory (or with no
    records) the failed outcomes' own reasons are the message.
    """
    from clnrm.results import Outcome, StepResult, TestResult, ValidationResult, ValidationStatus

    runs = [str(o.facts["clnrm_run"]) for o in report.outcomes
            if "clnrm_run" in o.facts and o.status.value == "failed"]
    records: list[Any] = []
    for run in runs:
        if memory is None:
            break
        hits = memory.query("failed", kind="failure", where={"run_id": run}, k=20)
        records.extend(sorted((h.record for h in hits), key=lambda r: str(r.message)))
    validations: list[ValidationResult] = []
    steps: list[StepResult] = []
    messages: list[str] = []
    for r in records:
        signature = str(getattr(r, "signature", ""))
        message = str(getattr(r, "message", ""))
        if signature.startswith("chaos:") and (m := _CHAOS_MESSAGE.match(message)):
            validations.append(ValidationResult(
                validator=signature[6:], expectation=m["exp"], status=ValidationStatus.FAIL,
                expected=m["expected"], seen=m["seen"],
                message=f"{m['exp']}: expected {m['expected']}; saw {m['seen']}"))
        elif signature.startswith("performance:"):
            validations.append(ValidationResult(
                validator="performance", expectation=signature[12:],
                status=ValidationStatus.FAIL, seen=message, message=message))
        else:
            messages.append(message.split(": ", 1)[-1] if " run " in message else message)
            steps.extend(StepResult(name=name, command=[], outcome=Outcome.FAILED,
                                    message=message) for name in signature.split(",") if name)
    if not records:
        messages = [o.reason for o in report.outcomes if o.status.value == "failed"]
    name = scenario.name if scenario is not None else source
    return TestResult(name=name, file=source, outcome=Outcome.FAILED, validations=validations,
                      steps=steps, message="\n".join(messages) or None)


def finding_facts(finding: Finding | None) -> dict[str, str]:
    """Facts the driver adds to the unit's result so the explorer credits the right fault
    (:func:`clnrm.swarm.campaign.explore.tallies`)."""
    if finding is None:
        return {}
    return {"finding_fault": finding.fault, "finding_service": finding.service}


# -- the reproducer ------------------------------------------------------------------------


def reproducer_path(home: Path, campaign_id: str, key: str) -> Path:
    """``<campaign home>/<id>/findings/<key>.clnrm.toml``."""
    return home / campaign_id / "findings" / f"{key}.clnrm.toml"


def minimal_document(text: str, finding: Finding, *, source: str | None = None
                     ) -> dict[str, Any]:
    """The scenario ``text`` (rendered when it is a template) as a TOML document cut down
    to the finding: its expectation, its fault, its probes, the services they need."""
    from clnrm.scenario.loader import loads_scenario

    doc = parsed(text, source)
    scenario = loads_scenario(text, source=source)
    validator, _, what = finding.expectation.partition(": ")
    keep_steps: list[dict[str, Any]] = list(doc.get("steps", []))
    expect = doc.get("expect", {})
    fault_label: str | None = None
    probes_needed: set[str] | None = None  # None: every probe
    if validator == "resilience" and isinstance(expect, dict):
        name = what.split(": ", 1)[0]
        kept = [e for e in expect.get("resilience", [])
                if (e.get("name") or f"resilience under {e.get('fault') or 'every fault'}")
                == name]
        doc["expect"] = {"resilience": kept} if kept else {}
        if kept:
            fault_label = kept[0].get("fault")
            probes_needed = {kept[0]["probe"]} if kept[0].get("probe") else None
    elif finding.expectation.startswith("step "):
        name = finding.expectation[5:]
        upto = next((i for i, s in enumerate(keep_steps) if s.get("name") == name), None)
        if upto is not None:
            keep_steps = keep_steps[:upto + 1]
        doc.pop("expect", None)
    elif validator not in ("chaos", "test") and isinstance(expect, dict):
        table = {"counts": "counts", "status": "status", "order": "order",
                 "graph": "graph", "hermeticity": "hermeticity"}.get(validator, validator)
        doc["expect"] = {table: expect[table]} if table in expect else expect
        doc["expect"].pop("resilience", None)
    else:
        doc.pop("expect", None)
    if keep_steps:
        doc["steps"] = keep_steps
    chaos = doc.get("chaos")
    if isinstance(chaos, dict):
        faults = chaos.get("faults", [])
        chosen = [f for f in faults if fault_label is not None
                  and (f.get("name") or _label(f)) == fault_label]
        if not chosen:
            chosen = [f for f in faults if f.get("type") == finding.fault
                      and f.get("target") == finding.service]
        chaos["faults"] = chosen[:1]
        if not chaos["faults"]:
            chaos.pop("faults")
        steady = set(chaos.get("steady_state", []))
        wanted = None if probes_needed is None else probes_needed | steady
        if wanted is not None:
            chaos["probes"] = [p for p in chaos.get("probes", []) if p.get("name") in wanted]
    doc["services"] = _needed_services(doc, scenario)
    doc.pop("service", None)
    meta = doc.get("meta")
    if isinstance(meta, dict) and "name" in meta:
        meta["name"] = f"{meta['name']}_finding_{finding.key[:8]}"
    return doc


def _label(fault: Mapping[str, Any]) -> str:
    t = str(fault.get("type"))
    return f"{t}:{fault['target']}" if fault.get("target") else t


def _needed_services(doc: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """The declared services the kept steps, probes and faults name (as a field, or as a
    word in a command), and everything those depend on."""
    services: dict[str, Any] = dict(doc.get("services", {}))
    services.update(doc.get("service", {}) if isinstance(doc.get("service"), dict) else {})
    if doc.get("expect", {}).keys() - {"resilience"} or doc.get("scenarios"):
        return services  # span expectations and scenario blocks: every service may speak
    named: set[str] = set()
    found = doc.get("chaos")
    chaos: dict[str, Any] = found if isinstance(found, dict) else {}
    texts: list[str] = []
    for fault in chaos.get("faults", []):
        named.add(str(fault.get("target", "")))
        for key in ("with", "from"):
            value = fault.get(key)
            named.update(value if isinstance(value, list) else [value] if value else [])
    for probe in chaos.get("probes", []):
        for kind in ("http", "tcp"):
            if isinstance(probe.get(kind), dict):
                named.add(str(probe[kind].get("service", "")))
        named.add(str(probe.get("service") or ""))
        texts.append(str(probe.get("command") or ""))
    for step in doc.get("steps", []):
        named.add(str(step.get("service") or ""))
        texts.append(str(step.get("command", "")) + " " + str(step.get("env", "")))
    words = set(re.findall(r"[A-Za-z0-9_.-]+", " ".join(texts)))
    named |= {name for name in services if name in words}
    needed: set[str] = set()
    todo = [n for n in named if n in scenario.services]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo.extend(d for d in scenario.services[name].depends_on if d in scenario.services)
    return {name: cfg for name, cfg in services.items() if name in needed}


def write_reproducer(finding: Finding, text: str, path: Path, *, source: str | None = None,
                     runs: int = RERUNS, jobs: int = 1, rerun: RerunFn | None = None
                     ) -> Finding:
    """Write the minimal reproducer of ``finding`` (cut from the unit's scenario ``text``)
    to ``path`` (a ``.toml`` file, or the campaign's findings folder: then
    ``<key>.clnrm.toml`` in it), rerun it ``runs`` times and return the finding with
    ``reproducer``, ``verified_runs`` and ``verified_failures`` set.

    A rerun counts as a failure only when it fails with the same finding key; a rerun
    whose experiment never started is replaced (:func:`_verify`).  Each rerun's outcome
    is kept beside the reproducer in ``<key>.reruns.json``, so a 9/10 can be read.  When
    the cut-down file does not load (a table the cut left dangling), the whole scenario
    is used instead: a larger reproducer beats none.  ``rerun`` replaces the real runner
    (unit tests); ``runs=0`` writes the file without verifying it; ``jobs`` reruns that
    many copies at once (a weakness that shows only when the machine is quiet is worth
    knowing about too, so 1 is the default).
    """
    from clnrm.errors import ScenarioError
    from clnrm.scenario.loader import loads_scenario

    if path.suffix != ".toml":
        path = path / f"{finding.key}.clnrm.toml"
    try:
        body = to_toml(minimal_document(text, finding, source=source))
        loads_scenario(body, source=str(path))
    except ScenarioError:
        body = text
    header = (f"# Reproducer of campaign finding {finding.key}: {finding.failure_class} of "
              f"{finding.service} under {finding.fault}\n# expectation: "
              f"{finding.expectation}\n# first seen in unit {finding.first_unit}; "
              f"`clnrm run {path.name}` fails while the weakness is there\n")
    if source:
        header += f"# cut from {source}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + body)
    tmp.replace(path)
    verified, failures, rows = _verify(finding, path, runs, jobs=jobs, rerun=rerun)
    if rows:
        log_file = path.with_name(path.name.removesuffix(".clnrm.toml") + ".reruns.json")
        log_file.write_text(json.dumps(rows, indent=1) + "\n")
    return finding.model_copy(update={"reproducer": str(path), "verified_runs": verified,
                                      "verified_failures": failures})


def _verify(finding: Finding, path: Path, runs: int, *, jobs: int, rerun: RerunFn | None
            ) -> tuple[int, int, list[dict[str, Any]]]:
    """(reruns counted, of those the ones that failed with the finding, one row per rerun).

    A rerun whose experiment never happened (the steady state did not hold before any
    fault, the engine could not inject the fault, or the test could not run at all) says
    nothing about the weakness: it is run again instead, at most ``runs // 2`` times in
    all, then counted as not reproduced.
    """
    from clnrm.scenario.loader import loads_scenario

    scenario = loads_scenario(path.read_text(), source=str(path))
    choice = (FaultChoice(fault=finding.fault, target=finding.service, explore=True,
                          reason="reproducer") if finding.fault != NO_FAULT else None)
    verified = failures = 0
    spare = runs // 2
    rows: list[dict[str, Any]] = []
    while verified < runs:
        need = runs - verified
        tests = rerun(path, need) if rerun is not None else rerun_with_runner(path, need,
                                                                                jobs=jobs)
        for test in tests[:need]:
            seen = weaknesses_of(test, scenario, choice)
            matched = any(w.key == finding.key for w in seen)
            void = not matched and (test.outcome.value == "error" or (bool(seen) and all(
                _void(w.expectation) for w in seen)))
            counted = not (void and spare > 0)
            spare -= not counted
            verified += counted
            failures += counted and matched
            rows.append({"rerun": len(rows) + 1, "outcome": test.outcome.value,
                         "reproduced": matched, "counted": counted,
                         "seen": [w.expectation for w in seen][:5],
                         "message": (test.message or "").split("\n", 1)[0][:300]})
    return verified, failures, rows


_NOT_INJECTED: Final = re.compile(
    r"^(?:chaos: fault '.*' #\d+ applied and rolled back|resilience: .*: fault applied)$")


def _void(expectation: str) -> bool:
    """A verdict about the experiment, not the system: it never got to the fault."""
    return expectation == BEFORE_ANY_FAULT or bool(_NOT_INJECTED.match(expectation))


def rerun_with_runner(path: Path, runs: int, *, jobs: int = 1) -> list[TestResult]:
    """Run the file ``runs`` times with the real runner (one run, ``runs`` copies of the
    test under distinct names, ``jobs`` at once) and return each copy's result."""
    from clnrm.api import run_options
    from clnrm.runner import Runner
    from clnrm.scenario.loader import load_scenario

    scenario = load_scenario(path)
    copies = [scenario.model_copy(update={"name": f"{scenario.name}_rerun{i + 1}"})
              for i in range(runs)]
    result = Runner(run_options(jobs=jobs)).run(copies)
    return list(result.tests)


def reproducible(finding: Finding) -> bool:
    """Verified: every rerun failed with this finding."""
    return finding.verified_runs > 0 and finding.verified_failures == finding.verified_runs


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """Findings merged by key (units united, occurrences summed), first seen first."""
    merged: dict[str, Finding] = {}
    for f in findings:
        old = merged.get(f.key)
        if old is None:
            merged[f.key] = f.model_copy(update={"units": list(f.units)})
            continue
        units = list(dict.fromkeys([*old.units, *f.units]))
        merged[f.key] = old.model_copy(update={"units": units, "occurrences": len(units)
                                               or old.occurrences + f.occurrences})
    return list(merged.values())


__all__ = ["NO_FAULT", "RERUNS", "Weakness", "dedupe", "finding_facts", "finding_for",
           "minimal_document", "rerun_with_runner", "reproducer_path", "reproducible",
           "test_from_memory", "to_toml", "weakness_of", "weaknesses_of", "write_reproducer"]
