"""Self-healing as a :class:`~clnrm.layers.TestLayer`: the one rule for whether healing is
on, and what a failed test's environment looked like while it was still up.

Healing itself cannot happen inside one test: a remediated rerun needs a fresh sandbox
(new network, new containers), so :func:`clnrm.healing.runs.heal_run` and the healer
agent rerun the scenario through the Runner.  What the layer adds *during* the run is
the evidence the classifier needs and the message text alone does not carry: the
engine's state of every service (``State.OOMKilled``, exit code, restarts) taken when
steps failed or the start failed, before teardown, and which services became ready.
It lands on ``TestResult.environment`` (not in reports); its ``judge`` adds no verdict:
the healing verdict is the heal loop's, after reruns.

``--heal``/``--no-heal`` override the files through :func:`with_heal_flag`, which folds
the flag into each scenario's ``[layers] self_healing`` switch, so :meth:`active` stays
the one rule the executor, ``clnrm run``, the heal loop, the architect and the healer
agent all ask.  This module is loaded for every run (entry point ``self_healing_layer``),
so it imports nothing heavy (see :mod:`clnrm.healing.builtin`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from clnrm.hookspecs import hookimpl
from clnrm.layers.base import LayerContext, LiveSystem, Session, StepsRun, switched_on

if TYPE_CHECKING:
    from clnrm.layers.base import TestLayer
    from clnrm.results import StepResult
    from clnrm.scenario.model import Scenario

NAME = "self_healing"


class SelfHealingLayer:
    """On when ``[self_healing]`` or ``[layers] self_healing = true`` is, unless either
    switches it off (:func:`~clnrm.layers.switched_on`); ``--heal`` arrives as the switch."""

    name = NAME
    order = 900  # after every layer that judges: its hooks see their effects first

    def active(self, scenario: Scenario) -> bool:
        return switched_on(scenario, self.name)

    def session(self, ctx: LayerContext) -> SelfHealingSession:
        return SelfHealingSession(ctx)


class SelfHealingSession(Session):
    """Snapshots the services' engine state when the test goes wrong, while they exist."""

    def __init__(self, ctx: LayerContext) -> None:
        self.ctx = ctx
        self.launched: list[str] = []
        self.ready: list[str] | None = None

    def on_launch(self, service: str) -> None:
        self.launched.append(service)

    def on_ready(self, live: LiveSystem) -> None:
        self.ready = list(self.launched)

    def run_steps(self, run: StepsRun) -> list[StepResult]:
        results = run()
        failed = next((s for s in results if s.outcome.value == "failed"), None)
        if failed is not None:
            self._snapshot(f"step {failed.name!r} failed")
        return results

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None and self.ctx.test.environment is None:
            self._snapshot("the system did not come up" if self.ready is None
                           else f"the test stopped: {type(exc).__name__}")
        self.close()

    def _snapshot(self, moment: str) -> None:
        from clnrm.healing.model import EnvironmentRecord

        self.ctx.test.environment = EnvironmentRecord(
            moment=moment, ready=self.ready, services=service_states(
                self.ctx.box, self.launched))


def service_states(box: Any, services: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The engine's word on each service (Docker: ``State``); empty where it cannot say.
    Best effort: evidence for a classifier, never a reason to fail a test."""
    api, cid_of = getattr(box, "api", None), getattr(box, "container_id", None)
    if api is None or cid_of is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for service in services:
        try:
            cid = cid_of(service)
            if cid is None:
                continue
            info = api.inspect_container(cid)
        except Exception:  # gone already, engine busy: no evidence, no error
            continue
        state = info.get("State") or {}
        out[service] = {"status": state.get("Status", ""),
                        "running": bool(state.get("Running")),
                        "exit_code": state.get("ExitCode"),
                        "oom_killed": bool(state.get("OOMKilled")),
                        "restarts": int(info.get("RestartCount") or 0)}
    return out


def healing_on(scenario: Scenario) -> bool:
    """The rule, by name: :func:`clnrm.layers.layer_active` for this layer."""
    from clnrm.layers import layer_active

    return layer_active(scenario, NAME)


def with_heal_flag(scenario: Scenario, flag: bool | None) -> Scenario:
    """``scenario`` as ``--heal`` (True) or ``--no-heal`` (False) makes it: the flag
    becomes its ``[layers] self_healing`` switch.  ``--heal`` never overrides a file that
    switches healing off (``[layers] self_healing = false`` or ``enabled = false``);
    ``None`` (no flag) leaves the file to decide."""
    if flag is None:
        return scenario
    layers = scenario.layers
    if flag and layers is not None and layers.self_healing is False:
        return scenario
    from clnrm.scenario.layers import Layers

    switches = (layers or Layers()).model_copy(update={"self_healing": flag})
    return scenario.model_copy(update={"layers": switches})


@hookimpl
def clnrm_test_layers() -> list[TestLayer]:
    return [SelfHealingLayer()]


__all__ = ["SelfHealingLayer", "SelfHealingSession", "healing_on", "service_states",
           "with_heal_flag"]
