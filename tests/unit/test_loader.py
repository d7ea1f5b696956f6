"""The TOML loader: located errors, unknown keys, normalisation, cross-field rules."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from clnrm.errors import ScenarioError
from clnrm.scenario import (
    HealthCheck,
    Scenario,
    ScenarioBlock,
    ServiceConfig,
    Step,
    discover_test_files,
    load_scenario,
    loads_scenario,
    validate_paths,
)

MINIMAL = """
[meta]
name = "t"

[[steps]]
name = "s"
command = ["true"]
"""


def load(text: str, **kwargs: object) -> Scenario:
    return loads_scenario(dedent(text), source="t.clnrm.toml", **kwargs)  # type: ignore[arg-type]


def error_of(text: str, **kwargs: object) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(text, **kwargs)
    return info.value


# -- located errors -------------------------------------------------------------------


def test_enum_error_names_file_line_key_and_choices() -> None:
    err = error_of(MINIMAL + '\n[[expect.span]]\nname = "x"\nkind = "srv"\n')
    assert str(err).startswith(
        "t.clnrm.toml:11: [expect.span[0].kind] must be one of internal, server,"
    )
    assert "got 'srv'" in str(err)
    assert (err.line, err.key_path) == (11, "expect.span[0].kind")
    assert err.file == Path("t.clnrm.toml")


def test_type_error_is_phrased_in_toml_terms() -> None:
    err = error_of(MINIMAL + '\n[limits]\nmemory_mb = "lots"\n')
    assert err.key_path == "limits.memory_mb"
    assert err.line == 10
    assert "expected an integer, got string 'lots'" in str(err)


def test_error_inside_inline_array_of_tables_points_at_its_line() -> None:
    text = MINIMAL + dedent("""
        [[scenario]]
        name = "sc"
        steps = [
          { name = "a", command = ["true"] },
          { name = "b", command = ["true"], expected_exit_code = "zero" },
        ]
    """)
    err = error_of(text)
    assert err.key_path == "scenario[0].steps[1].expected_exit_code"
    assert err.line == 13


def test_toml_syntax_error_has_line_and_hint() -> None:
    err = error_of('[meta\nname = "x"\n')
    assert err.line == 1
    assert "not valid TOML" in err.message
    assert err.hint and "closing bracket" in err.hint


def test_multiline_basic_string_gets_a_hint() -> None:
    err = error_of('[meta]\nname = "a\nb"\n')
    assert err.line == 2
    assert err.hint and "triple-quoted" in err.hint


def test_every_problem_is_listed_on_the_raised_error() -> None:
    text = (
        MINIMAL + '\n[[expect.span]]\nname = "x"\nkind = "srv"\n\n[expect.status]\nall = "GREEN"\n'
    )
    err = error_of(text)
    problems = err.problems  # type: ignore[attr-defined]
    assert [p.key_path for p in problems] == ["expect.span[0].kind", "expect.status.all"]
    assert "must be one of OK, ERROR, UNSET; got 'GREEN'" in str(problems[1])


def test_regex_that_does_not_compile_is_a_located_error() -> None:
    err = error_of(
        MINIMAL.replace('command = ["true"]', 'command = ["true"]\nexpected_output_regex = "a(b"')
    )
    assert err.key_path == "steps[0].expected_output_regex"
    assert err.line == 8
    assert "not a valid regular expression" in err.message


def test_count_bounds_and_graph_edges_are_checked_at_load_time() -> None:
    err = error_of(MINIMAL + "\n[expect.counts]\nspans_total = { gte = 5, lte = 2 }\n")
    assert "gte (5) must not exceed lte (2)" in err.message
    assert err.key_path == "expect.counts.spans_total"
    err = error_of(MINIMAL + '\n[expect.graph]\nmust_include = [["a"]]\n')
    assert "exactly two" in err.message
    assert err.key_path == "expect.graph.must_include[0]"


# -- unknown keys ---------------------------------------------------------------------


def test_unknown_key_is_a_warning_with_did_you_mean() -> None:
    scenario = load(MINIMAL + '\n[services.db]\nimgae = "x"\nimage = "postgres:16"\n')
    [warning] = scenario.warnings
    assert warning.key_path == "services.db.imgae"
    assert warning.line == 10
    assert "unknown key 'imgae' in [services.db]" in warning.message
    assert warning.hint and "did you mean 'image'?" in warning.hint
    assert "Valid keys: plugin, image," in warning.hint
    assert str(warning).startswith("t.clnrm.toml:10: [services.db.imgae] unknown key")
    assert scenario.services["db"].image == "postgres:16"


def test_unknown_key_is_an_error_when_strict() -> None:
    err = error_of(MINIMAL + '\n[services.db]\nimgae = "x"\nimage = "postgres:16"\n', strict=True)
    assert err.key_path == "services.db.imgae"
    assert err.hint and "did you mean 'image'?" in err.hint


def test_unknown_top_level_table_lists_valid_tables() -> None:
    scenario = load(MINIMAL + "\n[expectations]\nx = 1\n")
    [warning] = scenario.warnings
    assert "unknown table or key 'expectations' in the top level" in warning.message
    assert warning.hint and "did you mean 'expect'?" in warning.hint


def test_known_upstream_leftovers_get_specific_advice() -> None:
    text = MINIMAL.replace(
        'command = ["true"]', 'command = ["true"]\nexpected_output_contains = "x"'
    )
    [warning] = load(text).warnings
    assert warning.hint and warning.hint.startswith("use expected_output_regex")


# -- metadata -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "timeout", "seconds"),
    [
        ("[meta]", '"30s"', 30.0),
        ("[test.metadata]", '"5m"', 300.0),
        ("[test.metadata]", '"2h"', 7200.0),
        ("[test.metadata]", '"90s"', 90.0),
        ("[test.metadata]", "45", 45.0),
        ("[test]", '"1m30s"', 90.0),
    ],
)
def test_name_description_timeout_come_from_any_metadata_table(
    header: str, timeout: str, seconds: float
) -> None:
    text = (
        f'{header}\nname = "n"\ndescription = "d"\ntimeout = {timeout}\n'
        '[[steps]]\nname = "s"\ncommand = ["true"]\n'
    )
    scenario = load(text)
    assert (scenario.name, scenario.description, scenario.timeout) == ("n", "d", seconds)


def test_meta_wins_over_test_metadata() -> None:
    scenario = load(
        '[meta]\nname = "a"\n[test.metadata]\nname = "b"\n[[steps]]\nname = "s"\ncommand = ["x"]\n'
    )
    assert scenario.name == "a"


def test_missing_name_is_an_error_with_hint() -> None:
    err = error_of('[[steps]]\nname = "s"\ncommand = ["true"]\n')
    assert "the test has no name" in err.message
    assert err.hint and "[meta]" in err.hint


def test_blank_name_points_at_the_key() -> None:
    err = error_of('[test.metadata]\nname = "  "\n[[steps]]\nname = "s"\ncommand = ["true"]\n')
    assert (err.key_path, err.line) == ("test.metadata.name", 2)


def test_bad_timeout_says_what_is_accepted() -> None:
    err = error_of(
        '[test.metadata]\nname = "n"\ntimeout = "soon"\n[[steps]]\nname = "s"\ncommand = ["x"]\n'
    )
    assert err.key_path == "test.metadata.timeout"
    assert err.hint and '"30s"' in err.hint


def test_a_file_with_nothing_to_run_is_rejected() -> None:
    err = error_of('[meta]\nname = "n"\n')
    assert "nothing to run" in err.message


# -- normalisation --------------------------------------------------------------------


def test_string_command_runs_under_sh_c_and_arrays_stay_argv() -> None:
    scenario = load(
        '[meta]\nname = "n"\n[[steps]]\nname = "a"\ncommand = "echo hi && exit 0"\n'
        '[[steps]]\nname = "b"\ncommand = ["echo", "a b"]\ntimeout = "1m"\n'
    )
    assert scenario.steps[0].command == ["sh", "-c", "echo hi && exit 0"]
    assert scenario.steps[1].command == ["echo", "a b"]
    assert scenario.steps[1].timeout == 60.0
    assert isinstance(scenario.steps[0], Step)


def test_services_and_service_tables_are_merged() -> None:
    scenario = load(MINIMAL + '\n[services.a]\nimage = "i"\n[service.b]\nimage = "j"\n')
    assert sorted(scenario.services) == ["a", "b"]
    assert all(isinstance(s, ServiceConfig) for s in scenario.services.values())


def test_same_service_in_services_and_service_is_a_located_error() -> None:
    err = error_of(MINIMAL + '\n[services.a]\nimage = "i"\n\n[service.a]\nimage = "j"\n')
    assert "declared in both [services] and [service]" in err.message
    assert (err.key_path, err.line) == ("service.a", 12)


def test_docker_compose_spellings_are_read() -> None:
    scenario = load(
        MINIMAL
        + dedent("""
        [services.web]
        image = "node:18"
        ports = ["3000:3000", 8080, "127.0.0.1:9000:9001/tcp"]
        environment = { NODE_ENV = "production", PORT = 3000 }
        working_dir = "/app"
        volumes = ["/tmp/data:/data:ro", { host_path = "/a", container_path = "/b" }]
        healthcheck = { command = ["wget", "-q", "x"], interval = "10s", timeout = 5, retries = 5 }
        command = "npm start"
        [services.other]
        image = "x"
        env = ["A=1", "B=two=2"]
        health_check = "curl -f localhost || exit 1"
    """)
    )
    web = scenario.services["web"]
    assert web.ports == [3000, 8080, 9001]
    assert web.env == {"NODE_ENV": "production", "PORT": "3000"}
    assert web.workdir == "/app"
    assert [(v.host_path, v.container_path, v.read_only) for v in web.volumes] == [
        ("/tmp/data", "/data", True),
        ("/a", "/b", False),
    ]
    assert web.health_check == HealthCheck(
        cmd=["wget", "-q", "x"], interval=10, timeout=5, retries=5
    )
    assert web.command == ["sh", "-c", "npm start"]
    other = scenario.services["other"]
    assert other.env == {"A": "1", "B": "two=2"}
    assert other.health_check is not None
    assert other.health_check.cmd == ["sh", "-c", "curl -f localhost || exit 1"]


def test_both_spellings_of_one_key_is_an_error() -> None:
    err = error_of(MINIMAL + '\n[services.a]\nimage = "i"\nenv = {}\nenvironment = {}\n')
    assert "either 'env' or 'environment'" in err.message
    assert err.key_path == "services.a"


def test_bad_port_is_located() -> None:
    err = error_of(MINIMAL + '\n[services.a]\nimage = "i"\nports = [8080, "http"]\n')
    assert err.key_path == "services.a.ports[1]"
    assert "not a port" in err.message


def test_upstream_attr_list_and_protocol_shorthands_are_read() -> None:
    scenario = load(
        MINIMAL
        + dedent("""
        [otel]
        exporter = "stdout"
        protocol = "json"
        [[expect.span]]
        name = "x"
        attrs.any = ["step.name=hello", "status=ok"]
        attrs.all = { "retries" = 3, "ok" = true }
    """)
    )
    assert scenario.otel is not None and scenario.otel.protocol == "http/json"
    attrs = scenario.expect.span[0].attrs
    assert attrs is not None
    assert attrs.any == {"step.name": "hello", "status": "ok"}
    assert attrs.all == {"retries": "3", "ok": "true"}


def test_scenario_block_and_tables_are_typed() -> None:
    scenario = load(
        dedent("""
        [meta]
        name = "n"
        [service.app]
        image = "alpine"
        [[scenario]]
        name = "run"
        service = "app"
        run = "echo hi"
        artifacts.collect = ["spans:default"]
        [determinism]
        seed = 42
        freeze_clock = 2025-01-01T00:00:00Z
        [report]
        json = "r.json"
        digest = "d.sha256"
        [expect.hermeticity]
        resource_attrs_must_match = { "service.name" = "clnrm" }
    """)
    )
    [block] = scenario.scenarios
    assert isinstance(block, ScenarioBlock) and block.run == "echo hi"
    assert scenario.determinism is not None
    assert (scenario.determinism.seed, scenario.determinism.freeze_clock) == (
        42,
        "2025-01-01T00:00:00Z",
    )
    assert scenario.report is not None and scenario.report.json_path == "r.json"
    herm = scenario.expect.hermeticity
    assert herm is not None and herm.resource_attrs is not None
    assert herm.resource_attrs.must_match == {"service.name": "clnrm"}


def test_layer_tables_load_and_keep_fault_parameters() -> None:
    scenario = load(
        MINIMAL
        + dedent("""
        [services.db]
        image = "postgres"
        [layers]
        intelligence = false
        [orchestration]
        mode = "parallel"
        max_parallel = 4
        [chaos]
        seed = 7
        [[chaos.faults]]
        type = "latency"
        target = "db"
        duration = "5s"
        port = 5432
        latency_ms = 200
        [performance]
        iterations = 5
        [self_healing]
        strategies = ["restart_service"]
        [intelligence]
        provider = "heuristic"
        [[expect.performance]]
        span = "clnrm.step:s"
        max = 250
        [[expect.resilience]]
        fault = "latency"
        recovers_within = "30s"
    """)
    )
    assert scenario.chaos is not None
    [fault] = scenario.chaos.faults
    assert (fault.type, fault.target, fault.duration, fault.params) == (
        "latency",
        "db",
        5.0,
        {"port": 5432, "latency_ms": 200},
    )
    assert scenario.layer_enabled("chaos") and scenario.layer_enabled("orchestration")
    assert not scenario.layer_enabled("intelligence")
    assert scenario.expect.resilience[0].recovers_within == 30.0


def test_fault_target_must_be_a_declared_service() -> None:
    err = error_of(MINIMAL + '\n[[chaos.faults]]\ntype = "kill"\ntarget = "ghost"\n')
    assert (err.key_path, err.line) == ("chaos.faults[0].target", 11)


# -- cross-field rules ----------------------------------------------------------------


def test_step_service_must_be_declared_and_hint_lists_declared_ones() -> None:
    err = error_of(
        '[meta]\nname = "n"\n[services.db]\nimage = "p"\n'
        '[[steps]]\nname = "s"\ncommand = ["x"]\nservice = "dbx"\n'
    )
    assert (err.key_path, err.line) == ("steps[0].service", 8)
    assert "uses service 'dbx', which is not declared" in err.message
    assert err.hint == "declared services: db"


def test_depends_on_must_name_a_declared_service_and_not_itself() -> None:
    err = error_of(MINIMAL + '\n[services.a]\nimage = "i"\ndepends_on = ["a", "zz"]\n')
    problems = err.problems  # type: ignore[attr-defined]
    assert [p.key_path for p in problems] == [
        "services.a.depends_on[0]",
        "services.a.depends_on[1]",
    ]
    assert "depends on itself" in problems[0].message


@pytest.mark.parametrize("plugin", ["network_service", "local_process", "ollama"])
def test_image_is_optional_only_for_some_plugins(plugin: str) -> None:
    assert load(MINIMAL + f'\n[services.a]\nplugin = "{plugin}"\n').services["a"].image is None


def test_missing_image_is_located_and_explains_type_vs_plugin() -> None:
    err = error_of(MINIMAL + '\n[services.db]\ntype = "surrealdb"\n')
    assert (err.key_path, err.line) == ("services.db", 9)
    assert "needs an image" in err.message
    assert err.hint and "plugin is chosen by plugin" in err.hint


def test_scenario_without_run_or_steps_is_rejected() -> None:
    err = error_of('[meta]\nname = "n"\n[[scenario]]\nname = "x"\n')
    assert (err.key_path, err.line) == ("scenario[0]", 3)


# -- files, discovery, validation -----------------------------------------------------


def test_load_scenario_reads_a_file_and_records_its_source(tmp_path: Path) -> None:
    path = tmp_path / "a.clnrm.toml"
    path.write_text(MINIMAL)
    scenario = load_scenario(path)
    assert scenario.source == str(path)
    assert not scenario.templated


def test_unreadable_and_non_utf8_files_are_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "missing.clnrm.toml")
    bad = tmp_path / "bad.clnrm.toml"
    bad.write_bytes(b'[meta]\nname = "\xff"\n')
    with pytest.raises(ScenarioError, match="not UTF-8") as info:
        load_scenario(bad)
    assert info.value.line == 2


def test_discover_and_validate_walk_different_sets(tmp_path: Path) -> None:
    (tmp_path / "a.clnrm.toml").write_text(MINIMAL)
    (tmp_path / "b.toml").write_text("[meta\n")
    (tmp_path / "c.clnrm.toml.tera").write_text(MINIMAL.replace('"t"', '"{{ svc }}"'))
    (tmp_path / "d.toml.tera").write_text(MINIMAL)
    (tmp_path / "cleanroom.toml").write_text(
        '[project]\nname = "p"\n[containers]\nstartup_timeout = "2m"\n'
    )
    (tmp_path / "README.md").write_text("# not toml")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.toml").write_text(MINIMAL)
    names = [p.name for p in discover_test_files([tmp_path])]
    assert names == ["a.clnrm.toml", "b.toml", "c.clnrm.toml.tera"]
    outcomes = {o.path.name: o for o in validate_paths([tmp_path])}
    assert sorted(outcomes) == [
        "a.clnrm.toml",
        "b.toml",
        "c.clnrm.toml.tera",
        "cleanroom.toml",
        "d.toml.tera",
    ]
    assert outcomes["b.toml"].status == "error"
    assert outcomes["c.clnrm.toml.tera"].scenario is not None
    assert outcomes["c.clnrm.toml.tera"].scenario.name == "clnrm"
    project = outcomes["cleanroom.toml"]
    assert (project.kind, project.status) == ("project", "warnings")
    [warning] = project.warnings  # [project] is descriptive; [containers] is not read
    assert (warning.line, warning.key_path) == (3, "containers")
    assert "has no effect" in warning.message and warning.hint
    assert project.project is not None and project.project.containers.startup_timeout == 120.0


def test_explicit_file_paths_are_kept_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "z.toml", tmp_path / "a.toml"
    assert discover_test_files([first, second, first]) == [first, second]


def test_project_file_errors_and_warnings_are_located(tmp_path: Path) -> None:
    path = tmp_path / "cleanroom.toml"
    path.write_text('[security]\nsecurity_level = "extreme"\n[cli]\njobz = 2\n')
    [outcome] = validate_paths([path])
    assert outcome.status == "error"
    assert outcome.errors[0].key_path == "security.security_level"
    assert outcome.errors[0].line == 2
    path.write_text("[cli]\njobz = 2\n")
    [outcome] = validate_paths([path])
    assert outcome.status == "warnings"
    [inert, unknown] = outcome.warnings  # by line: the [cli] table, then its misspelt key
    assert (inert.key_path, unknown.key_path) == ("cli", "cli.jobz")
    assert unknown.hint and "did you mean 'jobs'?" in unknown.hint
    [outcome] = validate_paths([path], strict=True)
    assert outcome.status == "error"
