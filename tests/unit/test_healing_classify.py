"""The classifier on the records a run leaves (messages built exactly as the runner
writes them), and on the labelled scenarios' declared services."""

from __future__ import annotations

from pathlib import Path

import pytest

from clnrm.healing import FailureClass, macro_f1
from clnrm.healing.classify import classify
from clnrm.results import Outcome, StepResult, ValidationResult, ValidationStatus
from clnrm.results import TestResult as Result
from clnrm.scenario import load_scenario
from clnrm.scenario.model import Scenario

SET = Path(__file__).resolve().parents[1] / "healing"


def _sc(name: str) -> Scenario:
    return load_scenario(SET / f"{name}.clnrm.toml")


def _error(message: str, logs: str = "") -> Result:
    if logs:
        message = f"{message}\n--- last log lines of svc ---\n{logs}"
    return Result(name="t", file="f", outcome=Outcome.ERROR, message=message)


def _step(message: str, *, exit_code: int | None = 1, stdout: str = "",
          service: str | None = None) -> Result:
    return Result(name="t", file="f", outcome=Outcome.FAILED, steps=[StepResult(
        name="s", service=service, command=["x"], outcome=Outcome.FAILED,
        exit_code=exit_code, stdout=stdout, message=message)])


def _not_ready(kind: str, which: str, seen: str, status: str = "running",
               svc: str = "svc") -> str:
    return (f"service {svc!r} not ready: {kind} probe failed: x did not hold within 1 s "
            f"({which} timeout); last seen: {seen}; container status: {status}")


def test_probe_limit_on_a_silent_running_service_is_readiness_timeout() -> None:
    diag = classify(_error(_not_ready("command", "the probe", "exit 1")),
                    _sc("readiness_timeout_1"))
    assert diag.failure_class is FailureClass.readiness_timeout
    assert "not ready" in diag.evidence[0]


def test_progress_lines_in_the_log_tail_make_it_slow_start() -> None:
    diag = classify(_error(_not_ready("command", "the probe", "exit 1"), "loading data..."),
                    _sc("slow_start_2"))
    assert diag.failure_class is FailureClass.slow_start
    assert any("loading data" in e for e in diag.evidence)


def test_exit_that_names_an_undeclared_peer_is_dependency_not_ready() -> None:
    sc = _sc("dependency_not_ready_1")
    message = ("service 'app' exited with code 1 before it was ready (waiting for: "
               "command ['test'] exits 0)")
    diag = classify(_error(message, "app: cannot reach db:80: Connection refused"), sc)
    assert diag.failure_class is FailureClass.dependency_not_ready
    assert diag.dependency == "db"


def test_oom_flag_or_137_under_a_memory_limit_is_oom_killed() -> None:
    sc = _sc("oom_killed_1")
    flagged = ("service 'svc' exited with code 137 before it was ready (waiting for: x, "
               "OOMKilled)")
    assert classify(_error(flagged), sc).failure_class is FailureClass.oom_killed
    in_step = classify(_step("exit code 137, expected 0", exit_code=137, service="svc"),
                       _sc("oom_killed_3"))
    assert in_step.failure_class is FailureClass.oom_killed
    assert "memory = 16 MiB" in in_step.evidence_text


def test_plain_exit_before_ready_is_crashed_on_start() -> None:
    message = "service 'svc' exited with code 3 before it was ready (waiting for: x)"
    diag = classify(_error(message, "fatal: stale lock file"), _sc("crashed_on_start_1"))
    assert diag.failure_class is FailureClass.crashed_on_start
    assert "stale lock" in diag.evidence_text


def test_low_cpus_limit_with_a_timeout_is_resource_starvation() -> None:
    diag = classify(_error(_not_ready("command", "the probe", "exit 1")),
                    _sc("resource_starvation_1"))
    assert diag.failure_class is FailureClass.resource_starvation
    assert "cpus = 0.01" in diag.evidence_text


def test_refused_probe_while_the_command_listens_elsewhere_is_a_port_mismatch() -> None:
    diag = classify(_error(_not_ready("tcp", "the probe", "172.18.0.2:8080: Connection refused",
                                      svc="web")), _sc("port_mismatch_1"))
    assert diag.failure_class is FailureClass.port_or_config_mismatch
    assert (diag.port, diag.seen_port) == (8080, 8081)


def test_unknown_host_in_a_step_is_a_config_mismatch() -> None:
    diag = classify(_step("exit code 1, expected 0", stdout="wget: bad address 'webb'"),
                    _sc("port_mismatch_3"))
    assert diag.failure_class is FailureClass.port_or_config_mismatch


def test_missing_image_and_step_timeout() -> None:
    missing = _error("image 'clnrm/heal-missing:1' is not present in the local Docker engine")
    assert classify(missing).failure_class is FailureClass.image_missing
    slow = _step("timed out after 1 s", exit_code=None)
    assert classify(slow).failure_class is FailureClass.timeout


def test_wrong_answer_on_a_healthy_system_is_a_product_defect() -> None:
    diag = classify(_step("stdout does not match /^42$/; stdout was: '41'", exit_code=0),
                    _sc("product_defect_2"))
    assert diag.failure_class is FailureClass.product_defect
    span = Result(name="t", file="f", outcome=Outcome.FAILED, validations=[
        ValidationResult(validator="span", expectation="span 'orders.create'",
                         status=ValidationStatus.FAIL, expected="1", seen="0")])
    assert classify(span).failure_class is FailureClass.product_defect


def test_a_passing_rerun_makes_it_flaky_with_a_stated_confidence() -> None:
    first = _step("exit code 1, expected 0")
    diag = classify(first, reruns=[False, True])
    assert diag.failure_class is FailureClass.flaky
    assert 0.5 <= diag.confidence < 1.0
    assert "1 of 2 passed" in diag.evidence[0]
    assert classify(first, reruns=[False, False]).failure_class is FailureClass.product_defect


def test_a_program_the_image_lacks_is_a_config_mismatch_and_exit_0_is_no_crash() -> None:
    missing = _step("exit code 127, expected 0; output: OCI runtime exec failed: exec "
                    "failed: executable file not found in $PATH", exit_code=127)
    assert classify(missing).failure_class is FailureClass.port_or_config_mismatch
    ended = _error("service 'svc' exited with code 0 before it was ready (waiting for: x)")
    assert classify(ended).failure_class is FailureClass.unknown


def test_unexplained_error_is_unknown() -> None:
    assert classify(_error("engine answered 500: internal error")).failure_class is \
        FailureClass.unknown


@pytest.mark.parametrize(("pairs", "expected"), [
    ([("a", "a"), ("b", "b")], 1.0),
    ([("a", "a"), ("a", "b")], (2 / 3 + 0.0) / 2),
])
def test_macro_f1(pairs: list[tuple[str, str]], expected: float) -> None:
    assert macro_f1(pairs) == pytest.approx(expected)


def test_labelled_set_has_at_least_40_scenarios_each_with_a_class() -> None:
    from clnrm.healing.labelled import labelled_set

    cases = labelled_set(SET)
    assert len(cases) >= 40
    assert {c.expected for c in cases} == {c.value for c in FailureClass}
    assert all(c.healable == FailureClass(c.expected).healable for c in cases
               if c.expected != "image_missing")  # a foreign image: healable only by hand
