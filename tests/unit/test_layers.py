"""The layer interface: one rule says whether a layer is on, the registry holds the
built-in layers, and the executor drives every active layer's session through the
same hooks (launch, ready, steps, each step, end, teardown) and one judging loop."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pluggy
import pytest
from clnrm.agents import Layer, Task
from clnrm.agents.architect import Architect

from clnrm import layers
from clnrm.backends.local import LocalBackend
from clnrm.errors import PluginError
from clnrm.execution import time_limit
from clnrm.results import Outcome, StepResult, ValidationResult, ValidationStatus
from clnrm.results import TestResult as Result
from clnrm.runner import Runner, RunOptions
from clnrm.scenario import loads_scenario
from clnrm.scenario.model import Scenario, ServiceConfig, Step

BASE = """\
[meta]
name = "switches"

[[steps]]
name = "s"
command = ["true"]
"""


def load(extra: str) -> Scenario:
    return loads_scenario(BASE + extra, source="switches.clnrm.toml")


def planned(sc: Scenario) -> set[str]:
    task = Task(id="r/switches/architecture", run_id="r", layer=Layer.architecture,
                scenario="switches", source="switches.clnrm.toml", text="")
    tasks, _ = Architect(board=None).plan(task, sc)  # type: ignore[arg-type]
    return {t.layer.value for t in tasks}


def active(sc: Scenario) -> set[str]:
    return {layer.name for layer in layers.active_layers(sc)}


def test_builtin_layers_register_through_the_hook_in_order() -> None:
    names = [layer.name for layer in layers.test_layers()]
    assert names[:3] == ["orchestration", "chaos", "performance"]
    assert all(isinstance(layer, layers.TestLayer) for layer in layers.test_layers())


CHAOS = '\n[chaos]\nenabled = false\n[[chaos.faults]]\ntype = "pause"\ntarget = "db"\n' \
        '\n[services.db]\nimage = "clnrm/busybox:latest"\n'


@pytest.mark.parametrize(("extra", "name", "on"), [
    # the case: [layers] says on, the table says off -> off everywhere
    (CHAOS + "\n[layers]\nchaos = true\n", "chaos", False),
    (CHAOS.replace("enabled = false\n", ""), "chaos", True),
    (CHAOS.replace("enabled = false\n", "") + "\n[layers]\nchaos = false\n", "chaos", False),
    ("\n[layers]\nchaos = true\n", "chaos", False),  # nothing to inject without [chaos]
    ("\n[performance]\nenabled = false\n[layers]\nperformance = true\n", "performance",
     False),
    ("\n[[expect.performance]]\nspan = \"GET /\"\nmax = 100\n", "performance", True),
    ("\n[layers]\nperformance = true\n", "performance", True),
    ("\n[orchestration]\nenabled = false\ntimeout = \"5s\"\n[layers]\norchestration = true\n",
     "orchestration", False),
    ("\n[orchestration]\ntimeout = \"5s\"\n", "orchestration", True),
])
def test_one_rule_answers_for_executor_registry_and_architect(extra: str, name: str,
                                                              on: bool) -> None:
    sc = load(extra)
    assert layers.layer_active(sc, name) is on
    assert (name in active(sc)) is on
    if name != "orchestration":  # the architect always plans the orchestration run
        assert (name in planned(sc)) is on
    else:
        assert (time_limit(sc) == 5.0) is on


def test_unregistered_layers_follow_the_shared_rule() -> None:
    sc = load("\n[intelligence]\n")
    assert layers.layer_active(sc, "intelligence")
    assert not layers.layer_active(load("\n[intelligence]\n[layers]\nintelligence = false\n"),
                                   "intelligence")


# -- the executor drives sessions ---------------------------------------------------------


class Recorder(layers.Session):
    def __init__(self, name: str, log: list[str], *, fail_judge: bool = False,
                 skip_steps: bool = False) -> None:
        self.name, self.log = name, log
        self.fail_judge, self.skip_steps = fail_judge, skip_steps

    def _note(self, what: str) -> None:
        self.log.append(f"{self.name}.{what}")

    def on_launch(self, service: str) -> None:
        self._note(f"launch:{service}")

    def on_ready(self, live: layers.LiveSystem) -> None:
        assert live.sessions[self.name] is self
        self._note("ready")

    def run_steps(self, run: layers.StepsRun) -> list[StepResult]:
        self._note("steps")
        return [] if self.skip_steps else run()

    def on_step(self, name: str) -> None:
        self._note(f"step:{name}")

    def on_end(self) -> None:
        self._note("end")

    def close(self) -> None:
        self._note("close")

    def judge(self, test: Result) -> list[ValidationResult]:
        self._note("judge")
        if self.fail_judge:
            raise RuntimeError("judge broke")
        return [ValidationResult(validator=self.name, expectation=f"{self.name} ok",
                                 status=ValidationStatus.PASS)]


class RecordingLayer:
    def __init__(self, name: str, order: int, log: list[str], **kw: Any) -> None:
        self.name, self.order, self.log, self.kw = name, order, log, kw

    def active(self, scenario: Scenario) -> bool:
        return self.name in scenario.tags

    def session(self, ctx: layers.LayerContext) -> Recorder:
        self.log.append(f"{self.name}.session")
        return Recorder(self.name, self.log, **self.kw)


@pytest.fixture
def extra_layers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    added: list[Any] = []
    builtin = layers.test_layers()
    monkeypatch.setattr(layers, "test_layers", lambda: tuple(
        sorted([*builtin, *added], key=lambda layer: (layer.order, layer.name))))
    yield added


def run(sc: Scenario) -> Result:
    result = Runner(RunOptions(backend="local"), backend=LocalBackend("layertest")).run([sc])
    [test] = result.tests
    return test


def scenario(*tags: str) -> Scenario:
    return Scenario(name="hooks", tags=list(tags), services={"idle": ServiceConfig(
        plugin="local_process", command=["sleep", "60"])},
        steps=[Step(name="one", command=[sys.executable, "-c", "pass"]),
               Step(name="two", command=[sys.executable, "-c", "pass"])])


def test_hooks_run_in_layer_order_and_teardown_in_reverse(extra_layers: list[Any]) -> None:
    log: list[str] = []
    extra_layers += [RecordingLayer("b", 600, log), RecordingLayer("a", 500, log),
                     RecordingLayer("off", 700, log)]
    test = run(scenario("a", "b"))
    assert test.outcome is Outcome.PASSED, test.message
    assert log == ["a.session", "b.session", "a.launch:idle", "b.launch:idle",
                   "a.ready", "b.ready", "a.steps", "b.steps", "a.step:one", "b.step:one",
                   "a.step:two", "b.step:two", "b.end", "a.end", "b.close", "a.close",
                   "a.judge", "b.judge"]
    assert [v.validator for v in test.validations] == ["a", "b"]


def test_an_outer_layer_can_skip_the_steps_and_a_raising_judge_is_an_error(
        extra_layers: list[Any]) -> None:
    log: list[str] = []
    extra_layers += [RecordingLayer("a", 500, log, skip_steps=True, fail_judge=True),
                     RecordingLayer("b", 600, log)]
    test = run(scenario("a", "b"))
    assert test.steps == [] and "b.steps" not in log and "a.step:one" not in log
    assert test.outcome is Outcome.FAILED
    [broken, fine] = test.validations
    assert broken.validator == "a" and broken.status is ValidationStatus.ERROR
    assert "RuntimeError: judge broke" in broken.message
    assert fine.status is ValidationStatus.PASS


def test_a_layer_name_claimed_twice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Twin:
        @staticmethod
        @pluggy.HookimplMarker("clnrm")
        def clnrm_test_layers() -> list[Any]:
            return [RecordingLayer("chaos", 1, [])]

    from clnrm import plugins

    def with_twin() -> pluggy.PluginManager:
        pm = plugins.plugin_manager()
        pm.register(Twin(), name="twin_plugin")
        return pm

    monkeypatch.setattr(plugins, "installed_plugins", with_twin)
    layers.test_layers.cache_clear()
    try:
        with pytest.raises(PluginError, match=r"'chaos' is provided by both .*twin_plugin"):
            layers.test_layers()
    finally:
        monkeypatch.undo()
        layers.test_layers.cache_clear()
