"""One chaos experiment inside one test: schedule, inject, watch, roll back, judge.

The experiment follows Chaos Toolkit's shape: the steady-state hypothesis (named
probes) must hold before anything is injected; faults are applied on their schedule
while the test's steps run and the probes keep sampling; every fault is rolled back;
then the hypothesis must hold again within ``recovery_timeout``.  What happened, and
when, lands in :class:`~clnrm.results.ChaosReport`, which the resilience
expectations and the reports read.

Rollback is structural: the session is a context manager entered right after the
sandbox, so it is left (and every applied fault undone, newest first) before the
sandbox removes the containers, whatever ends the test: success, failure, an
exception, Ctrl-C or SIGTERM.  For SIGKILL each fault's undo record is in the run's
journal before the fault is applied (:mod:`clnrm.chaos.journal`).

Times: the timeline is in seconds from the experiment's start (monotonic clock),
plus Unix nanoseconds so resilience checks can compare with span timestamps.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.errors import ChaosError, ClnrmError
from clnrm.results import ChaosEvent, ChaosReport, SteadyStateCheck
from clnrm.scenario.layers import Chaos, FaultSpec

if TYPE_CHECKING:
    from clnrm.backends.base import Sandbox
    from clnrm.chaos.base import Fault as FaultPlugin
    from clnrm.chaos.base import FaultConfig
    from clnrm.chaos.probes import ProbeRunner
    from clnrm.plugins.base import ServiceSpec
    from clnrm.scenario.model import Scenario

log = structlog.get_logger("clnrm.chaos")

_PROXY_PORT_KEYS = ("port",)


# -- load-time checks ------------------------------------------------------------------


# -- the session -----------------------------------------------------------------------


@dataclass
class _Entry:
    """One ``[[chaos.faults]]`` entry, resolved: plugin class and validated config."""

    index: int
    spec: FaultSpec
    cls: type[FaultPlugin[Any]]
    config: FaultConfig
    port: int | None = None


@dataclass(order=True)
class _Action:
    due: float
    seq: int
    kind: str = field(compare=False)  # "inject" | "rollback"
    event: ChaosEvent = field(compare=False)
    entry: _Entry = field(compare=False)


class ChaosSession:
    """The chaos layer inside one test (see the module docstring for the order of things)."""

    def __init__(self, sc: Scenario, box: Sandbox, *, specs: Mapping[str, ServiceSpec],
                 run_id: str, seed: int, traceparent: str | None = None,
                 proxied: Sequence[tuple[str, int]] = (),
                 cancelled: threading.Event | None = None,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        from clnrm.chaos.catalog import fault_types, proxied_port
        from clnrm.chaos.context import ChaosContext
        from clnrm.chaos.journal import Journal
        from clnrm.labels import owner_label

        self.sc = sc
        self.chaos = sc.chaos if sc.chaos is not None else Chaos()
        if not getattr(box, "supports_chaos", False):
            raise ChaosError("chaos faults need the docker backend (they act on containers, "
                             "networks and cgroups)", hint="run with --backend docker")
        self.ctx = ChaosContext(box, run_id=run_id, seed=seed,  # type: ignore[arg-type]
                                journal=Journal(run_id, owner_label()))
        self.traceparent = traceparent
        self.cancelled = cancelled or threading.Event()
        self._on_event = on_event or (lambda test, msg: None)
        self.report = ChaosReport(seed=seed)
        types = fault_types()
        self.entries: list[_Entry] = []
        for index, spec in enumerate(self.chaos.faults):
            cls = types.get(spec.type)
            if cls is None:
                raise ChaosError(f"unknown fault type {spec.type!r}", fault=spec.label)
            config = cls.Config.model_validate(spec.params)
            port = None
            if cls.proxied and spec.target is not None:
                port = proxied_port(spec, config, specs[spec.target].ports
                                    if spec.target in specs else ())
            self.entries.append(_Entry(index, spec, cls, config, port))
        self._proxied: dict[str, set[int]] = {}
        for service, port in [*proxied, *((e.spec.target, e.port) for e in self.entries
                                           if e.port is not None)]:
            if service is not None and port is not None:
                self._proxied.setdefault(service, set()).add(int(port))
        if self._proxied:
            from clnrm.chaos.proxy_manager import ProxyManager

            self.ctx.proxies = ProxyManager(self.ctx)
        self._t0: float | None = None
        self._lock = threading.Lock()
        self._heap: list[_Action] = []
        self._seq = itertools.count()
        self._active: dict[int, tuple[FaultPlugin[Any], ChaosEvent, str]] = {}  # id(event) -> ...
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._probes: ProbeRunner | None = None
        self._closed = False

    # -- phases ------------------------------------------------------------------------

    def on_launch(self, service: str) -> None:
        """Right after a service's container starts: put its disturbed ports behind the
        proxy before any dependant exists to connect."""
        ports = self._proxied.get(service)
        if ports and self.ctx.proxies is not None:
            for port in sorted(ports):
                self.ctx.proxies.install(service, port)

    def begin(self, receiver: Any = None) -> None:
        """Start the probes, check the steady state, then start the fault schedule."""
        from clnrm.chaos.probes import ProbeRunner

        self._probes = ProbeRunner(self.chaos.probes, self.ctx, traceparent=self.traceparent)
        self.report.probes = self._probes.series
        self._probes.start()
        hypothesis = self.chaos.steady_state
        if hypothesis:
            self._event("checking the steady-state hypothesis")
            ok, detail = self._probes.check(hypothesis, samples=self.chaos.steady_state_samples)
            self.report.steady_state.append(SteadyStateCheck(phase="before", ok=ok,
                                                             detail=detail))
            if not ok:
                self.report.aborted = ("steady state not met before any fault was injected: "
                                       f"{detail}")
                log.warning("chaos.aborted", reason=self.report.aborted)
                return
        self._t0 = time.monotonic()
        self.report.started_unix_ns = time.time_ns()
        self._probes.set_origin(self._t0)
        for entry in self.entries:
            if entry.spec.after in ("start", "steady_state"):
                self._plan(entry, anchor=0.0)
        self._thread = threading.Thread(target=self._loop, name="clnrm-chaos", daemon=True)
        self._thread.start()

    def on_step(self, name: str) -> None:
        """A step starts: faults anchored to it (``after = "step:<name>"``) are planned."""
        if self._t0 is None:
            return
        now = time.monotonic() - self._t0
        for entry in self.entries:
            if entry.spec.after == f"step:{name}":
                self._plan(entry, anchor=now)

    def end(self) -> None:
        """The steps are done: let the schedule finish, roll back, check the steady state."""
        if self._t0 is None:
            return
        minimum = self.chaos.duration or 0.0
        while not self.cancelled.is_set():
            elapsed = time.monotonic() - self._t0
            with self._lock:
                busy = self._busy
                pending = [a for a in self._heap if a.kind == "inject"]
                last_rollback = max((a.due for a in self._heap if a.kind == "rollback"),
                                    default=0.0)
            if elapsed >= minimum and not busy and not pending and (
                    not self._heap or last_rollback <= elapsed):
                break
            time.sleep(0.05)
        self._stop_schedule()
        self._rollback_all()
        self.report.duration_s = round(time.monotonic() - self._t0, 3)
        if self.chaos.steady_state and self._probes is not None and not self.cancelled.is_set():
            self._event("waiting for the steady state to return")
            started = time.monotonic()
            ok, detail = self._probes.wait_until(self.chaos.steady_state,
                                                 samples=self.chaos.steady_state_samples,
                                                 timeout=self.chaos.recovery_timeout,
                                                 cancelled=self.cancelled)
            self.report.steady_state.append(SteadyStateCheck(
                phase="after", ok=ok, at_s=round(time.monotonic() - self._t0, 3),
                waited_s=round(time.monotonic() - started, 3), detail=detail))
        if self._probes is not None:
            self._probes.stop()

    def close(self) -> None:
        """Guaranteed rollback: every applied fault undone, proxies gone, journal closed."""
        if self._closed:
            return
        self._closed = True
        self._stop_schedule()
        if self._probes is not None:
            self._probes.stop()
        self._rollback_all()
        if self.ctx.proxies is not None:
            try:
                self.ctx.proxies.close()
            except Exception as exc:  # reported, never masks the test's own error
                log.warning("chaos.proxy_close_failed", error=str(exc))
        if self.ctx.journal is not None:
            self.ctx.journal.close()

    def __enter__(self) -> ChaosSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- schedule ----------------------------------------------------------------------

    def _plan(self, entry: _Entry, *, anchor: float) -> None:
        """Put every occurrence of ``entry`` on the schedule (times fixed by the seed)."""
        spec = entry.spec
        rng = self.ctx.rng(f"schedule:{spec.label}")
        if spec.window is not None:
            first = anchor + rng.uniform(spec.window[0], spec.window[1])
        else:
            first = anchor + (spec.at or 0.0)
        for k in range(spec.repeat):
            planned = first + k * (spec.every or 0.0)
            event = ChaosEvent(fault=spec.label, type=spec.type, target=spec.target,
                               occurrence=k + 1, planned_s=round(planned, 3))
            self.report.timeline.append(event)
            if spec.probability is not None and rng.random() >= spec.probability:
                event.skipped = f"not drawn (probability {spec.probability:g})"
                continue
            with self._lock:
                heapq.heappush(self._heap, _Action(planned, next(self._seq), "inject",
                                                   event, entry))
        self._wake.set()

    def _loop(self) -> None:
        assert self._t0 is not None
        while not self._stop.is_set() and not self.cancelled.is_set():
            with self._lock:
                action = self._heap[0] if self._heap else None
                now = time.monotonic() - self._t0
                if action is not None and action.due <= now:
                    heapq.heappop(self._heap)
                    self._busy = True  # end() must not see an empty heap mid-action
                else:
                    action = None
            if action is None:
                wait = 0.05
                with self._lock:
                    if self._heap:
                        wait = max(0.0, min(0.05, self._heap[0].due - now))
                self._wake.wait(wait)
                self._wake.clear()
                continue
            try:
                if action.kind == "inject":
                    self._inject(action)
                else:
                    self._rollback(id(action.event))
            finally:
                with self._lock:
                    self._busy = False

    def _stop_schedule(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=120)
        with self._lock:
            for action in self._heap:
                if action.kind == "inject" and action.event.injected_s is None:
                    action.event.skipped = action.event.skipped or "experiment ended first"
            self._heap.clear()

    # -- inject / rollback ---------------------------------------------------------------

    def _now(self) -> float:
        return round(time.monotonic() - (self._t0 or time.monotonic()), 3)

    def _inject(self, action: _Action) -> None:
        entry, event = action.entry, action.event
        fault = entry.cls(entry.config, self.ctx, entry.spec.target or "")
        entry_id = f"{entry.index}.{event.occurrence}"
        journal = self.ctx.journal
        self._event(f"injecting {event.fault}")
        try:
            if journal is not None:
                undo = fault.undo_record()
                if undo is not None:
                    journal.record(entry_id, entry.cls.type, undo)
            with self._lock:  # registered first: a half-applied fault is rolled back too
                self._active[id(event)] = (fault, event, entry_id)
            event.injected_unix_ns = time.time_ns()
            event.injected_s = self._now()
            event.detail = fault.inject()
            if journal is not None:  # facts learned while injecting (old limits, pids)
                undo = fault.undo_record()
                if undo is not None:
                    journal.record(entry_id, entry.cls.type, undo)
            log.info("chaos.injected", fault=event.fault, target=event.target,
                     at_s=event.injected_s, detail=event.detail)
        except Exception as exc:
            event.error = f"inject failed: {_short(exc)}"
            log.warning("chaos.inject_failed", fault=event.fault, error=event.error)
            self._rollback(id(event))
            return
        if entry.spec.duration is not None:
            with self._lock:
                heapq.heappush(self._heap, _Action(
                    action.due + entry.spec.duration, next(self._seq), "rollback", event, entry))

    def _rollback(self, key: int) -> None:
        with self._lock:
            item = self._active.pop(key, None)
        if item is None:
            return
        fault, event, entry_id = item
        try:
            event.rollback_detail = fault.rollback()
            if self.ctx.journal is not None:
                self.ctx.journal.done(entry_id)
        except Exception as exc:
            if self._target_gone(fault.target, wait=5.0 if self.cancelled.is_set() else 0.0):
                # interrupted: the run is removing its containers at the same moment
                event.rollback_detail = f"{fault.target} was already removed; nothing to undo"
                if self.ctx.journal is not None:
                    self.ctx.journal.done(entry_id)
            else:
                message = f"rollback failed: {_short(exc)}"
                event.error = f"{event.error}; {message}" if event.error else message
                log.error("chaos.rollback_failed", fault=event.fault, error=message)
        event.rolled_back_s = self._now()
        event.rolled_back_unix_ns = time.time_ns()
        log.info("chaos.rolled_back", fault=event.fault, at_s=event.rolled_back_s)

    def _target_gone(self, service: str, *, wait: float = 0.0) -> bool:
        """True when the service's container no longer exists (the run reaped it); with
        ``wait``, give a removal that is under way that long to finish."""
        if not service:
            return False
        cid = self.ctx.box.container_id(service)
        if cid is None:
            return True
        deadline = time.monotonic() + wait
        while True:
            try:
                self.ctx.api.inspect_container(cid)
            except Exception as exc:
                if type(exc).__name__ == "NotFound":
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _rollback_all(self) -> None:
        """Newest first, like a stack of ``finally`` blocks."""
        with self._lock:
            keys = list(self._active)
        for key in reversed(keys):
            self._rollback(key)

    def _event(self, message: str) -> None:
        self._on_event(self.sc.name, message)


def _short(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ClnrmError) else f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__
