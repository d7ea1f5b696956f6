"""The contract every test layer meets: when it is on, what it does while a test runs,
and what it judges afterwards.

A *layer* (orchestration, chaos, performance; later self-healing and intelligence, or a
third party's) is a stateless object registered through the ``clnrm_test_layers`` hook
(:mod:`clnrm.hookspecs`).  :meth:`TestLayer.active` is the one rule that says whether it
is on for a scenario: the executor, the runner, the architect agent and the layer's own
agent all ask it, so they cannot disagree.  For each test it is on for, the executor asks
it for a :class:`LayerSession`, enters it (a context manager: leaving it must undo
whatever the layer did to the system, whatever ended the test) and calls its hooks in
this order::

    session(ctx)             sandbox and receiver exist, no service yet
    on_launch(service)       each service's container just started (before dependants)
    on_ready(live)           every service is ready
    run_steps(run)           wraps the steps (measure them, skip them, repeat them)
    on_step(name)            each step is about to start
    on_end()                 the steps are done (reverse layer order)
    __exit__                 the system is torn down (reverse layer order)
    judge(test)              the sandbox is gone: this layer's verdicts

Judging lives on the session, not the layer, because it reads what the session saw (a
perf window, a chaos timeline); the layer object stays shared by every test.  Hooks are
called from the test's worker thread; ``on_launch`` from the service-starting threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    from clnrm.backends.base import Sandbox
    from clnrm.orchestration import OrchestrationPlan
    from clnrm.otel.session import TestTelemetry
    from clnrm.plugins.base import ServiceSpec
    from clnrm.results import StepResult, TestResult, ValidationResult
    from clnrm.scenario.model import Scenario

StepsRun = Callable[[], "list[StepResult]"]
"""Runs the test's steps once and returns their results."""


@dataclass
class LayerContext:
    """What a layer's session is built from: the test, its system and the run's settings.

    ``options`` holds per-layer settings the caller passed (``options["performance"]`` is
    the run's :class:`~clnrm.perf.options.PerfOptions`); ``proxied`` are extra
    ``(service, port)`` pairs to put behind the chaos proxy from launch.
    """

    scenario: Scenario
    test: TestResult
    box: Sandbox
    specs: Mapping[str, ServiceSpec]
    plan: OrchestrationPlan
    run_id: str
    seed: int
    traceparent: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_event: Callable[[str, str], None] = lambda test, message: None
    options: Mapping[str, Any] = field(default_factory=dict)
    proxied: Sequence[tuple[str, int]] = ()


@dataclass
class LiveSystem:
    """A test's running system, as :meth:`clnrm.execution.TestExecution.live` yields it."""

    box: Sandbox
    telemetry: TestTelemetry | None
    deadline: float
    test: TestResult
    sessions: dict[str, LayerSession] = field(default_factory=dict)

    @property
    def chaos(self) -> Any:
        """The chaos engine's session (:class:`clnrm.chaos.engine.ChaosSession`), if on."""
        return getattr(self.sessions.get("chaos"), "engine", None)

    @property
    def perf(self) -> Any:
        """The performance engine's session (:class:`clnrm.perf.session.PerfSession`)."""
        return getattr(self.sessions.get("performance"), "engine", None)


@runtime_checkable
class LayerSession(Protocol):
    """One layer inside one test; see the module docstring for when each hook is called."""

    needs_spans: bool
    """True when :meth:`judge` reads spans: the executor then waits for them to settle."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def on_launch(self, service: str) -> None: ...

    def on_ready(self, live: LiveSystem) -> None: ...

    def run_steps(self, run: StepsRun) -> list[StepResult]: ...

    def on_step(self, name: str) -> None: ...

    def on_end(self) -> None: ...

    def judge(self, test: TestResult) -> list[ValidationResult]: ...


@runtime_checkable
class TestLayer(Protocol):
    """A layer as registered through ``clnrm_test_layers``; one instance serves every test.

    ``name`` is the scenario table (and ``[layers]`` switch) it reads; ``order`` places it
    among the others (hooks run in ascending order, ``on_end`` and teardown in
    descending order; built-ins: orchestration 100, chaos 200, performance 300).
    """

    name: str
    order: int

    def active(self, scenario: Scenario) -> bool: ...

    def session(self, ctx: LayerContext) -> LayerSession: ...


class Session:
    """A :class:`LayerSession` whose hooks do nothing: subclass and override what you need.

    ``run_steps`` runs the steps as given; ``judge`` returns no verdicts; leaving the
    ``with`` block calls :meth:`close`.
    """

    needs_spans: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Undo whatever the layer did to the live system; called however the test ended."""

    def on_launch(self, service: str) -> None:
        del service

    def on_ready(self, live: LiveSystem) -> None:
        del live

    def run_steps(self, run: StepsRun) -> list[StepResult]:
        return run()

    def on_step(self, name: str) -> None:
        del name

    def on_end(self) -> None:
        pass

    def judge(self, test: TestResult) -> list[ValidationResult]:
        del test
        return []


def switched_on(scenario: Scenario, name: str, *, implied: bool = False) -> bool:
    """The shared switch rule: off when ``[layers] <name> = false`` *or* the layer's table
    says ``enabled = false`` (either "off" wins, so a conflict never half-runs a layer);
    otherwise on when ``[layers] <name> = true``, when the table is present, or when
    ``implied`` (the layer's own reason, e.g. ``[[expect.performance]]``)."""
    switches = scenario.layers
    switch = getattr(switches, name, None) if switches is not None else None
    table = getattr(scenario, name, None)
    if switch is False:
        return False
    if table is not None and not getattr(table, "enabled", True):
        return False
    return switch is True or table is not None or implied


def why_off(scenario: Scenario, name: str) -> str:
    """In words, why :func:`switched_on` says a layer is off (for plans and reports)."""
    switches = scenario.layers
    if switches is not None and getattr(switches, name, None) is False:
        return f"{name} (switched off in [layers])"
    table = getattr(scenario, name, None)
    if table is not None and not getattr(table, "enabled", True):
        return f"{name} ([{name}] has enabled = false)"
    return f"{name} (no [{name}] table)"
