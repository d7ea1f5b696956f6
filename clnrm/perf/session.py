"""The performance layer inside one test: measure while the steps run, then judge.

While the system is live (:class:`PerfSession` is entered in
:meth:`clnrm.execution.TestExecution.live`, beside the chaos session):

1. :meth:`PerfSession.begin`, once every service is ready: the Docker stats of every
   service's container are sampled from now on (``[performance] stats``);
2. :meth:`PerfSession.measure` runs the steps: ``warmup`` passes first, unmeasured;
   then the load (``[performance.load]``) starts on its own thread, its ``warmup``
   seconds pass, and the measured window opens; ``iterations`` passes of the steps
   run inside it, and the window closes when the last pass and the whole load are done;
3. :meth:`PerfSession.end` stops the sampler (leaving the ``with`` block stops
   everything whatever happened).

After the sandbox is gone, :meth:`PerfSession.judge` reads the spans of the window
and does the slow part: metrics, critical path and its advice, then the baseline
policy of :func:`clnrm.perf.judge.judge_run` (the one function that decides, and the
one ``bench/regression.py`` measures) on the runs the shared memory keeps for the
scenario and environment fingerprint, the history drawn for the report, and finally
this run's record.  Nothing is recorded for a run whose steps failed or that ran
under injected chaos faults (a baseline measured under a fault would hide the
regression it causes); the first recordable run of a scenario on a fingerprint
starts its baseline and the next recordable runs join it, unjudged, until it has
``baseline_runs`` (:data:`FILL_RUNS`) runs; from then on every run is judged.

Why iterations share one live system: starting five services costs seconds, and the
regression test treats *runs* as the unit of replication anyway (run-to-run drift is
estimated from the baseline runs), so extra passes add samples, not replicates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import structlog

from clnrm.errors import ClnrmError
from clnrm.perf.judge import FILL_RUNS as _FILL_RUNS
from clnrm.perf.options import PerfOptions
from clnrm.results import Outcome, StepResult, TestResult, ValidationResult, ValidationStatus
from clnrm.scenario.layers import Performance

if TYPE_CHECKING:
    from clnrm.backends.base import Sandbox
    from clnrm.perf.baseline import Baseline, BaselineStore, RunMeasurement
    from clnrm.perf.fingerprint import Fingerprint
    from clnrm.perf.load import LoadRunResult
    from clnrm.perf.metrics import Window
    from clnrm.perf.result import MetricHistory
    from clnrm.perf.sampler import ContainerStatsSampler
    from clnrm.scenario.model import Scenario

log = structlog.get_logger("clnrm.perf")

_LOAD_JOIN_GRACE_S = 30.0
CHANGE_POINT_ALPHA = 0.05
"""Significance of the change points *drawn* in the report's history.  Looser than the
history check's (``alpha`` x :data:`~clnrm.perf.judge.HISTORY_ALPHA_SHARE`, which can
fail a test): a drawn change point only informs."""
FILL_RUNS = _FILL_RUNS
"""Runs a new baseline collects before runs are judged: :data:`clnrm.perf.judge.FILL_RUNS`
(re-exported here, where the policy used to live)."""


class PerfSession:
    """Measures one test while it runs; see the module docstring for the order of things."""

    def __init__(self, sc: Scenario, box: Sandbox, *, run_id: str, seed: int,
                 traceparent: str | None = None, options: PerfOptions | None = None,
                 cancelled: threading.Event | None = None,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.sc = sc
        self.perf = sc.performance if sc.performance is not None else Performance()
        self.box = box
        self.run_id = run_id
        self.seed = seed
        self.traceparent = traceparent
        self.options = options or PerfOptions()
        self.cancelled = cancelled or threading.Event()
        self._on_event = on_event or (lambda test, msg: None)
        self.fingerprint: Fingerprint | None = None
        self.window: Window | None = None
        self.load: LoadRunResult | None = None
        self.load_error: str | None = None
        self.warnings: list[str] = []
        self._sampler: ContainerStatsSampler | None = None
        self._load_thread: threading.Thread | None = None
        self._log = log.bind(run_id=run_id, test=sc.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.end()

    # -- while the system is live ------------------------------------------------------

    def begin(self) -> None:
        """Every service is ready: take the fingerprint and start sampling the containers."""
        from clnrm.perf.fingerprint import fingerprint_of

        try:
            self.fingerprint = fingerprint_of(self.box)
        except Exception as exc:  # the engine hiccuped: judged later as an ERROR
            self.warnings.append(f"environment fingerprint unavailable: {exc}")
        api = getattr(self.box, "_api", None)
        names = getattr(self.box, "service_names", None)
        find = getattr(self.box, "container_id", None)
        if self.perf.stats and api is not None and names is not None and find is not None:
            from clnrm.perf.sampler import ContainerStatsSampler

            containers = {name: cid for name in names() if (cid := find(name)) is not None}
            self._sampler = ContainerStatsSampler(api, containers).start()
        elif self.perf.stats and api is None and self.sc.services:
            self.warnings.append("container stats are sampled on the docker backend only")

    def measure(self, run_steps: Callable[[], list[StepResult]]) -> list[StepResult]:
        """Warm-up passes, then the load and the measured passes inside the window."""
        results: list[StepResult] = []
        passes = self.perf.warmup + self.perf.iterations
        for i in range(self.perf.warmup):
            self._on_event(self.sc.name, f"warm-up pass {i + 1}/{self.perf.warmup}")
            batch = run_steps()
            results += _labelled(batch, f"warm-up {i + 1}" if passes > 1 else None)
            if _stop(batch) or self.cancelled.is_set():
                return results
        load_warmup = self._start_load()
        if load_warmup > 0:
            self.cancelled.wait(load_warmup)
        start = time.time_ns()
        for i in range(self.perf.iterations):
            if self.perf.iterations > 1:
                self._on_event(self.sc.name, f"measured pass {i + 1}/{self.perf.iterations}")
            batch = run_steps()
            results += _labelled(batch, f"iteration {i + 1}" if passes > 1 else None)
            if _stop(batch) or self.cancelled.is_set():
                break
        self._join_load()
        self.window = (start, time.time_ns())
        return results

    def end(self) -> None:
        """Stop the sampler and wait for the load; safe to call twice."""
        self._join_load()
        if self._sampler is not None:
            self._sampler.stop()

    def _start_load(self) -> float:
        spec = self.perf.load
        if spec is None:
            return 0.0
        from clnrm.perf.load import LoadDriver

        host = self._address(spec.service)
        driver = LoadDriver(
            (host, spec.port, spec.path), rate_rps=spec.rate_rps,
            duration_s=spec.warmup + spec.duration,
            seed=spec.seed if spec.seed is not None else self.seed, arrival=spec.arrival,
            concurrency=spec.concurrency, timeout_s=spec.timeout, method=spec.method,
            headers=spec.headers, body=(spec.body or "").encode(),
            traceparent=self.traceparent)
        self._on_event(self.sc.name, f"load: {spec.rate_rps:g} rps to {driver.target} for "
                                     f"{spec.warmup + spec.duration:g} s")

        def run() -> None:
            try:
                self.load = driver.run()
            except Exception as exc:  # a broken load is reported, never a crash
                self.load_error = f"{type(exc).__name__}: {exc}"
                self._log.warning("perf.load_failed", error=self.load_error)

        self._load_thread = threading.Thread(target=run, name="clnrm-load", daemon=True)
        self._load_thread.start()
        return spec.warmup

    def _join_load(self) -> None:
        thread, self._load_thread = self._load_thread, None
        if thread is None:
            return
        spec = self.perf.load
        limit = (spec.warmup + spec.duration + spec.timeout if spec else 0) + _LOAD_JOIN_GRACE_S
        deadline = time.monotonic() + limit
        while thread.is_alive() and time.monotonic() < deadline:
            if self.cancelled.is_set():  # the driver cannot be stopped: leave the daemon be
                self.load_error = "the run was cancelled during the load"
                return
            thread.join(0.2)
        if thread.is_alive():
            self.load_error = f"the load did not finish within {limit:g} s"

    def _address(self, service: str) -> str:
        """Where the host reaches ``service``: its address on the test network (docker),
        else loopback (the local backend runs services as host processes)."""
        find = getattr(self.box, "container_id", None)
        if find is None:
            return "127.0.0.1"
        from clnrm.errors import ClnrmError

        cid = find(service)
        ip = self.box.address_of(cid) if cid else None  # type: ignore[attr-defined]
        if not ip:
            raise ClnrmError(f"[performance.load] service {service!r} has no address on the "
                             "test network", hint="name a declared service that is running")
        return str(ip)

    # -- after the sandbox is gone -----------------------------------------------------

    def judge(self, test: TestResult) -> list[ValidationResult]:
        """Measure, compare with the baseline, find change points, record; see module docs."""
        from clnrm.perf.critical_path import critical_paths
        from clnrm.perf.fingerprint import Fingerprint
        from clnrm.perf.judge import in_window, run_measurement
        from clnrm.perf.metrics import measure
        from clnrm.validators.base import Declarations

        where = Declarations(self.sc.source)
        test.warnings += self.warnings
        if self.load_error:
            test.warnings.append(f"performance load: {self.load_error}")
        if self.load is not None:
            test.warnings += [f"performance load: {w}" for w in self.load.warnings]
        spans = test.spans
        measured = measure(spans, window=self.window)
        samples = self._sampler.samples() if self._sampler is not None else []
        unknown = Fingerprint(backend="unknown", cpus=0, engine="unknown", kernel="unknown")
        run = run_measurement(
            scenario=self.sc.name, run_id=self.run_id, fingerprint=self.fingerprint or unknown,
            file=self.sc.source or "", spans=spans, measured=measured, window=self.window,
            load=self.load, load_warmup_s=self.perf.load.warmup if self.perf.load else 0.0,
            container_samples=samples)
        critical = critical_paths(in_window(spans, self.window))
        result = _new_result(measured, critical, self)
        test.performance = result
        if self.fingerprint is None:
            reason = "no fingerprint of the environment was taken, so no baseline can be chosen"
            return [_error("baseline", reason, where),
                    *self._expectations(test, run, None, where, no_baseline=reason)]
        opened = _opened(self.options)
        try:
            store = opened.__enter__()
        except Exception as exc:  # no memory: bounds can still be judged, baselines cannot
            self._log.warning("perf.memory_failed", error=str(exc))
            reason = f"the shared memory could not be used: {type(exc).__name__}: {exc}"
            return [_error("baseline", reason, where,
                           hint="install clnrm[memory], or point $CLNRM_MEMORY at a "
                                "writable folder"),
                    *self._expectations(test, run, None, where, no_baseline=reason)]
        try:
            return self._judge_with(test, run, store, where, result)
        except Exception as exc:  # a bad baseline file, a store that failed mid-way
            self._log.exception("perf.judge_failed")
            return [_error("baseline", str(exc) if isinstance(exc, ClnrmError)
                           else f"{type(exc).__name__}: {exc}", where)]
        finally:
            opened.__exit__(None, None, None)

    def _expectations(self, test: TestResult, run: RunMeasurement, baseline: Baseline | None,
                      where: Any, *, no_baseline: str) -> list[ValidationResult]:
        from clnrm.perf.judge import judge_expectations

        return judge_expectations(self.sc.expect.performance, spans=test.spans,
                                  window=self.window, run=run, baseline=baseline,
                                  perf=self.perf, where=where, seed=self.seed,
                                  no_baseline=no_baseline)

    def _judge_with(self, test: TestResult, run: RunMeasurement, store: BaselineStore,
                    where: Any, result: Any) -> list[ValidationResult]:
        """The policy's verdicts (:func:`clnrm.perf.judge.judge_run`, the function
        ``bench/regression.py`` measures) as results, then this run's record."""
        from clnrm.perf.baseline import baseline_measurements, load_baseline_file
        from clnrm.perf.judge import (
            HISTORY_ALPHA_SHARE,
            NEW_RUN_ALPHA_SHARE,
            judge_run,
            judge_verdicts,
            missing_spans,
        )

        fp = run.fingerprint
        from_file = load_baseline_file(self.perf.baseline, source=self.sc.source) \
            if self.perf.baseline else None
        stored = store.runs(self.sc.name, fp.key)
        why_not = self._not_recordable(test, run)
        judged = judge_run(stored, run, self.perf, seed=self.seed, baseline_file=from_file,
                           not_recorded=why_not)
        baseline = judged.baseline
        out: list[ValidationResult] = []
        no_baseline = ""
        if judged.state != "judged":
            no_baseline = judged.message
            if judged.state == "no_baseline":
                others = {k: n for k, n in store.fingerprints(self.sc.name).items()
                          if k != fp.key and n}
                if others:
                    no_baseline += "; baselines exist for " + ", ".join(
                        f"{k} ({n} run{'s' if n != 1 else ''})"
                        for k, n in sorted(others.items()))
            test.warnings.append(no_baseline)
            out.append(ValidationResult(validator="performance", expectation="baseline",
                                        status=ValidationStatus.SKIP, message=no_baseline,
                                        declared_at=where.at(("performance",))))
        else:
            assert baseline is not None
            out += judge_verdicts(judged.verdicts, baseline, self.perf, where,
                                  alpha=self.perf.alpha * NEW_RUN_ALPHA_SHARE)
            out += judge_verdicts(judged.shifts, baseline, self.perf, where,
                                  alpha=self.perf.alpha * HISTORY_ALPHA_SHARE, history=True)
            result.verdicts = list(judged.all_verdicts)
            test.warnings += [f"performance regression (not failing): {v.message}"
                              for v in judged.all_verdicts if v.regressed and not v.fails]
        if baseline is not None:
            result.baseline = baseline_measurements(baseline)
        # the SKIP above already says why: the expectations' regressions need a full baseline
        reference = baseline if judged.state == "judged" else None
        out += missing_spans(self.perf, run, reference, where)
        out += self._expectations(test, run, reference, where, no_baseline=no_baseline)
        history = stored[-self.perf.history:] if self.perf.history else []
        result.history = histories(history, run, self.perf, seed=self.seed)
        if why_not:
            self._log.info("perf.not_recorded", reason=why_not)
            if judged.state == "judged" and self.options.record:
                test.warnings.append(f"performance: this run was not recorded ({why_not})")
        else:
            as_baseline = ((judged.as_baseline and not self.perf.baseline)
                           or self.perf.record_baseline or self.options.save_baseline)
            store.record(run.model_copy(update={"baseline": as_baseline}),
                         history=self.perf.history, baseline_runs=self.perf.baseline_runs)
            self._log.info("perf.recorded", fingerprint=fp.key, baseline=as_baseline,
                           metrics=len(run.metrics))
        return out

    def _not_recordable(self, test: TestResult, run: RunMeasurement) -> str:
        """Why this run must not be remembered ("" when it may be)."""
        if not self.options.record:
            return "recording is off"
        if not run.metrics:
            return "it measured nothing: no server or client spans in the measured window"
        if any(s.outcome is Outcome.FAILED for s in test.steps):
            return "a step failed"
        if self.cancelled.is_set():
            return "the run was cancelled"
        chaos = test.chaos
        if chaos is not None and any(e.injected_s is not None for e in chaos.timeline):
            return "it ran under injected chaos faults"
        if chaos is not None and chaos.aborted:
            return "its chaos experiment was aborted"
        other = [v for v in test.failed_validations if v.validator != "performance"]
        if other:
            return f"an expectation failed: {other[0].expectation}"
        if self.load_error:
            return "the load failed"
        return ""


def histories(stored: list[RunMeasurement], run: RunMeasurement, perf: Performance,
              *, seed: int = 0) -> list[MetricHistory]:
    """Each compared metric's typical value over the stored runs and this one, with the
    change points found in it (none before four runs: a segment needs two)."""
    from clnrm.perf.changepoint import change_points
    from clnrm.perf.judge import compared
    from clnrm.perf.result import MetricHistory

    out = []
    runs = [r for r in stored if r.run_id != run.run_id] + [run]
    for name, metric in run.metrics.items():
        if not compared(name, perf):
            continue
        series = [(r.run_id, r.metrics[name].value) for r in runs if name in r.metrics]
        ids, values = [i for i, _ in series], [v for _, v in series]
        points = change_points(values, run_ids=ids, alpha=CHANGE_POINT_ALPHA, seed=seed) \
            if len(values) >= 4 else []
        out.append(MetricHistory(metric=name, unit=metric.unit, run_ids=ids, values=values,
                                 change_points=points))
    return out


def _new_result(measured: Any, critical: Any, session: PerfSession) -> Any:
    from clnrm.perf.result import PerformanceResult

    sampler = session._sampler
    return PerformanceResult(
        measurements=measured, critical_path=critical, load=session.load,
        containers=sampler.summary() if sampler is not None else {},
        container_samples=sampler.samples() if sampler is not None else [])


class _opened:  # noqa: N801 - a context manager, reads like one
    """The memory of ``options`` as a :class:`BaselineStore`; closed only if opened here."""

    def __init__(self, options: PerfOptions) -> None:
        self.options = options
        self._owned: Any = None

    def __enter__(self) -> BaselineStore:
        from clnrm.perf.baseline import BaselineStore

        ref = self.options.memory
        if ref is None or isinstance(ref, str | Path):
            from clnrm.memory import open_memory

            self._owned = open_memory(ref)
            return BaselineStore(self._owned)
        return BaselineStore(ref)

    def __exit__(self, *exc: object) -> None:
        if self._owned is not None:
            self._owned.close()


def _labelled(batch: list[StepResult], label: str | None) -> list[StepResult]:
    if label is None:
        return batch
    return [s.model_copy(update={"name": f"{s.name} [{label}]"}) for s in batch]


def _stop(batch: list[StepResult]) -> bool:
    return any(s.outcome is Outcome.FAILED for s in batch)


def _error(what: str, message: str, where: Any, *, hint: str = "") -> ValidationResult:
    return ValidationResult(validator="performance", expectation=what,
                            status=ValidationStatus.ERROR,
                            message=message + (f" (hint: {hint})" if hint else ""),
                            declared_at=where.at(("performance",)))


def performance_on(sc: Scenario) -> bool:
    """Whether the performance layer is on: the layer's own rule
    (:meth:`clnrm.perf.layer.PerformanceLayer.active`, through the layer registry)."""
    from clnrm.layers import layer_active

    return layer_active(sc, "performance")
