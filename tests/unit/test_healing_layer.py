"""Self-healing as a test layer: one rule says whether healing is on (the file's
switches, ``--heal``/``--no-heal`` folded in), and its session records what the
classifier needs (engine state of the services, which became ready) while the failed
test's system still exists."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from clnrm.agents import Layer, Task
from clnrm.agents.architect import Architect

from clnrm import layers
from clnrm.backends.local import LocalBackend
from clnrm.healing.classify import classify
from clnrm.healing.layer import SelfHealingLayer, service_states, with_heal_flag
from clnrm.healing.model import EnvironmentRecord, FailureClass
from clnrm.healing.runs import wants_healing
from clnrm.results import Outcome, StepResult
from clnrm.results import TestResult as Result
from clnrm.runner import Runner, RunOptions
from clnrm.scenario import loads_scenario
from clnrm.scenario.model import ReadinessProbe, Scenario, ServiceConfig, Step
from tests.conftest import REPO

BASE = '[meta]\nname = "healme"\n\n[[steps]]\nname = "s"\ncommand = ["true"]\n'


def load(extra: str) -> Scenario:
    return loads_scenario(BASE + extra, source="healme.clnrm.toml")


def planned(sc: Scenario) -> bool:
    task = Task(id="r/healme/architecture", run_id="r", layer=Layer.architecture,
                scenario="healme", source="healme.clnrm.toml", text="")
    tasks, _ = Architect(board=None).plan(task, sc)  # type: ignore[arg-type]
    return Layer.self_healing in {t.layer for t in tasks}


def test_registered_through_the_hook_after_the_judging_layers() -> None:
    names = [layer.name for layer in layers.test_layers()]
    assert names[-1] == "self_healing" and names[:3] == ["orchestration", "chaos",
                                                         "performance"]
    assert isinstance(layers.get_layer("self_healing"), SelfHealingLayer)


SWITCHED = {
    "plain": "",
    "table": "\n[self_healing]\nmax_attempts = 2\n",
    "table_off": "\n[self_healing]\nenabled = false\n",
    "layers_on": "\n[layers]\nself_healing = true\n",
    "layers_off": "\n[self_healing]\n[layers]\nself_healing = false\n",
    "conflict": "\n[self_healing]\nenabled = false\n[layers]\nself_healing = true\n",
}


@pytest.mark.parametrize(("case", "flag", "on"), [
    ("plain", None, False), ("table", None, True), ("table_off", None, False),
    ("layers_on", None, True), ("layers_off", None, False), ("conflict", None, False),
    # --heal heals every file that does not switch healing off
    ("plain", True, True), ("table", True, True), ("table_off", True, False),
    ("layers_off", True, False),
    # --no-heal heals none
    ("table", False, False), ("layers_on", False, False),
])
def test_one_rule_for_run_heal_loop_executor_and_architect(case: str, flag: bool | None,
                                                           on: bool) -> None:
    sc = with_heal_flag(load(SWITCHED[case]), flag)
    assert layers.layer_active(sc, "self_healing") is on
    assert ("self_healing" in {la.name for la in layers.active_layers(sc)}) is on
    assert planned(sc) is on
    assert wants_healing(load(SWITCHED[case]), flag) is on  # the heal loop's question


def test_the_flag_changes_only_the_switch() -> None:
    sc = load(SWITCHED["table"])
    flagged = with_heal_flag(sc, True)
    assert flagged.model_dump(exclude={"layers"}) == sc.model_dump(exclude={"layers"})
    assert sc.layers is None and with_heal_flag(sc, None) is sc


# -- the session records what the classifier needs ----------------------------------------


def run(sc: Scenario) -> Result:
    result = Runner(RunOptions(backend="local"), backend=LocalBackend("healtest")).run([sc])
    [test] = result.tests
    return test


def svc_scenario(command: list[str], *, heal: bool = True, **kw: Any) -> Scenario:
    return Scenario(name="rec", services={"idle": ServiceConfig(
        plugin="local_process", command=command)},
        steps=[Step(name="bad", command=[sys.executable, "-c", "raise SystemExit(3)"])],
        **kw, **({"layers": {"self_healing": True}} if heal else {}))


def test_a_failed_step_is_recorded_with_the_services_that_were_ready() -> None:
    test = run(svc_scenario(["sleep", "60"]))
    assert test.outcome is Outcome.FAILED
    assert test.environment is not None
    assert test.environment.moment == "step 'bad' failed"
    assert test.environment.ready == ["idle"]
    assert "environment" not in json.loads(test.model_dump_json())  # evidence, not report


def test_nothing_is_recorded_when_healing_is_off_or_the_test_passes() -> None:
    assert run(svc_scenario(["sleep", "60"], heal=False)).environment is None
    ok = svc_scenario(["sleep", "60"]).model_copy(update={"steps": [
        Step(name="fine", command=[sys.executable, "-c", "pass"])]})
    passed = run(ok)
    assert passed.outcome is Outcome.PASSED and passed.environment is None


def test_a_start_failure_is_recorded_before_teardown() -> None:
    sc = svc_scenario([sys.executable, "-c", "raise SystemExit(5)"])
    sc.services["idle"].readiness = [ReadinessProbe(log="never printed", timeout="20s")]
    test = run(sc)
    assert test.outcome is Outcome.ERROR
    assert test.environment is not None
    assert test.environment.ready is None
    assert test.environment.moment == "the system did not come up"


class FakeApi:
    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self.states = states

    def inspect_container(self, cid: str) -> dict[str, Any]:
        if cid not in self.states:
            raise RuntimeError("No such container")
        return self.states[cid]


class FakeBox:
    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self.api = FakeApi(states)

    def container_id(self, service: str) -> str | None:
        return None if service == "ghost" else f"c-{service}"


def test_service_states_read_the_engine_and_skip_what_it_cannot_say() -> None:
    box = FakeBox({"c-db": {"State": {"Status": "exited", "Running": False, "ExitCode": 137,
                                      "OOMKilled": True}, "RestartCount": 2}})
    states = service_states(box, ["db", "ghost", "gone"])
    assert states == {"db": {"status": "exited", "running": False, "exit_code": 137,
                             "oom_killed": True, "restarts": 2}}
    assert service_states(object(), ["db"]) == {}  # a backend without an engine API


def failed_step_result(env: EnvironmentRecord | None) -> Result:
    return Result(name="t", file="t.clnrm.toml", outcome=Outcome.FAILED,
                  message="step 'call': exit code 1 (expected 0)",
                  steps=[StepResult(name="call", command=["call"], outcome=Outcome.FAILED,
                                    message="exit code 1 (expected 0)", exit_code=1)],
                  environment=env)


def test_classifier_reads_the_record_a_dead_service_is_not_a_product_defect() -> None:
    sc = load('\n[services.db]\nimage = "clnrm/busybox:latest"\nmemory = "64m"\n')
    oom = EnvironmentRecord(moment="step 'call' failed", ready=["db"], services={"db": {
        "status": "exited", "running": False, "exit_code": 137, "oom_killed": True,
        "restarts": 0}})
    diag = classify(failed_step_result(oom), sc)
    assert diag.failure_class is FailureClass.oom_killed
    assert "OOMKilled" in diag.evidence_text and "step 'call' failed" in diag.evidence_text
    crashed = oom.model_copy(update={"services": {"db": {
        "status": "exited", "running": False, "exit_code": 1, "oom_killed": False}}})
    assert classify(failed_step_result(crashed), sc).failure_class is \
        FailureClass.crashed_on_start
    done = oom.model_copy(update={"services": {"db": {  # a one-shot job that finished
        "status": "exited", "running": False, "exit_code": 0, "oom_killed": False}}})
    assert classify(failed_step_result(done), sc).failure_class is not \
        FailureClass.oom_killed
    assert classify(failed_step_result(None), sc).failure_class is \
        classify(failed_step_result(done), sc).failure_class


def test_the_layer_module_imports_nothing_heavy() -> None:
    probe = textwrap.dedent("""
        import json, sys
        import clnrm.healing.layer
        from clnrm.layers import test_layers
        test_layers()
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(
            ("clnrm.healing.classify", "clnrm.healing.heal", "clnrm.healing.remediations",
             "clnrm.healing.bandit", "numpy", "chromadb", "docker")))))
    """)
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
