"""Fuzzed input never escapes the loader as anything but a ScenarioError.

Truncated files, random bytes, every key given a wrong type, deep nesting,
megabyte strings, template abuse (loops, repetition, expanding filters) and
special files (devices, FIFOs, symlink loops): each either loads or raises
``ScenarioError`` with a file name, and never the loader's "internal error"
(which would mean a bug was caught by the safety net rather than handled).

The set runs in CI (``make test``) within a time budget: every test has a
``timeout`` mark, hypothesis draws a bounded number of examples, and template
abuse renders under a small render budget (the render limits are what make
each example's time bounded, which this file therefore also checks).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clnrm.errors import ScenarioError
from clnrm.scenario import load_scenario, loads_scenario, render_template
from clnrm.scenario.template_budget import MAX_RENDERED_CHARS, RenderBudget

pytestmark = pytest.mark.timeout(180)  # per test: the file's time budget in CI

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ABUSE = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = """\
[meta]
name = "fuzz"
version = "1"
description = "a file touching most tables"

[vars]
who = "world"

[services.db]
plugin = "generic_container"
image = "postgres:16"
ports = [5432, "8080:80"]
env = { A = "1" }
health_check = { cmd = ["true"], interval = 1, timeout = "5s", retries = 3 }
depends_on = []

[[steps]]
name = "one"
command = ["echo", "hello"]
service = "db"
expected_output_regex = "hel+o"
timeout = "30s"

[[scenario]]
name = "sc"
service = "db"
run = "echo hi"
artifacts.collect = ["spans:default"]

[otel]
exporter = "otlp"
sample_ratio = 0.5
resources = { "service.name" = "clnrm" }

[determinism]
seed = 42
freeze_clock = "2025-01-01T00:00:00Z"

[report]
json = "r.json"

[limits]
cpu_millicores = 500

[[expect.span]]
name = "clnrm.run"
kind = "internal"
attrs.all = { result = "pass" }
duration_ms = { min = 1, max = 10 }

[expect.order]
must_precede = [["a", "b"]]

[expect.status]
all = "OK"

[expect.counts]
spans_total = { gte = 1, lte = 5 }

[[expect.window]]
outer = "a"
contains = ["b"]

[expect.graph]
must_include = [["a", "b"]]
acyclic = true

[expect.hermeticity]
no_external_services = true

[chaos]
seed = 1
[[chaos.faults]]
type = "latency"
target = "db"
port = 5432
latency_ms = 100

[orchestration]
mode = "parallel"
"""
TEMPLATED = VALID.replace(
    'name = "fuzz"', "name = \"{{ vars.who | default(value='x') }}-{{ svc }}\""
)


def assert_loads_or_located(text: str) -> None:
    try:
        loads_scenario(text, source="fuzz.clnrm.toml")
    except ScenarioError as err:
        message = str(err)
        assert message.startswith("fuzz.clnrm.toml"), message
        assert "internal error" not in message, message


def leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaf_paths(value, (*prefix, index))


def to_toml(data: dict[str, Any]) -> str:
    """Top-level keys as ``key = <inline value>``: enough TOML to express any shape."""
    return "".join(f"{json.dumps(key)} = {_inline(value)}\n" for key, value in data.items())


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if value == value and abs(value) != float("inf") else "nan"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def replace_at(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = replace_at(data[path[0]], path[1:], value)
    return copy


BASE = tomli.loads(VALID)
PATHS = [p for p in leaf_paths(BASE) if p]
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_the_fuzz_base_files_are_valid() -> None:
    assert loads_scenario(VALID).name == "fuzz"
    assert loads_scenario(TEMPLATED).name == "world-clnrm"
    assert to_toml(BASE) and loads_scenario(to_toml(BASE)).name == "fuzz"


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(VALID)), templated=st.booleans())
def test_truncated_files(cut: int, templated: bool) -> None:
    assert_loads_or_located((TEMPLATED if templated else VALID)[:cut])


@FUZZ
@given(path=st.sampled_from(PATHS), value=toml_values)
def test_wrong_type_for_any_key(path: tuple[Any, ...], value: Any) -> None:
    assert_loads_or_located(to_toml(replace_at(BASE, path, value)))


@FUZZ
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_random_text(text: str) -> None:
    assert_loads_or_located(text)


@FUZZ
@given(
    prefix=st.integers(min_value=0, max_value=len(VALID)),
    noise=st.text(alphabet="[]{}\"'=.,#\n{%}\\ abc123", max_size=40),
)
def test_valid_file_with_toml_and_template_noise_spliced_in(prefix: int, noise: str) -> None:
    assert_loads_or_located(VALID[:prefix] + noise + VALID[prefix:])


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_random_bytes_from_disk(scratch: Path, data: bytes) -> None:
    path = scratch / "bytes.clnrm.toml"
    path.write_bytes(data)
    try:
        load_scenario(path)
    except ScenarioError as err:
        assert str(path) in str(err)
        assert "internal error" not in str(err)


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 10_000 + "]" * 10_000,
        "a = " + "[" * 10_000,
        "a = " + "{b = " * 3_000 + "1" + "}" * 3_000,
        "[" + ".".join(["a"] * 5_000) + "]\nx = 1\n",
        "[" * 10_000,
        "{{ " + "(" * 5_000 + "1" + ")" * 5_000 + " }}",
        "{% if x %}" * 2_000,
        '[meta]\nname = "{{ ' + "[" * 3_000 + "]" * 3_000 + ' }}"\n',
    ],
    ids=[
        "arrays",
        "unclosed-arrays",
        "inline-tables",
        "dotted-header",
        "brackets",
        "template-parens",
        "template-blocks",
        "template-lists",
    ],
)
def test_deep_nesting_is_a_scenario_error(text: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads_scenario(text, source="deep.clnrm.toml")
    assert "internal error" not in str(info.value)


MEGABYTE = "x" * 1_000_000


@pytest.mark.parametrize(
    "text",
    [
        VALID.replace('name = "fuzz"', f'name = "{MEGABYTE}"'),
        VALID.replace('"hel+o"', f'"{MEGABYTE}"'),
        VALID.replace('command = ["echo", "hello"]', f'command = "{MEGABYTE}"'),
        VALID + f'\n"{MEGABYTE}" = 1\n',
        VALID + f"\n# {MEGABYTE}\n",
        VALID.replace('kind = "internal"', f'kind = "{MEGABYTE}"'),
        VALID.replace('timeout = "30s"', f'timeout = "{MEGABYTE}"'),
        VALID.replace('name = "fuzz"', "name = \"{{ '" + MEGABYTE + "' }}\""),
    ],
    ids=["name", "regex", "command", "key", "comment", "enum", "duration", "template"],
)
def test_megabyte_strings_load_or_fail_with_short_messages(text: str) -> None:
    try:
        loads_scenario(text, source="huge.clnrm.toml")
    except ScenarioError as err:
        assert len(str(err)) < 5_000
        assert "internal error" not in str(err)


# -- template abuse -------------------------------------------------------------------

sizes = st.sampled_from([0, 1, 7, 1000, 99_999, 100_000, 1_000_000, 10**8, 300_000_000])
small = st.integers(min_value=0, max_value=2_000)


@st.composite
def abusive_expressions(draw: st.DrawFn) -> str:
    n, m = draw(sizes), draw(sizes)
    k = draw(small)
    return draw(st.sampled_from([
        f"{{{{ 'a' * {n} }}}}",
        f"{{{{ ['x'] * {n} }}}}",
        f"{{{{ '%0{n}d' % 1 }}}}",
        f"{{{{ '%.{n}f' % 1.5 }}}}",
        f"{{{{ '%*d' % ({n}, 1) }}}}",
        f"{{{{ 'a' | center({n}) }}}}",
        f"{{{{ ('a\\n' * {k}) | indent({n}) }}}}",
        f"{{{{ range({k}) | join('x' * {min(n, 1_000_000)}) }}}}",
        f"{{{{ ('ab' * {k}) | replace('a', 'c' * {min(m, 1_000_000)}) }}}}",
        f"{{{{ ('a ' * {k}) | wordwrap(1, wrapstring='y' * {min(n, 1_000_000)}) }}}}",
        f"{{{{ range({k}) | batch({n}, 'f') | list | length }}}}",
        f"{{{{ '%0{n}d' | format(1) }}}}",
        f"{{{{ 2 ** {n} }}}}",
        f"{{% set x = 'a' * {min(n, 1_000_000)} %}}{{{{ x ~ x ~ x }}}}",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}",
        f"{{% macro g(n) %}}{{% if n %}}{{{{ g(n - 1) }}}}{{{{ g(n - 1) }}}}{{% endif %}}"
        f"{{% endmacro %}}{{{{ g({min(k, 14)}) }}}}",
        "{{ ''.__class__.__mro__ }}",
        "{{ range.__globals__ }}",
        "{% include '/etc/passwd' %}",
        "{{ env(name='HOME') | list | sort | join }}",
    ]))


@st.composite
def abusive_templates(draw: st.DrawFn) -> str:
    body = draw(abusive_expressions())
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        body = f"{{% for i{_} in range({draw(sizes)}) %}}{body}{{% endfor %}}"
    return f'[meta]\nname = "abuse"\nx = """{body}"""\n'


@ABUSE
@given(text=abusive_templates())
def test_template_abuse_renders_small_or_fails_located(text: str) -> None:
    try:
        out = render_template(text, file="abuse.clnrm.toml", budget=RenderBudget(seconds=1.5))
    except ScenarioError as err:
        assert str(err).startswith("abuse.clnrm.toml"), str(err)
        assert "internal error" not in str(err)
        assert len(str(err)) < 2_000
    else:
        assert len(out) <= MAX_RENDERED_CHARS


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=abusive_templates())
def test_template_abuse_through_the_loader(text: str) -> None:
    try:
        loads_scenario(text, source="fuzz.clnrm.toml")
    except ScenarioError as err:
        assert str(err).startswith("fuzz.clnrm.toml") and "internal error" not in str(err)


# -- special files ----------------------------------------------------------------------


def _special(tmp: Path, kind: str) -> Path:
    path = tmp / f"{kind}.clnrm.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-loop":
        path.symlink_to(path.name)
    elif kind == "dangling":
        path.symlink_to(tmp / "nowhere")
    elif kind == "to-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "to-dev-urandom":
        path.symlink_to("/dev/urandom")
    elif kind == "unreadable":
        path.write_text('[meta]\nname = "x"\n')
        path.chmod(0)
    return path


@pytest.mark.parametrize(
    "kind",
    ["fifo", "folder", "symlink-loop", "dangling", "to-dev-zero", "to-dev-urandom",
     "unreadable", "/dev/zero", "/dev/null", "/proc/self/status"],
)
@pytest.mark.timeout(60)  # a FIFO or device read would block or never end
def test_special_files_are_refused_without_hanging(tmp_path: Path, kind: str) -> None:
    from typer.testing import CliRunner

    from clnrm.cli import app

    path = Path(kind) if kind.startswith("/") else _special(tmp_path, kind)
    res = CliRunner().invoke(app, ["validate", str(path)])
    out = res.output
    assert res.exit_code in (0, 2) and not isinstance(res.exception, AssertionError), out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if kind != "unreadable" or os.geteuid() != 0:  # root reads a mode-000 file
        assert res.exit_code == 2 and path.name in out, out
