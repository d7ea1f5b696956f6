"""Runs loaded scenarios on a backend and returns a :class:`RunResult`.

Order of work, chosen so a run is never half-done: every file is planned
(plugins resolved, dependency graph checked) and every image checked *before*
the first container starts; only then do tests run, up to ``jobs`` at once,
each inside a sandbox context manager.  Interrupts are handled by the caller's
thread: it sets the cancel flag, reaps the run by label and re-raises.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from clnrm.backends.base import Backend, Sandbox
from clnrm.errors import BackendError, ClnrmError, PluginError, ReadinessError, ScenarioError
from clnrm.plugins import get_service_type
from clnrm.plugins.base import ServiceSpec, SpecContext
from clnrm.results import ExecResult, Outcome, RunResult, StepResult, TestResult
from clnrm.scenario.model import Scenario, Step

log = structlog.get_logger("clnrm.runner")

DEFAULT_STEP_TIMEOUT = 300.0
DEFAULT_START_TIMEOUT = 60.0
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


@dataclass
class TestPlan:
    """A scenario with its services resolved to specs, grouped by start level."""

    scenario: Scenario
    levels: list[list[ServiceSpec]]
    needs_step_container: bool

    @property
    def images(self) -> set[str]:
        return {s.image for level in self.levels for s in level if s.image}


def plan(scenario: Scenario, ctx: SpecContext) -> TestPlan:
    """Resolve plugins and the start order; raise ClnrmError on anything unrunnable."""
    specs: dict[str, ServiceSpec] = {}
    for name, cfg in scenario.services.items():
        try:
            stype = get_service_type(cfg.plugin)
            stype.check(name, cfg)
        except PluginError as exc:
            raise ScenarioError(exc.message, file=scenario.source,
                                key_path=f"services.{name}.plugin", hint=exc.hint) from exc
        specs[name] = stype.to_spec(name, cfg, ctx)
    all_steps = list(scenario.steps) + [s for b in scenario.scenarios for s in b.steps]
    needs = any(s.service is None for s in all_steps) or any(
        b.service is None and b.run for b in scenario.scenarios)
    return TestPlan(scenario=scenario, levels=start_levels(scenario, specs),
                    needs_step_container=needs)


def start_levels(scenario: Scenario, specs: dict[str, ServiceSpec]) -> list[list[ServiceSpec]]:
    """Services grouped by dependency depth; a level may start once the previous is ready."""
    if not any(cfg.depends_on for cfg in scenario.services.values()):
        # no edges: one level, and no reason to pay for importing networkx
        return [[specs[n] for n in sorted(specs)]] if specs else []
    import networkx as nx  # lazy: keeps `clnrm --help` fast

    graph = nx.DiGraph()
    for name, cfg in scenario.services.items():
        graph.add_node(name)
        for dep in cfg.depends_on:
            if dep not in scenario.services:
                raise ScenarioError(f"service {name!r} depends on unknown service {dep!r}",
                                    file=scenario.source, key_path=f"services.{name}.depends_on",
                                    hint="declared services: "
                                    + ", ".join(sorted(scenario.services)))
            graph.add_edge(dep, name)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
        raise ScenarioError(f"services depend on each other in a cycle: {path}",
                            file=scenario.source, key_path="services.*.depends_on",
                            hint="remove one depends_on entry to break the cycle")
    return [[specs[n] for n in sorted(gen)] for gen in nx.topological_generations(graph)]


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
                 on_event: EventCallback | None = None) -> None:
        self.options = options
        self.run_id = backend.run_id if backend else new_run_id()
        self._backend = backend
        self._on_event = on_event or (lambda test, msg: None)
        self.cancelled = threading.Event()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.options.backend, self.run_id)
        return self._backend

    def run(self, scenarios: list[Scenario]) -> RunResult:
        ctx = SpecContext(default_image=self.options.image_map.get(
            self.options.default_image, self.options.default_image),
            image_map=self.options.image_map)
        plans = [plan(s, ctx) for s in scenarios]
        started = time.monotonic()
        result = RunResult(run_id=self.run_id, backend=self.options.backend,
                           started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           seed=self.options.seed, limitations=self.backend.limitations())
        images = set().union(*(p.images for p in plans)) if plans else set()
        if any(p.needs_step_container for p in plans):
            images.add(ctx.default_image)
        self.backend.preflight(images)
        log.info("run.start", run_id=self.run_id, tests=len(plans), backend=self.backend.name)
        try:
            result.tests = self._execute(plans, ctx.default_image)
        finally:
            if self.cancelled.is_set():
                self.backend.reap()  # second pass: anything a worker created during the first
        result.duration_s = time.monotonic() - started
        return result

    def _execute(self, plans: list[TestPlan], default_image: str) -> list[TestResult]:
        results: dict[int, TestResult] = {}
        jobs = max(1, self.options.jobs)
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="clnrm-test")
        pending: dict[Future[TestResult], int] = {
            pool.submit(self._run_test, p, default_image): i for i, p in enumerate(plans)}
        try:
            while pending:
                # a short timeout keeps the main thread responsive to Ctrl-C / SIGTERM
                done, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    idx = pending.pop(fut)
                    results[idx] = fut.result()
                    if self.options.fail_fast and results[idx].outcome is not Outcome.PASSED:
                        self.cancelled.set()
        except BaseException:
            # Interrupt: remove the run's resources *first*; that also unblocks workers
            # waiting on an exec or a readiness probe, so the join below is quick.
            self.cancelled.set()
            self.backend.reap()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [results[i] for i in sorted(results)]

    # -- one test ------------------------------------------------------------

    def _run_test(self, tp: TestPlan, default_image: str) -> TestResult:
        sc = tp.scenario
        test = TestResult(name=sc.name, file=sc.source or "", outcome=Outcome.PASSED,
                          services=[s.name for lvl in tp.levels for s in lvl])
        if self.cancelled.is_set():
            test.outcome, test.message = Outcome.SKIPPED, "not started: run was cancelled"
            return test
        started = time.monotonic()
        deadline = started + (sc.timeout or 3600.0)
        env = self._test_env(sc)
        self._on_event(sc.name, "creating sandbox")
        try:
            with self.backend.sandbox(sc.name, default_image=default_image, env=env) as box:
                self._start_services(box, tp, deadline)
                test.steps = self._run_steps(box, sc, deadline)
        except ReadinessError as exc:
            test.outcome = Outcome.ERROR
            test.message = f"{exc}\n--- last log lines of {exc.service} ---\n{exc.logs}".rstrip()
        except ClnrmError as exc:
            test.outcome, test.message = Outcome.ERROR, str(exc)
        except Exception as exc:  # engine API errors etc.: a result, never a traceback
            log.exception("test.crashed", test=sc.name)
            test.outcome = Outcome.ERROR
            test.message = f"{type(exc).__name__}: {exc}"
        else:
            failed = [s for s in test.steps if s.outcome is Outcome.FAILED]
            if failed:
                test.outcome = Outcome.FAILED
                test.message = f"step {failed[0].name!r}: {failed[0].message}"
            elif self.cancelled.is_set():
                test.outcome, test.message = Outcome.ERROR, "interrupted"
        test.duration_s = time.monotonic() - started
        self._on_event(sc.name, f"done: {test.outcome.value}")
        log.info("test.done", test=sc.name, outcome=test.outcome.value,
                 seconds=round(test.duration_s, 3))
        return test

    def _test_env(self, sc: Scenario) -> dict[str, str]:
        env = {"CLNRM_RUN_ID": self.run_id, "CLNRM_TEST": sc.name}
        det = getattr(sc, "determinism", None)
        seed = self.options.seed if self.options.seed is not None else (
            det.seed if det is not None else None)
        if seed is not None:
            env["CLNRM_SEED"] = str(seed)
        if det is not None and det.freeze_clock:
            env["CLNRM_FREEZE_CLOCK"] = det.freeze_clock
        return env

    def _start_services(self, box: Sandbox, tp: TestPlan, deadline: float) -> None:
        """Start each dependency level concurrently; a level starts when the previous is ready."""
        for level in tp.levels:
            if self.cancelled.is_set():
                raise ClnrmError("run cancelled before all services started")
            self._on_event(tp.scenario.name, "starting " + ", ".join(s.name for s in level))
            timeout = max(1.0, min(DEFAULT_START_TIMEOUT, deadline - time.monotonic()))
            if len(level) == 1:
                box.start_service(level[0], timeout=timeout)
                continue
            with ThreadPoolExecutor(max_workers=len(level)) as pool:
                futures = [pool.submit(box.start_service, s, timeout=timeout) for s in level]
                for fut in futures:
                    fut.result()

    def _run_steps(self, box: Sandbox, sc: Scenario, deadline: float) -> list[StepResult]:
        work: list[tuple[Step, str | None]] = [(s, s.service) for s in sc.steps]
        for block in sc.scenarios:
            if block.run:
                work.append((Step(name=block.name, command=["sh", "-c", block.run],
                                  service=block.service,
                                  expected_exit_code=block.expected_exit_code,
                                  expected_output_regex=block.expected_output_regex,
                                  timeout=block.timeout_ms / 1000 if block.timeout_ms else None),
                             block.service))
            work.extend((s, s.service or block.service) for s in block.steps)
        results: list[StepResult] = []
        for i, (step, service) in enumerate(work, 1):
            if self.cancelled.is_set():
                break
            self._on_event(sc.name, f"step {i}/{len(work)}: {step.name}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                results.append(StepResult(name=step.name, service=service, command=step.command,
                                          outcome=Outcome.FAILED,
                                          message=f"test timeout of {sc.timeout:g} s reached "
                                                  "before this step"))
                break
            timeout = min(step.timeout or DEFAULT_STEP_TIMEOUT, remaining)
            res = box.exec(service, step.command, env=step.env, workdir=step.workdir,
                           timeout=timeout)
            sr = judge_step(step, service, res, timeout)
            results.append(sr)
            if sr.outcome is Outcome.FAILED and not step.continue_on_failure:
                break
        return results


def judge_step(step: Step, service: str | None, res: ExecResult, timeout: float) -> StepResult:
    """Compare one exec result with the step's expectations (upstream: regex on trimmed stdout)."""
    message = None
    out = res.stdout.strip()
    if res.timed_out:
        message = f"timed out after {timeout:g} s"
    elif res.exit_code != step.expected_exit_code:
        tail = (res.stderr.strip() or out)[-500:]
        message = f"exit code {res.exit_code}, expected {step.expected_exit_code}"
        if tail:
            message += f"; output: {tail}"
    elif step.expected_output_regex and not re.search(step.expected_output_regex, out):
        message = (f"stdout does not match /{step.expected_output_regex}/; "
                   f"stdout was: {out[-500:]!r}")
    elif step.expected_output_regex_not and re.search(step.expected_output_regex_not, out):
        message = f"stdout matches forbidden /{step.expected_output_regex_not}/"
    return StepResult(name=step.name, service=service, command=step.command,
                      outcome=Outcome.FAILED if message else Outcome.PASSED,
                      exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr,
                      duration_s=res.duration_s, message=message)


