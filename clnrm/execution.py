"""One test, start to verdict: sandbox, receiver, services, steps, spans, judgement.

The order inside a test is fixed: the sandbox (networks) exists first so the
OTLP receiver can bind to its gateway; the receiver runs before any service
so no span is lost; each service starts the moment its own dependencies are
ready (:mod:`clnrm.orchestration`); steps run; spans are settled and
collected; the sandbox and receiver are closed (context managers, services
removed dependants first); *then* spans, timeline and topology are judged,
so a slow validator never keeps containers alive.

Layers (orchestration, chaos, performance, a plugin's) are not named here: the
registry (:mod:`clnrm.layers`) says which are on for the scenario, each gives a
session whose hooks run at launch, services ready, each step and the end, and
judging is one loop over those sessions.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.backends.base import Backend, Sandbox
from clnrm.errors import ClnrmError, ReadinessError
from clnrm.layers import LayerContext, LayerSession, LiveSystem, active_layers, layer_active
from clnrm.orchestration.schedule import Timeline
from clnrm.results import (
    ExecResult,
    Outcome,
    StepResult,
    TestResult,
    ValidationResult,
    ValidationStatus,
)
from clnrm.scenario.model import Scenario, Step

if TYPE_CHECKING:
    from clnrm.orchestration import OrchestrationPlan
    from clnrm.orchestration.readiness import SpanWaiter
    from clnrm.otel.selftrace import SelfTracer
    from clnrm.otel.span import Span
    from clnrm.perf.options import PerfOptions
    from clnrm.runner import TestPlan

log = structlog.get_logger("clnrm.test")

DEFAULT_STEP_TIMEOUT = 300.0
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_TEST_TIMEOUT = 3600.0


def time_limit(sc: Scenario) -> float | None:
    """The whole-test limit in seconds: ``[meta] timeout`` and ``[orchestration] timeout``
    (when that layer is on) both bound the test, so the smaller one applies."""
    limits = [sc.timeout]
    if sc.orchestration is not None and layer_active(sc, "orchestration"):
        limits.append(sc.orchestration.timeout)
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


__all__ = ["LiveSystem", "TestExecution", "describe_validations", "judge_spans", "judge_step",
           "time_limit"]


class TestExecution:
    """Runs one planned test; built by the Runner, used once, from a worker thread."""

    def __init__(self, tp: TestPlan, *, backend: Backend, run_id: str, default_image: str,
                 seed: int | None, tracer: SelfTracer, parent: Any,
                 spans_dir: Path | None, cancelled: threading.Event,
                 on_event: Callable[[str, str], None],
                 perf: PerfOptions | None = None) -> None:
        self.tp = tp
        self.layer_options: dict[str, Any] = {"performance": perf}
        # (layer name, session) of the active layers: entered in live(), judged after
        self.sessions: list[tuple[str, LayerSession]] = []
        self.sc: Scenario = tp.scenario
        self.backend = backend
        self.run_id = run_id
        self.default_image = default_image
        self.seed = seed
        self.tracer = tracer
        self.parent = parent
        self.spans_dir = spans_dir
        self.cancelled = cancelled
        self.on_event = on_event
        if tp.orchestration is None:
            from clnrm.orchestration import plan_orchestration

            tp.orchestration = plan_orchestration(self.sc, tp.specs)
        self.orch: OrchestrationPlan = tp.orchestration
        self.timeline = self._new_timeline()
        self.time_limit = time_limit(self.sc) or DEFAULT_TEST_TIMEOUT

    def run(self) -> TestResult:
        sc = self.sc
        test = TestResult(name=sc.name, file=sc.source or "", outcome=Outcome.PASSED,
                          services=[s.name for lvl in self.tp.levels for s in lvl])
        if self.cancelled.is_set():
            test.outcome, test.message = Outcome.SKIPPED, "not started: run was cancelled"
            return test
        started = time.monotonic()
        self.timeline = self._new_timeline()
        received: list[Span] = []
        with self.tracer.span("clnrm.test", parent=self.parent, attributes={
                "clnrm.test": sc.name, "clnrm.file": sc.source or ""}) as span:
            try:
                received = self._in_sandbox(test, self.tracer.traceparent(span))
            except ReadinessError as exc:
                test.outcome = Outcome.ERROR
                test.message = (f"{exc}\n--- last log lines of {exc.service} ---\n"
                                f"{exc.logs}").rstrip()
            except ClnrmError as exc:
                test.outcome, test.message = Outcome.ERROR, str(exc)
            except Exception as exc:  # engine API errors etc.: a result, never a traceback
                log.exception("test.crashed", test=sc.name)
                test.outcome, test.message = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
            # The verdict is judged from the spans, this one included, so it is not known
            # while the span is open: the span says only whether set-up and steps ran
            # (``clnrm.execution``); a "passed" here would contradict a failed verdict.
            span.set_attribute("clnrm.execution", "completed" if test.outcome is Outcome.PASSED
                               else test.outcome.value)
        test.services_timeline = self.timeline.rows()
        own = self.tracer.spans_under(span)
        test.spans = received + own
        if self.spans_dir is not None:
            from clnrm.otel.sink import JsonlSpanSink

            with JsonlSpanSink(self._spans_file()) as sink:
                sink.write(own)
        if test.outcome is Outcome.PASSED:
            self._judge(test)
        test.duration_s = time.monotonic() - started
        self.on_event(sc.name, f"done: {test.outcome.value}")
        log.info("test.done", test=sc.name, outcome=test.outcome.value,
                 seconds=round(test.duration_s, 3), spans=len(test.spans))
        return test

    def _new_timeline(self) -> Timeline:
        """Start and ready moments, in seconds from now (the start of the test)."""
        return Timeline(time.monotonic(), self.orch.graph.requires, self.orch.readiness_text())

    def _in_sandbox(self, test: TestResult, traceparent: str) -> list[Span]:
        with self.live(test, traceparent) as live:
            sessions = list(live.sessions.values())
            for session in sessions:
                session.on_ready(live)

            def steps() -> list[StepResult]:
                return self._run_steps(live.box, live.deadline, on_step=on_step)

            def on_step(name: str) -> None:
                for session in sessions:
                    session.on_step(name)

            run = steps
            for session in reversed(sessions):  # the first layer's wrapper is outermost
                run = _wrapped(session, run)
            test.steps = run()
            for session in reversed(sessions):
                session.on_end()
            if live.telemetry is None:
                return []
            if not self.sc.expect.is_empty or any(s.needs_spans for s in sessions):
                self.on_event(self.sc.name, "collecting spans")
                live.telemetry.settle()
            return live.telemetry.spans()

    @contextmanager
    def live(self, test: TestResult, traceparent: str,
             proxied: Sequence[tuple[str, int]] = ()) -> Iterator[LiveSystem]:
        """The test's system up and ready: sandbox, receiver, layer sessions, services.

        Leaving the block tears it all down in reverse order (layer sessions first, so
        faults are rolled back before containers go).  ``proxied`` puts extra service
        ports behind the chaos proxy from launch (the chaos test harness uses it), so it
        turns the chaos layer's session on.
        """
        from clnrm.otel.session import TestTelemetry

        deadline = time.monotonic() + self.time_limit
        self.on_event(self.sc.name, "creating sandbox")
        with ExitStack() as stack:
            box = stack.enter_context(self.backend.sandbox(
                self.sc.name, default_image=self.default_image, env=self._base_env(),
                links=self.orch.links))
            if self.orch.links is not None and not box.enforces_links:
                test.warnings.append(f"topology not enforced: the {self.backend.name} backend "
                                     "cannot isolate services from each other")
            box.order_shutdown({name: set(deps)
                                for name, deps in self.orch.graph.required_by.items()})
            if self.tp.needs_step_container:
                box.prepare_steps()
            telemetry = None
            if self._wants_spans():
                spans_file = self._spans_file() if self.spans_dir is not None else None
                telemetry = stack.enter_context(TestTelemetry(box.otlp_host,
                                                              spans_file=spans_file))
                box.extend_env(telemetry.container_env(run_id=self.run_id, test=self.sc.name,
                                                       traceparent=traceparent))
            ctx = LayerContext(
                scenario=self.sc, test=test, box=box, specs=self.tp.specs, plan=self.orch,
                run_id=self.run_id, seed=self._seed(), traceparent=traceparent,
                cancelled=self.cancelled, on_event=self.on_event,
                options=self.layer_options, proxied=proxied)
            sessions: dict[str, LayerSession] = {}
            self.sessions = []
            for layer in active_layers(self.sc, also=("chaos",) if proxied else ()):
                session = stack.enter_context(layer.session(ctx))
                sessions[layer.name] = session
                self.sessions.append((layer.name, session))
            launched = [s.on_launch for s in sessions.values()]

            def on_launch(service: str) -> None:
                for hook in launched:
                    hook(service)

            self._start_services(box, deadline, telemetry.receiver if telemetry else None,
                                 on_launch=on_launch if launched else None)
            yield LiveSystem(box=box, telemetry=telemetry, deadline=deadline, test=test,
                             sessions=sessions)

    def _seed(self) -> int:
        """The chaos seed: ``--seed``, else ``[chaos] seed``, else ``[determinism] seed``."""
        det, chaos = self.sc.determinism, self.sc.chaos
        for seed in (self.seed, chaos.seed if chaos else None, det.seed if det else None):
            if seed is not None:
                return int(seed)
        return 0

    def _wants_spans(self) -> bool:
        """A receiver runs when something can send spans or something will read them:
        services, span expectations, or an ``[otel]`` table. A steps-only test with none
        of these skips it (two servers started and stopped for nothing)."""
        return bool(self.sc.services) or not self.sc.expect.is_empty or self.sc.otel is not None

    def _spans_file(self) -> Path:
        assert self.spans_dir is not None
        return self.spans_dir / f"{_slug(self.sc.name)}.spans.jsonl"

    def _base_env(self) -> dict[str, str]:
        env = {"CLNRM_RUN_ID": self.run_id, "CLNRM_TEST": self.sc.name}
        det = self.sc.determinism
        seed = self.seed if self.seed is not None else (det.seed if det else None)
        if seed is not None:
            env["CLNRM_SEED"] = str(seed)
        if det is not None and det.freeze_clock:
            env["CLNRM_FREEZE_CLOCK"] = det.freeze_clock
        return env

    def _start_services(self, box: Sandbox, deadline: float, spans: SpanWaiter | None, *,
                        on_launch: Callable[[str], None] | None = None) -> None:
        """Start every service the moment its own dependencies are ready, in parallel."""
        from clnrm.orchestration import ProbeEnv, await_ready, run_in_dependency_order

        parent = self.tracer.context_of_current()
        specs = self.tp.specs
        if specs:
            self.on_event(self.sc.name, "starting " + ", ".join(self.orch.graph.services))
        requires = self.orch.graph.requires
        roots_left = [sum(1 for deps in requires.values() if not deps)]
        lock = threading.Lock()

        def start(name: str, abort: threading.Event) -> None:
            spec = specs[name]
            timeout = max(1.0, min(DEFAULT_START_TIMEOUT, deadline - time.monotonic()))
            with self.tracer.span("clnrm.container.start", parent=parent, attributes={
                    "clnrm.service": spec.name, "container.image.name": spec.image or ""}):
                handle = box.launch(spec)
                if on_launch is not None:  # before any dependant can connect
                    on_launch(name)
                self.timeline.started(name)
                if not requires[name]:
                    with lock:
                        roots_left[0] -= 1
                        last_root = roots_left[0] == 0
                    if last_root:  # the engine is free again: get the dependants ready to go
                        box.hold([specs[n] for n in self.orch.graph.services if requires[n]])
                await_ready(handle, self.orch.checks[name], timeout=timeout,
                            env=ProbeEnv(spans=spans, abort=abort))
                self.timeline.ready(name)
            self.on_event(self.sc.name, f"{name} ready")

        if self.cancelled.is_set():
            raise ClnrmError("run cancelled before all services started")
        run_in_dependency_order(self.orch.graph.requires, start, cancelled=self.cancelled,
                                thread_name=f"clnrm-start-{_slug(self.sc.name)[:12]}")

    def _work(self) -> list[tuple[Step, str | None]]:
        """Steps in order: ``[[steps]]``, then each ``[[scenario]]`` (its ``run``, its steps)."""
        work: list[tuple[Step, str | None]] = [(s, s.service) for s in self.sc.steps]
        for block in self.sc.scenarios:
            if block.run:
                work.append((Step(name=block.name, command=["sh", "-c", block.run],
                                  service=block.service,
                                  expected_exit_code=block.expected_exit_code,
                                  expected_output_regex=block.expected_output_regex,
                                  timeout=block.timeout_ms / 1000 if block.timeout_ms else None),
                             block.service))
            work.extend((s, s.service or block.service) for s in block.steps)
        return work

    def _run_steps(self, box: Sandbox, deadline: float, *,
                   on_step: Callable[[str], None] | None = None) -> list[StepResult]:
        work = self._work()
        results: list[StepResult] = []
        for i, (step, service) in enumerate(work, 1):
            if self.cancelled.is_set():
                break
            self.on_event(self.sc.name, f"step {i}/{len(work)}: {step.name}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                results.append(StepResult(
                    name=step.name, service=service, command=step.command,
                    outcome=Outcome.FAILED,
                    message=f"test timeout of {self.time_limit:g} s reached before this step"))
                break
            timeout = min(step.timeout or DEFAULT_STEP_TIMEOUT, remaining)
            if on_step is not None:
                on_step(step.name)
            with self.tracer.span("clnrm.step", attributes={
                    "clnrm.step": step.name, "clnrm.service": service or "",
                    "clnrm.step.index": i}) as span:
                res = box.exec(service, step.command, env=step.env, workdir=step.workdir,
                               timeout=timeout)
                sr = judge_step(step, service, res, timeout)
                span.set_attribute("process.exit_code", -1 if res.exit_code is None
                                   else res.exit_code)
                span.set_attribute("clnrm.outcome", sr.outcome.value)
                if sr.outcome is Outcome.FAILED:
                    from opentelemetry.trace import Status, StatusCode

                    span.set_status(Status(StatusCode.ERROR, sr.message))
            results.append(sr)
            if sr.outcome is Outcome.FAILED and not step.continue_on_failure:
                break
        return results

    def _judge(self, test: TestResult) -> None:
        """Steps first (the cheaper, more direct signal), then span expectations."""
        if self.cancelled.is_set():
            test.outcome, test.message = Outcome.ERROR, "interrupted"
            return
        failed = [s for s in test.steps if s.outcome is Outcome.FAILED]
        if failed:
            test.outcome = Outcome.FAILED
            test.message = f"step {failed[0].name!r}: {failed[0].message}"
        if not self.sc.expect.is_empty:
            test.validations = judge_spans(self.sc, test.spans)
        for name, session in self.sessions:  # in layer order
            test.validations += _layer_verdicts(name, session, test)
        bad = test.failed_validations
        if bad and test.outcome is Outcome.PASSED:
            test.outcome = Outcome.FAILED
            test.message = describe_validations(bad)
        if test.spans:
            from clnrm.otel.digest import span_digest

            test.digest = span_digest(test.spans)


def _wrapped(session: LayerSession,
             run: Callable[[], list[StepResult]]) -> Callable[[], list[StepResult]]:
    return lambda: session.run_steps(run)


def _layer_verdicts(name: str, session: LayerSession, test: TestResult) -> list[ValidationResult]:
    """One layer's verdicts; a layer that raises yields one ERROR result (like a validator)
    instead of hiding the other layers' verdicts."""
    try:
        return list(session.judge(test))
    except Exception as exc:
        log.exception("layer.judge_failed", layer=name, test=test.name)
        return [ValidationResult(validator=name, expectation=f"{name} layer",
                                 status=ValidationStatus.ERROR,
                                 message=f"the {name} layer raised {type(exc).__name__}: {exc}",
                                 expected="the layer's verdicts",
                                 seen=f"{type(exc).__name__}: {exc}")]


def judge_spans(sc: Scenario, spans: list[Span]) -> list[ValidationResult]:
    from clnrm.validators import validate

    return validate(sc.expect, spans, source=sc.source)


def describe_validations(bad: list[ValidationResult]) -> str:
    kinds = {v.validator for v in bad}
    layers = {"orchestration ": {"temporal", "topology"}, "chaos ": {"chaos", "resilience"},
              "performance ": {"performance"}}
    what = next((word for word, names in layers.items() if kinds <= names), None)
    if what is None:
        what = "" if any(kinds & names for names in layers.values()) else "span "
    lines = [f"{len(bad)} {what}expectation(s) failed:"]
    for v in bad[:10]:
        where = f" ({v.declared_at})" if v.declared_at else ""
        lines.append(f"- {v.expectation}{where}")
        if v.expected or v.seen:
            lines.append(f"    expected: {v.expected}")
            lines.append(f"    seen:     {v.seen}")
        else:
            lines.append(f"    {v.message or v.status.value}")
    if len(bad) > 10:
        lines.append(f"... and {len(bad) - 10} more")
    return "\n".join(lines)


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


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)[:60] or "test"
