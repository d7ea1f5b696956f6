"""Runs loaded scenarios on a backend and returns a :class:`RunResult`.

Order of work, chosen so a run is never half-done: every file is planned
(plugins resolved, dependency graph checked) and every image checked *before*
the first container starts; only then do tests run, up to ``jobs`` at once,
each inside a sandbox context manager.  Interrupts are handled by the caller's
thread: it sets the cancel flag, reaps the run by label and re-raises.
"""

from __future__ import annotations

import importlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.backends.base import Backend
from clnrm.errors import BackendError, PluginError, ScenarioError
from clnrm.otel.digest import span_digest
from clnrm.perf.options import PerfOptions
from clnrm.plugins import get_service_type
from clnrm.plugins.base import ServiceSpec, SpecContext, probes_of
from clnrm.results import Outcome, RunResult, TestResult
from clnrm.scenario.model import Scenario

if TYPE_CHECKING:
    from clnrm.execution import TestExecution
    from clnrm.orchestration import OrchestrationPlan
    from clnrm.otel.selftrace import SelfTracer
    from clnrm.otel.span import Span
    from clnrm.scenario.layers import Orchestration

log = structlog.get_logger("clnrm.runner")

EventCallback = Callable[[str, str], None]
"""``(test name, message)``: progress for a UI; must be cheap and thread-safe."""


@dataclass
class RunOptions:
    backend: str = "docker"
    jobs: int = 1
    seed: int | None = None
    default_image: str = "clnrm/busybox:latest"
    image_map: dict[str, str] = field(default_factory=dict)
    fail_fast: bool = False
    otel_endpoint: str | None = None  # where clnrm exports its own spans (OTLP/HTTP)
    artifacts_dir: Path | None = None  # spans.jsonl per test under <dir>/<run id>/
    perf: PerfOptions = field(default_factory=PerfOptions)  # where baselines live


@dataclass
class TestPlan:
    """A scenario with its services resolved to specs and its orchestration planned."""

    scenario: Scenario
    levels: list[list[ServiceSpec]]
    needs_step_container: bool
    orchestration: OrchestrationPlan | None = None

    @property
    def images(self) -> set[str]:
        return {s.image for level in self.levels for s in level if s.image}

    @property
    def specs(self) -> dict[str, ServiceSpec]:
        return {s.name: s for level in self.levels for s in level}


def plan(scenario: Scenario, ctx: SpecContext) -> TestPlan:
    """Resolve plugins and the start order; raise ClnrmError on anything unrunnable."""
    from clnrm.orchestration import plan_orchestration

    if scenario.expectations_only:
        raise ScenarioError(
            "the test has only expectations and nothing to run (no [[steps]] or [[scenario]])",
            file=scenario.source,
            hint="judge a trace export with it: clnrm run FILE --traces EXPORT "
                 "(OTLP JSON, Jaeger JSON or spans.jsonl)")
    specs: dict[str, ServiceSpec] = {}
    for name, cfg in scenario.services.items():
        try:
            stype = get_service_type(cfg.plugin)
            stype.check(name, cfg)
        except PluginError as exc:
            raise ScenarioError(exc.message, file=scenario.source,
                                key_path=f"services.{name}.plugin", hint=exc.hint) from exc
        spec = stype.to_spec(name, cfg, ctx)
        if not spec.checks:  # a type that builds its own spec still honours declared probes
            spec = replace(spec, checks=probes_of(cfg))
        specs[name] = spec
    all_steps = list(scenario.steps) + [s for b in scenario.scenarios for s in b.steps]
    needs = any(s.service is None for s in all_steps) or any(
        b.service is None and b.run for b in scenario.scenarios)
    orchestration = plan_orchestration(scenario, specs)
    levels = [[specs[n] for n in level] for level in orchestration.graph.levels]
    return TestPlan(scenario=scenario, levels=levels, needs_step_container=needs,
                    orchestration=orchestration)


def _orchestration(tp: TestPlan) -> Orchestration | None:
    """The file's ``[orchestration]`` table when that layer is on.  Its ``max_parallel``
    caps how many tests of the run execute at once (the smallest value among the files
    wins, ``--jobs`` still applies) and ``fail_fast = true`` makes a failure of this
    test stop the run, as ``--fail-fast`` does for every test."""
    sc = tp.scenario
    from clnrm.layers import layer_active

    return sc.orchestration if layer_active(sc, "orchestration") else None


def new_run_id() -> str:
    return secrets.token_hex(6)


def make_backend(name: str, run_id: str) -> Backend:
    if name == "docker":
        from clnrm.backends.docker import DockerBackend

        return DockerBackend(run_id)
    if name == "local":
        from clnrm.backends.local import LocalBackend

        return LocalBackend(run_id)
    raise BackendError(f"unknown backend {name!r}", hint="use --backend docker or --backend local")


class Runner:
    """Executes planned tests; one instance per ``clnrm run``."""

    def __init__(self, options: RunOptions, *, backend: Backend | None = None,
                 on_event: EventCallback | None = None, warm: Sequence[str] = ()) -> None:
        """``warm``: modules the caller needs once the run is over (a CLI's printer and
        reports); they are imported while the tests wait on the engine, not after."""
        self.options = options
        self._warm = tuple(warm)
        self.run_id = backend.run_id if backend else new_run_id()
        self._backend = backend
        self._on_event = on_event or (lambda test, msg: None)
        self.cancelled = threading.Event()
        self._run_context: Any = None
        self._tracer: SelfTracer | None = None

    @property
    def tracer(self) -> SelfTracer:
        if self._tracer is None:
            from clnrm.otel.selftrace import SelfTracer

            self._tracer = SelfTracer(self.run_id, endpoint=self.options.otel_endpoint)
        return self._tracer

    def _execution(self, tp: TestPlan, default_image: str) -> TestExecution:
        # imported here, not with this module: a run needs it only once its first sandboxes
        # are being made (Backend.prepare), so its import overlaps the engine's work
        from clnrm.execution import TestExecution

        return TestExecution(tp, backend=self.backend, run_id=self.run_id,
                             default_image=default_image, seed=self.options.seed,
                             tracer=self.tracer, parent=self._run_context,
                             spans_dir=self.artifacts, cancelled=self.cancelled,
                             on_event=self._on_event, perf=self.options.perf)

    @property
    def artifacts(self) -> Path | None:
        """``<artifacts_dir>/<run id>/``, created on first use; None disables files."""
        if self.options.artifacts_dir is None:
            return None
        path = self.options.artifacts_dir / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.options.backend, self.run_id)
        return self._backend

    def run(self, scenarios: list[Scenario]) -> RunResult:
        ctx = SpecContext(default_image=self.options.image_map.get(
            self.options.default_image, self.options.default_image),
            image_map=self.options.image_map)
        if any(cfg.build is not None for sc in scenarios for cfg in sc.services.values()):
            # services with build = {...}: only then the images package (build helpers, the
            # image catalog) is imported
            from clnrm.images._user import build_for_run

            scenarios = build_for_run(scenarios, self.backend,
                                      image_map=self.options.image_map, on_event=self._on_event)
        plans = [plan(s, ctx) for s in scenarios]
        started = time.monotonic()
        result = RunResult(run_id=self.run_id, backend=self.options.backend,
                           started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           seed=self.options.seed, limitations=self.backend.limitations())
        images = set().union(*(p.images for p in plans)) if plans else set()
        if any(p.needs_step_container for p in plans):
            images.add(ctx.default_image)
        from clnrm.gc import DeadRunSweep

        try:
            self.backend.preflight(images)
        except BaseException:
            DeadRunSweep.for_backend(self.backend).join()  # no run, but dead ones collected
            raise
        log.info("run.start", run_id=self.run_id, tests=len(plans), backend=self.backend.name)
        sweep = None
        try:
            for tp in plans[:self._starting_at_once(plans)]:  # their sandboxes are made
                # while self-tracing starts and the tests set up
                self.backend.prepare(tp.scenario.name, default_image=ctx.default_image,
                                     env=self._base_env(tp.scenario),
                                     links=tp.orchestration.links if tp.orchestration else None,
                                     steps=tp.needs_step_container)
            # dead runs' leftovers, beside the tests; started after the first sandboxes so
            # its listing (every clnrm container on the engine) does not delay them
            sweep = DeadRunSweep.for_backend(self.backend)
            with self.tracer.span("clnrm.run", attributes={
                    "clnrm.run": self.run_id, "clnrm.backend": self.backend.name,
                    "clnrm.tests": len(plans)}) as run_span:
                self._run_context = self.tracer.context_of(run_span)
                result.tests = self._execute(plans, ctx.default_image)
        finally:
            if self.cancelled.is_set():
                self.backend.reap()  # second pass: anything a worker created during the first
            self.tracer.shutdown()
            self.backend.finish()
            if sweep is not None:
                sweep.join()
        result.duration_s = time.monotonic() - started
        return result

    def judge_traces(self, scenarios: list[Scenario], spans: list[Span],
                     source: str) -> RunResult:
        """``--traces FILE``: judge existing spans against each file's expectations, no engine."""
        from clnrm.execution import describe_validations, judge_spans

        result = RunResult(run_id=self.run_id, backend="traces",
                           started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        for sc in scenarios:
            test = TestResult(name=sc.name, file=sc.source or "", outcome=Outcome.PASSED,
                              spans=spans, message=None)
            test.validations = judge_spans(sc, spans)
            bad = test.failed_validations
            if bad:
                test.outcome, test.message = Outcome.FAILED, describe_validations(bad)
            elif not test.validations:
                test.outcome = Outcome.ERROR
                test.message = f"{sc.source}: has no [[expect.*]] tables to judge {source} with"
            test.digest = span_digest(spans)
            result.tests.append(test)
        return result

    def _run_one(self, execution: TestExecution, stop_on_failure: bool) -> TestResult:
        """One test in a worker; a failure that stops the run cancels it from this thread,
        before the worker can take the next test (which then reports itself skipped)."""
        test = execution.run()
        if stop_on_failure and test.outcome is not Outcome.PASSED:
            self.cancelled.set()
        return test

    def _warm_up(self, plans: list[TestPlan]) -> None:
        """Import what the rest of the run needs while this thread would only wait.

        The main thread is idle from the moment the tests are submitted: the workers spend
        that time waiting on the engine (a container start, each exec, the removals), which
        holds no GIL.  Importing the judge's and the caller's modules here moves their cost
        off the end of the run, where nothing else overlaps it.  A module that fails to
        import is left to fail where it is really used."""
        names = list(self._warm)
        if any(not p.scenario.expect.is_empty for p in plans):
            names.insert(0, "clnrm.validators")  # judge_spans, after the sandbox is gone
        for name in names:
            if self.cancelled.is_set():
                return
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - warming is an optimisation only
                log.debug("warm.failed", module=name, error=str(exc))

    def _base_env(self, sc: Scenario) -> dict[str, str]:
        """The environment a test's sandbox is made with, as :class:`TestExecution` builds
        it; a prepared sandbox is only used when the two agree (:meth:`Backend.prepare`)."""
        env = {"CLNRM_RUN_ID": self.run_id, "CLNRM_TEST": sc.name}
        det = sc.determinism
        seed = self.options.seed if self.options.seed is not None else (
            det.seed if det else None)
        if seed is not None:
            env["CLNRM_SEED"] = str(seed)
        if det is not None and det.freeze_clock:
            env["CLNRM_FREEZE_CLOCK"] = det.freeze_clock
        return env

    def _starting_at_once(self, plans: list[TestPlan]) -> int:
        """A lower bound of :meth:`_jobs` that needs no layer registry (loading it scans the
        installed packages' entry points, 0.1-0.2 s): any ``max_parallel`` written counts."""
        caps = [o.max_parallel for o in (p.scenario.orchestration for p in plans)
                if o is not None and o.max_parallel is not None]
        return min([max(1, self.options.jobs), *caps])

    def _jobs(self, plans: list[TestPlan]) -> int:
        return min([max(1, self.options.jobs)]
                   + [o.max_parallel for o in map(_orchestration, plans)
                      if o is not None and o.max_parallel is not None])

    def _execute(self, plans: list[TestPlan], default_image: str) -> list[TestResult]:
        results: dict[int, TestResult] = {}
        jobs = self._jobs(plans)
        stops = [self.options.fail_fast or bool(o is not None and o.fail_fast)
                 for o in map(_orchestration, plans)]
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="clnrm-test")
        pending: dict[Future[TestResult], int] = {
            pool.submit(self._run_one, self._execution(p, default_image), stops[i]): i
            for i, p in enumerate(plans)}
        try:
            self._warm_up(plans)
            while pending:
                # a short timeout keeps the main thread responsive to Ctrl-C / SIGTERM
                done, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()
        except BaseException:
            # Interrupt: remove the run's resources *first*; that also unblocks workers
            # waiting on an exec or a readiness probe, so the join below is quick.
            self.cancelled.set()
            self.backend.reap()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [results[i] for i in sorted(results)]
