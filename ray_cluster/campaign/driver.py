"""The campaign driver: a foreground loop that plans units, hands them to workers and
records each result once in the ledger.

The loop in one breath: claim the ledger (owner pid + heartbeat), reap what dead owners left
(containers, networks, chaos faults: :func:`clnrm.gc.collect_dead_runs`), start K
:class:`~clnrm.swarm.campaign.worker.CampaignWorker` actors, then while the budget or the
duration lasts: give every idle worker the next unit (pending units of an earlier driver
first, then new ones), record every result that comes back, stop when asked.

Planning is deterministic for (seed, ledger contents): unit ``i`` runs file ``i mod n`` of
the campaign; its first round (and every third, for a file with faults of its own) runs the
file as written, other rounds add the fault the explorer
(:func:`clnrm.swarm.campaign.explore.choose_fault`) draws from the results recorded so far
with the unit's seed.  A unit is stored before it is handed out, so a
resumed driver redoes exactly what was planned and never recorded.

How it ends: ``done`` (budget or duration spent), ``stopped`` (``campaign stop``, Ctrl-C,
SIGTERM; resumable), ``failed`` (the memory stopped answering, or workers kept dying:
the unit in flight is not recorded, so ``resume`` redoes it once the cause is fixed).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog
from clnrm.agents.base import RunSettings
from clnrm.swarm.campaign.ledger import DRIVER_ENV, Ledger, driver_marker
from clnrm.swarm.campaign.model import (
    UNIT_KINDS,
    CampaignState,
    FaultChoice,
    Finding,
    UnitResult,
    UnitSpec,
    unit_id,
)

from clnrm.errors import ClnrmError

log = structlog.get_logger("clnrm.campaign")

HEARTBEAT_S: Final = 2.0
POLL_S: Final = 0.5
WORKER_RESTARTS: Final = 3
"""Ray restarts of a killed worker actor (and resends of its unit) before the driver sees
it dead; then the driver starts a fresh actor for the slot, this many times in all."""
AS_WRITTEN_EVERY: Final = 3
"""A file with faults of its own runs as written every this many rounds (an explored fault
replaces the file's own, so its own weaknesses show only in those rounds)."""
RECYCLE_UNITS: Final = 20
"""Units a worker actor runs before the driver replaces it: units run in-process, and what
they leave in the process (caches, imported modules' state) is let go of this way."""
PERFORMANCE_EVERY: Final = 5
"""A file's performance layer runs in its first round and every this many rounds after:
measurements are the slow part of a unit and a baseline needs no refresh every round."""

Progress = Callable[["CampaignView"], None]


class CampaignFailed(ClnrmError):
    """Nothing could continue (the memory stopped answering, workers kept dying); the
    campaign is ``failed`` and resumable.  Exit code 1: a run went wrong, not the input."""

    exit_code = 1


@dataclass
class CampaignView:
    """What the progress display shows; rebuilt after every event."""

    id: str
    total: int | None
    done: int
    findings: int
    busy: dict[str, str] = field(default_factory=dict)  # worker -> what it runs
    last: str = ""


# -- planning ------------------------------------------------------------------------------


def unit_seed(campaign_seed: int, index: int) -> int:
    return random.Random(f"{campaign_seed}:{index}").randrange(2**31)


def plan_unit(ledger: Ledger, index: int, *, scenarios: dict[str, Any]) -> UnitSpec:
    """Unit ``index``, stored in the ledger (or what was stored for it before)."""
    spec = ledger.spec
    path, _ = spec.files[index % len(spec.files)]
    rnd = index // len(spec.files)
    seed = unit_seed(spec.seed, index)
    scenario = scenarios[path]
    own_faults = scenario.chaos is not None and bool(scenario.chaos.faults)
    as_written = rnd == 0 or (own_faults and rnd % AS_WRITTEN_EVERY == 0)
    fault = None if as_written else _choose_fault(scenario, ledger, seed)
    kinds = ["run", "generate", "heal"]
    if fault is not None or own_faults:
        kinds.append("chaos")
    if scenario.performance is not None and rnd % PERFORMANCE_EVERY == 0:
        kinds.append("performance")
    kinds = [k for k in UNIT_KINDS if k in kinds]
    return ledger.plan(UnitSpec(campaign_id=spec.id, index=index, id=unit_id(spec.id, index),
                                scenario=path, kinds=kinds, fault=fault, seed=seed))


def _choose_fault(scenario: Any, ledger: Ledger, seed: int) -> FaultChoice | None:
    try:
        from clnrm.swarm.campaign.explore import choose_fault
    except ImportError:  # no explorer: every unit runs its file as written
        return None
    return choose_fault(scenario, ledger.results(), seed, planned=ledger.planned())


def unit_text(unit: UnitSpec, files: dict[str, str]) -> str:
    """The TOML the unit runs: its file, plus the explored fault in its [chaos] table."""
    text = files[unit.scenario]
    if unit.fault is None:
        return text
    from clnrm.swarm.campaign.explore import scenario_with_fault

    return scenario_with_fault(text, unit.fault, source=unit.scenario)


def load_scenarios(files: list[tuple[str, str]]) -> dict[str, Any]:
    from clnrm.scenario.loader import loads_scenario

    return {path: loads_scenario(text, source=path) for path, text in files}


# -- the loop ------------------------------------------------------------------------------


@dataclass
class _Slot:
    name: str
    actor: Any = None
    unit: UnitSpec | None = None
    ref: Any = None
    kind: str = "unit"  # or "verify"
    finding: str | None = None
    fresh_actors: int = 0
    units_run: int = 0  # by the current actor


class CampaignDriver:
    """One driver session over an open ledger (start and resume are the same loop)."""

    def __init__(self, ledger: Ledger, *, on_progress: Progress | None = None,
                 address: str | None = None) -> None:
        self.ledger = ledger
        self.spec = ledger.spec
        self.address = address if address is not None else self.spec.address
        self.on_progress = on_progress or (lambda view: None)
        self.files = dict(self.spec.files)
        self.scenarios = load_scenarios(self.spec.files)
        self.folder = ledger.path.parent
        self._stop_heartbeat = threading.Event()
        self._elapsed_base = ledger.elapsed_s()
        self._session_start = time.monotonic()
        self._verified: set[str] = set()
        self.last = ""
        self.reason = ""

    # -- budget ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._elapsed_base + time.monotonic() - self._session_start

    def _budget_left(self) -> bool:
        planned, _ = self.ledger.counts()
        if self.spec.budget_units is not None and planned >= self.spec.budget_units:
            return False
        return not (self.spec.duration_s is not None and self.elapsed() >= self.spec.duration_s)

    def _spent(self) -> str:
        planned = self.ledger.counts()[0]
        if self.spec.budget_units is not None and planned >= self.spec.budget_units:
            return f"budget of {self.spec.budget_units} unit(s) spent"
        return f"duration of {self.spec.duration_s:g} s reached"

    def _finished(self) -> bool:
        planned, done = self.ledger.counts()
        return not self._budget_left() and done >= planned

    # -- session ---------------------------------------------------------------------------
    def run(self) -> CampaignState:
        """Drive until done, stopped or failed; the ledger's state says which.  Ctrl-C and
        SIGTERM (as KeyboardInterrupt) stop it resumably and propagate after cleanup."""
        from clnrm.swarm.launch import _reap_after
        from clnrm.swarm.session import ray_session

        from clnrm.procs import descendants

        end_orphans(self.ledger)
        self.ledger.claim()
        # inherited by embedded Ray's every process: a resume finds what this driver's
        # SIGKILL left running even if it started after the tree was last recorded
        os.environ[DRIVER_ENV] = driver_marker(self.spec.id, os.getpid()).partition("=")[2]
        beat = threading.Thread(target=self._heartbeat, name="campaign-heartbeat", daemon=True)
        beat.start()
        reaper = threading.Thread(target=reap_dead_runs, name="campaign-reap", daemon=True)
        reaper.start()  # beside Ray's start: nothing a unit needs waits for it
        children: set[int] = set()
        slots: list[_Slot] = []
        embedded = False
        term = _sigterm_handler()
        try:
            with ray_session(self.address, num_cpus=2) as session:
                _restore_sigterm(term)  # ray.init makes SIGTERM a bare sys.exit
                embedded = session.embedded
                slots = [_Slot(name=f"w{k}") for k in range(max(1, self.spec.workers))]
                try:
                    for slot in slots:
                        self._start_actor(slot)
                    # Ray's agents (dashboard, runtime env) do not carry the driver's
                    # marker and outlive a SIGKILLed driver: record them before any unit
                    self.ledger.set_processes(descendants(os.getpid()))
                    state = self._loop(slots)
                finally:
                    children = descendants(os.getpid())
                    self._kill(slots)
        except KeyboardInterrupt:
            self._end(CampaignState.stopped, "interrupted")
            raise
        except CampaignFailed as exc:
            self._end(CampaignState.failed, exc.message)
            raise
        except BaseException as exc:
            self._end(CampaignState.failed, f"{type(exc).__name__}: {str(exc)[:300]}")
            raise
        finally:
            self._stop_heartbeat.set()
            beat.join(timeout=5)
            reaper.join(timeout=60)
            if embedded:
                _reap_after(children)
        self._end(state, self.reason)
        return state

    def _end(self, state: CampaignState, reason: str) -> None:
        with contextlib.suppress(Exception):
            self.ledger.heartbeat(elapsed_s=self.elapsed())
            self.ledger.set_state(state, reason)
            log.info("campaign.end", campaign=self.spec.id, state=state.value, reason=reason)

    def _heartbeat(self) -> None:
        from clnrm.procs import descendants

        while not self._stop_heartbeat.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                self.ledger.heartbeat(elapsed_s=self.elapsed())
                # every beat: what a resume ends is what the last record names, and a
                # driver SIGKILLed between two records left Ray's newest processes running
                self.ledger.set_processes(descendants(os.getpid()))

    def _loop(self, slots: list[_Slot]) -> CampaignState:
        import ray

        queue: deque[UnitSpec] = deque(self.ledger.pending())
        stopping = False
        while True:
            if not stopping and self.ledger.stop_requested():
                stopping, self.reason = True, "stop requested"
            for slot in slots:
                if slot.ref is None and not stopping:
                    verifying = sum(s.ref is not None and s.kind == "verify" for s in slots)
                    self._dispatch(slot, queue, may_verify=verifying < max(1, len(slots) // 2)
                                   or not self._budget_left())
            busy = [s for s in slots if s.ref is not None]
            self._show(slots)
            if not busy:
                if stopping:
                    return CampaignState.stopped
                if self._finished() or (not queue and not self._budget_left()):
                    self.reason = self._spent()
                    return CampaignState.done
                time.sleep(POLL_S)
                continue
            ready, _ = ray.wait([s.ref for s in busy], num_returns=1, timeout=POLL_S)
            for slot in busy:
                if slot.ref in ready:
                    self._collect(slot, queue)

    def _dispatch(self, slot: _Slot, queue: deque[UnitSpec], *, may_verify: bool) -> None:
        """Units an earlier driver left unrecorded first, then findings to verify (on at
        most half the workers while units remain: ten reruns each), then new units."""
        if queue:
            unit = queue.popleft()
        elif may_verify and self._verify_next(slot):
            return
        elif self._budget_left():
            unit = plan_unit(self.ledger, self.ledger.counts()[0], scenarios=self.scenarios)
        else:
            return
        attempt = self.ledger.start_attempt(unit.id)
        try:
            text = unit_text(unit, self.files)
        except ClnrmError as exc:  # the explored fault does not fit the file: say so, go on
            self._record(UnitResult(unit=unit.id, index=unit.index, outcome="error",
                                    duration_s=0.0, worker=slot.name, attempt=attempt,
                                    facts={"error": str(exc)[:500]}), None)
            return
        slot.unit, slot.kind = unit, "unit"
        slot.ref = slot.actor.run_unit.remote(unit, text, attempt)
        log.info("campaign.dispatch", unit=unit.id, worker=slot.name, attempt=attempt)

    def _verify_next(self, slot: _Slot) -> bool:
        """Give the slot a finding whose reproducer was never written, if any (idempotent
        by key: a resumed driver verifies what the last one did not finish)."""
        if not _can_verify():
            return False
        for finding in self.ledger.findings():
            if finding.verified_runs or finding.key in self._verified:
                continue
            unit = next((u for u in self.ledger.planned() if u.id == finding.first_unit), None)
            if unit is None:
                continue
            self._verified.add(finding.key)
            slot.unit, slot.kind, slot.finding = unit, "verify", finding.key
            slot.ref = slot.actor.verify_finding.remote(
                finding, unit_text(unit, self.files), str(self.folder / "findings"),
                unit.scenario)
            log.info("campaign.verify", finding=finding.key, unit=unit.id, worker=slot.name)
            return True
        return False

    def _collect(self, slot: _Slot, queue: deque[UnitSpec]) -> None:
        import ray
        from ray.exceptions import RayError, RayTaskError

        unit, ref, kind = slot.unit, slot.ref, slot.kind
        slot.ref, slot.unit = None, None
        assert unit is not None
        try:
            out = ray.get(ref)
        except RayTaskError as exc:
            from clnrm.swarm.campaign.worker import InfrastructureLost

            cause = getattr(exc, "cause", None)
            head = str(exc)[:2000]
            if isinstance(cause, InfrastructureLost) or "MemoryLost" in head or (
                    "EngineLost" in head):
                what = "engine" if "EngineLost" in head else "memory"
                raise CampaignFailed(f"{unit.id} not recorded: {cause or exc}",
                                     hint=f"start the {what} again, then `clnrm campaign "
                                          f"resume {self.spec.id}`") from None
            if kind == "verify":
                log.warning("campaign.verify_failed", finding=slot.finding, error=str(exc)[:300])
                return
            self._record(UnitResult(unit=unit.id, index=unit.index, outcome="error",
                                    duration_s=0.0, worker=slot.name,
                                    facts={"error": str(cause or exc)[:500]}), None)
            return
        except RayError as exc:
            # the actor died more often than Ray restarts it (or its worker process crashed
            # in a way Ray does not retry): the unit goes back first, a fresh actor for the slot
            log.warning("campaign.worker_dead", worker=slot.name, unit=unit.id, error=str(exc))
            if kind == "unit":
                queue.appendleft(unit)
            slot.fresh_actors += 1
            if slot.fresh_actors > WORKER_RESTARTS:
                raise CampaignFailed(f"worker {slot.name} kept dying ({exc})") from None
            self._start_actor(slot)
            return
        if kind == "verify":
            if out is not None:
                done = Finding.model_validate(out)
                self.ledger.update_finding(done.key, reproducer=done.reproducer,
                                           verified_runs=done.verified_runs,
                                           verified_failures=done.verified_failures)
            return
        result = UnitResult.model_validate(out["result"])
        finding = Finding.model_validate(out["finding"]) if out["finding"] else None
        self._record(result, finding)
        slot.units_run += 1
        if slot.units_run >= RECYCLE_UNITS:
            self._retire(slot)
            self._start_actor(slot)

    def _record(self, result: UnitResult, finding: Finding | None) -> None:
        new = self.ledger.record(result, finding)
        self.last = f"{result.unit} {result.outcome}" + (f" ({finding.key})" if finding else "")
        log.info("campaign.recorded", unit=result.unit, outcome=result.outcome, new=new,
                 finding=result.finding)

    # -- actors ----------------------------------------------------------------------------
    def _start_actor(self, slot: _Slot) -> None:
        import secrets

        import ray
        from clnrm.swarm.campaign.worker import CampaignWorker
        from clnrm.swarm.session import ENGINE_RESOURCE

        slot.units_run = 0
        remote = ray.remote(CampaignWorker)
        settings = RunSettings(artifacts_dir=str(self.folder / "runs"))
        slot.actor = remote.options(  # type: ignore[attr-defined]
            name=f"campaign-{self.spec.id}-{slot.name}-{secrets.token_hex(3)}", num_cpus=0,
            resources={ENGINE_RESOURCE: 0.01}, max_concurrency=1,
            max_restarts=WORKER_RESTARTS, max_task_retries=WORKER_RESTARTS,
        ).remote(self.spec.memory, settings, slot.name)

    @staticmethod
    def _retire(slot: _Slot) -> None:
        """End an idle worker: it lets go of the memory first (it may be an embedded
        store's writer), then the actor goes."""
        import ray

        with contextlib.suppress(Exception):
            ray.get(slot.actor.close.remote(), timeout=30)
        CampaignDriver._kill([slot])

    @staticmethod
    def _kill(slots: list[_Slot]) -> None:
        import ray

        for slot in slots:
            if slot.actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(slot.actor, no_restart=True)

    def _show(self, slots: list[_Slot]) -> None:
        done = self.ledger.counts()[1]
        busy = {s.name: (f"{s.unit.id.rsplit('/', 1)[1]} {Path(s.unit.scenario).name}"
                         + (f" +{s.unit.fault.fault}@{s.unit.fault.target}"
                            if s.unit.fault else "")
                         + (" (verifying a finding)" if s.kind == "verify" else ""))
                for s in slots if s.unit is not None}
        self.on_progress(CampaignView(id=self.spec.id, total=self.spec.budget_units,
                                      done=done, findings=len(self.ledger.findings()),
                                      busy=busy, last=self.last))


def _sigterm_handler() -> Any:
    import signal

    return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(handler: Any) -> None:
    """Put back the caller's SIGTERM handler (the CLI's: SIGTERM stops the campaign
    resumably, as Ctrl-C does) after Ray replaced it with one that exits at once."""
    import signal

    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGTERM, handler)


def _can_verify() -> bool:
    try:
        from clnrm.swarm.campaign import findings
    except ImportError:
        return False
    return hasattr(findings, "write_reproducer")


def end_orphans(ledger: Ledger) -> None:
    """SIGKILL what a killed driver's process tree left running (embedded Ray's agents
    outlive their raylet for a minute or more); identified by pid and start time."""
    import signal

    for pid in ledger.orphaned_processes():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            log.info("campaign.orphan_killed", pid=pid)


def reap_dead_runs() -> None:
    """What dead owners left (a killed driver's workers' containers, networks and applied
    faults); the engine being away is not fatal here, the units will say so."""
    try:
        from clnrm.backends.docker import docker_client
        from clnrm.gc import collect_dead_runs

        for leftovers in collect_dead_runs(docker_client()):
            log.info("campaign.reaped", run=leftovers.run_id,
                     containers=len(leftovers.containers), undone=len(leftovers.undone))
    except Exception as exc:
        log.warning("campaign.reap_failed", error=str(exc)[:300], hint="run `clnrm gc`")


def run_campaign(ledger: Ledger, *, on_progress: Progress | None = None) -> CampaignState:
    """Drive the campaign of ``ledger`` in this process until it is done, stopped or failed."""
    return CampaignDriver(ledger, on_progress=on_progress).run()


__all__ = ["CampaignDriver", "CampaignFailed", "CampaignView", "plan_unit", "reap_dead_runs",
           "run_campaign", "unit_text"]
