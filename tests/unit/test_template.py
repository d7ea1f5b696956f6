"""Template rendering: variable precedence, sandbox, Tera compatibility, determinism."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest

from clnrm.errors import ScenarioError
from clnrm.scenario import Scenario, is_template, loads_scenario, render_template

DEFAULT_ENV = (
    "SERVICE_NAME",
    "ENV",
    "OTEL_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "CLNRM_IMAGE",
    "FREEZE_CLOCK",
    "OTEL_TOKEN",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default template variables read the environment; start every test from none of them."""
    for name in DEFAULT_ENV:
        monkeypatch.delenv(name, raising=False)


def templated_file(name_expr: str, extra: str = "") -> str:
    return dedent(f"""
        {extra}
        [meta]
        name = "{name_expr}"
        [[steps]]
        name = "s"
        command = ["echo", "{name_expr}"]
    """)


def load(text: str, **kwargs: object) -> Scenario:
    return loads_scenario(text, source="t.clnrm.toml", **kwargs)  # type: ignore[arg-type]


def render_error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        render_template(text, file="t.clnrm.toml")
    return info.value


# -- detection and precedence ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "templated"),
    [
        ("a = '{{ x }}'", True),
        ("{% if x %}{% endif %}", True),
        ("{# note #}", True),
        ("a = 'plain'", False),
        ("run = 'echo ${#VAR}'", False),
    ],
)
def test_template_detection_follows_upstream_but_ignores_shell_length(
    text: str, templated: bool
) -> None:
    assert is_template(text) is templated


def test_defaults_are_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "{{ svc }}|{{ env }}|{{ endpoint }}|{{ exporter }}|{{ image }}|"
        "{{ freeze_clock }}|{{ token }}|{{ vars.svc }}"
    )
    assert render_template(text) == (
        "clnrm|ci|http://localhost:4318|otlp|clnrm/busybox:latest|2025-01-01T00:00:00Z||clnrm"
    )


def test_precedence_is_defaults_then_environment_then_vars_then_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE_NAME", "from-env")
    monkeypatch.setenv("ENV", "from-env")
    monkeypatch.setenv("OTEL_ENDPOINT", "from-env")
    text = dedent("""
        [vars]
        env = "from-vars"
        endpoint = "from-vars"
        [meta]
        name = "{{ svc }}/{{ env }}/{{ vars.endpoint }}/{{ exporter }}"
        [[steps]]
        name = "s"
        command = ["true"]
    """)
    scenario = load(text, variables={"endpoint": "from-args"})
    assert scenario.name == "from-env/from-vars/from-args/otlp"
    assert scenario.vars == {"env": "from-vars", "endpoint": "from-args"}
    assert scenario.templated


def test_vars_may_use_templates_themselves() -> None:
    scenario = load(templated_file("{{ vars.full }}", extra='[vars]\nfull = "{{ svc }}-suffix"'))
    assert scenario.name == "clnrm-suffix"


def test_nested_vars_and_numbers_render() -> None:
    text = templated_file(
        "{{ vars.db.host }}:{{ vars.db.port }}", extra='[vars.db]\nhost = "h"\nport = 5432'
    )
    assert load(text).name == "h:5432"


def test_toml_comments_with_examples_do_not_break_rendering() -> None:
    text = templated_file(
        "{{ vars.x }}", extra='# use {{ vars.undefined_example }} in commands\n[vars]\nx = "ok"'
    )
    assert load(text).name == "ok"


def test_shell_string_length_is_not_a_template_comment() -> None:
    text = (
        templated_file("{{ svc }}")
        + '\n[[steps]]\nname = "len"\ncommand = ["sh", "-c", "X=ab; echo ${#X}"]\n'
    )
    assert load(text).steps[1].command[2] == "X=ab; echo ${#X}"


def test_rendered_values_print_as_toml() -> None:
    assert render_template("{{ [true, 'a', 1] }} {{ false }}") == '[true, "a", 1] false'


# -- Tera compatibility ---------------------------------------------------------------


def test_tera_keyword_filters_and_env_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLNRM_TEST_VALUE", "set")
    monkeypatch.delenv("CLNRM_TEST_UNSET", raising=False)
    text = (
        "{{ vars.missing | default(value='dflt') }}|{{ env(name='CLNRM_TEST_VALUE') }}|"
        "{{ env(name='CLNRM_TEST_UNSET') | default(value='fallback') }}|"
        "{{ env(name='CLNRM_TEST_UNSET', default='d2') }}|"
        "{% if env(name='CLNRM_TEST_UNSET') %}yes{% else %}no{% endif %}|"
        "{{ 'My Company' | slugify }}|{{ 'a-b' | replace(from='-', to='_') }}|"
        "{{ [1, 2] | join(sep=',') }}"
    )
    assert render_template(text) == "dflt|set|fallback|d2|no|my-company|a_b|1,2"


def test_unset_environment_variable_printed_is_a_located_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLNRM_TEST_UNSET", raising=False)
    err = render_error("a\nb = '{{ env(name=\"CLNRM_TEST_UNSET\") }}'\n")
    assert err.line == 2
    assert "environment variable 'CLNRM_TEST_UNSET' is not set" in err.message


def test_undefined_variable_is_located_with_hint() -> None:
    err = render_error("x = 1\ny = '{{ nope }}'\n")
    assert (err.line, str(err.file)) == (2, "t.clnrm.toml")
    assert "'nope' is undefined" in err.message
    assert err.hint and "[vars]" in err.hint


def test_undefined_is_false_in_conditions_like_tera() -> None:
    assert render_template("{% if vars.flag %}on{% else %}off{% endif %}") == "off"


def test_tera_macro_call_syntax_is_a_located_error_not_a_traceback() -> None:
    err = render_error('[meta]\n{{ m::span("x") }}\n')
    assert err.line == 2
    assert err.hint and "Tera-only syntax" in err.hint


def test_functions_render_well_formed_ids_and_times() -> None:
    text = (
        "{{ uuid_v4() }} {{ uuid_v7() }} {{ ulid() }} {{ now_rfc3339() }} "
        "{{ sha256(s='abc') }} {{ trace_id() }}"
    )
    uuid4, uuid7, ulid, now, digest, trace = render_template(text).split()
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid4
    )
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid7
    )
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", ulid)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", now)
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert re.fullmatch(r"[0-9a-f]{32}", trace)


def test_seed_argument_makes_a_function_pure() -> None:
    assert render_template("{{ uuid_v4(seed=42) }}") == render_template("{{ uuid_v4(seed=42) }}")
    assert render_template("{{ uuid_v4(seed=42) }}") != render_template("{{ uuid_v4(seed=43) }}")
    assert render_template("{{ fake_name(seed=1) }}") == render_template("{{ fake_name(seed=1) }}")


def test_determinism_table_freezes_clock_and_seeds_rng() -> None:
    text = dedent("""
        [vars]
        ids = "{{ uuid_v4() }} {{ uuid_v4() }}"
        [determinism]
        seed = 7
        freeze_clock = "2025-01-01T00:00:00Z"
        [meta]
        name = "{{ now_rfc3339() }} {{ now_plus(seconds=3600) }} {{ now_unix() }} {{ vars.ids }}"
        [[steps]]
        name = "s"
        command = ["true"]
    """)
    first, second = load(text).name, load(text).name
    assert first == second
    now, later, unix, id1, id2 = first.split()
    assert (now, later, unix) == ("2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", "1735689600")
    assert id1 != id2  # one seeded stream, not one value


# -- sandbox --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "''.__class__",
        "''.__class__.__mro__",
        "vars.__class__",
        "range.__globals__",
        "'a'.upper()",
        "'a' | attr('upper')",
        "loop.__class__",
        "sha256.__globals__",
    ],
)
def test_attribute_access_is_refused(expr: str) -> None:
    err = render_error(f"a = 1\nb = '{{{{ {expr} }}}}'\n")
    assert err.line == 2
    assert "refused" in err.message or "not defined" in err.message or "undefined" in err.message


@pytest.mark.parametrize(
    "tag",
    ["include 'x.toml'", "import '_macros.toml.tera' as m", "extends 'base'", "from 'm' import x"],
)
def test_templates_cannot_read_files(tag: str) -> None:
    err = render_error(f"# header\n\n{{% {tag} %}}\n")
    assert err.line == 3
    assert "cannot include or import files" in err.message


def test_import_inside_a_template_comment_is_ignored_when_locating() -> None:
    err = render_error("{# see {% import 'x' as m %} #}\n\n{% import 'y' as m %}\n")
    assert err.line == 3


@pytest.mark.parametrize("expr", ["'x' * 100000000", "[0] * 10000000", "10 ** 100000"])
def test_huge_values_are_refused(expr: str) -> None:
    err = render_error(f"a = '{{{{ {expr} }}}}'")
    assert "refused" in err.message
