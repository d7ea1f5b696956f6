"""No accepted key is silently ignored: keys without effect warn (error under --strict),
and the [orchestration] keys that act (fail_fast, max_parallel, timeout) really do."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from clnrm.backends.local import LocalBackend
from clnrm.errors import ScenarioError
from clnrm.execution import time_limit
from clnrm.results import Outcome
from clnrm.runner import Runner, RunOptions
from clnrm.scenario import loads_scenario
from clnrm.scenario.diagnostics import model_at, valid_keys
from clnrm.scenario.model import Scenario
from clnrm.scenario.no_effect import INERT_KEYS
from clnrm.scenario.raw import RawTestFile

STEP = '\n[[steps]]\nname = "s"\ncommand = ["true"]\n'


def load(body: str, **kwargs: object) -> Scenario:
    text = '[meta]\nname = "t"\n' + dedent(body) + STEP
    return loads_scenario(text, source="t.clnrm.toml", **kwargs)  # type: ignore[arg-type]


def inert(scenario: Scenario) -> list[tuple[int | None, str | None]]:
    return [(w.line, w.key_path) for w in scenario.warnings if "has no effect" in w.message]


def test_every_listed_key_is_a_key_the_format_accepts() -> None:
    """An entry for a key the model no longer has would hide nothing and mislead readers."""
    for entry in INERT_KEYS:
        concrete = tuple(0 if p == "#" else "x" if p == "*" else p for p in entry.pattern)
        parent = model_at(RawTestFile, concrete[:-1])
        assert parent is not None, entry.pattern
        assert concrete[-1] in valid_keys(parent) or concrete[-1] in parent.model_fields, (
            entry.pattern)


def test_orchestration_keys_without_effect_warn_with_file_line_and_key() -> None:
    scenario = load("""
        [orchestration]
        mode = "dag"
        retries = 1
        backend = "ray"
        shard = "1/2"
        fail_fast = true
        max_parallel = 2
        timeout = "1m"
    """)
    assert inert(scenario) == [(5, "orchestration.mode"), (6, "orchestration.retries"),
                               (7, "orchestration.backend"), (8, "orchestration.shard")]
    assert str(scenario.warnings[0]).startswith(
        "t.clnrm.toml:5: [orchestration.mode] has no effect: ")


def test_only_intelligence_keys_naming_a_model_warn() -> None:
    scenario = load("""
        [self_healing]
        max_attempts = 2
        strategies = ["restart_service"]
        [intelligence]
        provider = "heuristic"
    """)
    # [self_healing] acts (clnrm.healing), [intelligence] too (clnrm.intelligence): only
    # the keys asking for a model have no effect
    assert inert(scenario) == [(8, "intelligence.provider")]
    message = scenario.warnings[0].message
    assert "no model or provider is called" in message and "issue" not in message


def test_values_that_ask_for_nothing_and_switched_off_tables_are_quiet() -> None:
    scenario = load("""
        [layers]
        intelligence = false
        [orchestration]
        mode = "sequential"
        retries = 0
        [self_healing]
        enabled = false
        max_attempts = 5
        [intelligence]
        provider = "heuristic"
        [otel]
        sample_ratio = 1.0
    """)
    assert inert(scenario) == []


def test_upstream_keys_without_effect_are_reported_where_written() -> None:
    text = dedent("""
        [meta]
        name = "t"
        [services.db]
        image = "surrealdb"
        password = "root"
        [otel]
        exporter = "otlp"
        [report]
        junit = "out.xml"
        [[steps]]
        name = "s"
        command = ["true"]
        retry_on_failure = true
    """)
    scenario = loads_scenario(text, source="t.clnrm.toml")
    assert inert(scenario) == [(6, "services.db.password"), (8, "otel.exporter"),
                               (10, "report.junit"), (14, "steps[0].retry_on_failure")]


def test_strict_turns_a_key_without_effect_into_a_located_error() -> None:
    with pytest.raises(ScenarioError) as info:
        load("[orchestration]\nretries = 3\n", strict=True)
    assert (info.value.line, info.value.key_path) == (4, "orchestration.retries")
    assert "has no effect" in info.value.message


# -- the keys that act ----------------------------------------------------------------


def test_orchestration_timeout_bounds_the_test_with_meta_timeout() -> None:
    assert time_limit(load('[orchestration]\ntimeout = "20s"\n')) == 20.0
    both = loads_scenario('[meta]\nname = "t"\ntimeout = "5s"\n[orchestration]\ntimeout = 9\n'
                          + STEP)
    assert time_limit(both) == 5.0
    off = load('[layers]\norchestration = false\n[orchestration]\ntimeout = 1\n')
    assert time_limit(off) is None


def test_orchestration_timeout_stops_a_slow_step() -> None:
    sc = loads_scenario('[meta]\nname = "slow"\n[orchestration]\ntimeout = "0.5s"\n'
                        '[[steps]]\nname = "hang"\ncommand = ["sh", "-c", "sleep 30 & wait"]\n')
    [test] = Runner(RunOptions(backend="local"), backend=LocalBackend("noeffect")).run([sc]).tests
    assert test.outcome is Outcome.FAILED and "timed out after" in (test.message or "")


def _file_test(name: str, command: str, orchestration: str = "") -> Scenario:
    return loads_scenario(f'[meta]\nname = "{name}"\n{orchestration}\n[[steps]]\nname = "s"\n'
                          f"command = {command!r}\n".replace("'", '"'))


def test_orchestration_fail_fast_stops_the_run_after_this_test_fails() -> None:
    first = _file_test("first", "exit 3", "[orchestration]\nfail_fast = true")
    second = _file_test("second", "true")
    result = Runner(RunOptions(backend="local", jobs=1),
                    backend=LocalBackend("noeffect")).run([first, second])
    assert [t.outcome for t in result.tests] == [Outcome.FAILED, Outcome.SKIPPED]
    without = _file_test("first", "exit 3")
    result = Runner(RunOptions(backend="local", jobs=1),
                    backend=LocalBackend("noeffect")).run([without, second])
    assert [t.outcome for t in result.tests] == [Outcome.FAILED, Outcome.PASSED]


def test_orchestration_max_parallel_caps_the_run_below_jobs(tmp_path: Path) -> None:
    """Each test records when it started and ended; capped at one, no two overlap."""
    log = tmp_path / "log"
    record = (f"echo start $CLNRM_TEST >> {log}; sleep 0.3; echo end $CLNRM_TEST >> {log}")
    tests = [_file_test(f"t{i}", record, "[orchestration]\nmax_parallel = 1" if i == 0 else "")
             for i in range(3)]
    result = Runner(RunOptions(backend="local", jobs=3),
                    backend=LocalBackend("noeffect")).run(tests)
    assert all(t.outcome is Outcome.PASSED for t in result.tests), result.tests
    events = log.read_text().split("\n")[:-1]
    assert [e.split()[0] for e in events] == ["start", "end"] * 3, events


def test_every_project_file_section_but_project_says_it_is_not_read(tmp_path: Path) -> None:
    from clnrm.scenario import validate_paths
    from clnrm.scenario.no_effect import PROJECT_FILE_HINTS
    from clnrm.scenario.project import ProjectConfig

    assert set(PROJECT_FILE_HINTS) == set(ProjectConfig.model_fields) - {"project"}
    path = tmp_path / "cleanroom.toml"
    path.write_text('[project]\nname = "p"\n[cli]\njobs = 8\n', encoding="utf-8")
    [outcome] = validate_paths([path])
    assert [(w.line, w.key_path) for w in outcome.warnings] == [(3, "cli")]
    assert "--jobs" in (outcome.warnings[0].hint or "")
    [strict] = validate_paths([path], strict=True)
    assert strict.status == "error" and strict.errors[0].key_path == "cli"
