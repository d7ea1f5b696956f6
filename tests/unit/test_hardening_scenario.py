"""Hostile test files (issue 18): render budget, deep nesting, host mounts, secret redaction.

Each class of abuse gets a located ``ScenarioError`` (file, line, key, hint;
exit 2 through the CLI) or, for secrets, a report and log that never show the
value while the process under test still receives it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.errors import ScenarioError
from clnrm.redact import MASK, forget_secrets, redact_text, register_secret
from clnrm.scenario import loads_scenario, render_template
from clnrm.scenario.mounts import SYSTEM_PATHS, allowing_host_mounts, sensitive_reason
from clnrm.scenario.template_budget import MAX_RENDERED_CHARS, RenderBudget
from tests.conftest import run_cli


def render_error(text: str, budget: RenderBudget | None = None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        render_template(text, file="t.clnrm.toml", budget=budget)
    return info.value


# -- render budget ----------------------------------------------------------------------


def test_nested_loops_are_refused_at_the_loop_line() -> None:
    text = 'a = 1\nb = 2\n{% for i in range(100000) %}{% for j in range(100000) %}' \
           '{% endfor %}{% endfor %}\n'
    err = render_error(text)
    assert "loops turned more than" in err.message
    assert err.line == 3 and str(err.file) == "t.clnrm.toml"
    assert err.hint and "nested loops multiply" in err.hint


def test_render_time_is_bounded_by_the_deadline() -> None:
    # 2**40 macro calls: no loop, no big value, only time; a small budget keeps the test short
    text = ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}\n"
            "x = '{{ f(40) }}'\n")
    err = render_error(text, RenderBudget(seconds=0.3))
    assert "took longer than 0.3 s" in err.message
    assert err.line in (1, 2)


def test_recursive_loop_turns_are_counted() -> None:
    text = ("{% for x in [[1, 2, 3]] * 50 recursive %}"
            "{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}")
    assert len(render_template(text, budget=RenderBudget(max_turns=200))) == 150
    assert "loops turned more than 100" in render_error(text, RenderBudget(max_turns=100)).message


def test_rendered_output_is_bounded() -> None:
    # the 893 MB example: 300 megabyte-sized values, each within the value limit
    err = render_error("{% for i in range(300) %}{{ 'a' * 1000000 }} {% endfor %}")
    assert f"{MAX_RENDERED_CHARS:,}" in err.message and err.line == 1


def test_literal_text_in_loops_counts_towards_the_output_limit() -> None:
    body = "x" * 100
    err = render_error(f"{{% set s %}}{{% for i in range(100000) %}}{body}{{% endfor %}}"
                       "{% endset %}")
    assert "output would exceed" in err.message


@pytest.mark.parametrize(
    ("expr", "what"),
    [
        ("'%0300000000d' % 1", "'%' result"),
        ("'%.300000000f' % 1.5", "'%' result"),
        ("'%*d' % (300000000, 1)", "'%' result"),
        ("'a' | center(300000000)", "'center' filter"),
        ("'%0300000000d' | format(1)", "'format' filter"),
        ("('\\n' * 100000) | indent(1000)", "'indent' filter"),
        ("('a' * 1000) | replace('a', 'b' * 1000)", "'replace' filter"),
        ("('a' * 1000) | replace(from='a', to='b' * 1000)", "'replace' filter"),
        ("(['a'] * 1000000) | join('xx')", "'*' result"),
        ("range(1000) | join('x' * 10000)", "'join' filter"),
        ("('a ' * 100000) | wordwrap(1, wrapstring='x' * 100)", "'wordwrap' filter"),
        ("range(10) | batch(100000000, 'x') | list", "'batch' filter"),
        ("[['a'] * 1000000] * 2", "'*' result"),
        ("('a' * 600000) + ('a' * 600000)", "'+' result"),
        ("('a' * 600000) ~ ('a' * 600000)", "'~' result"),
    ],
)
def test_values_over_the_size_limit_are_refused_before_they_are_built(
    expr: str, what: str
) -> None:
    err = render_error(f'a = 1\nx = "{{{{ {expr} }}}}"\n')
    assert what in err.message and "render limit" in err.message
    assert err.line == 2


def test_doubling_through_macros_and_set_is_refused() -> None:
    assert "'~' result" in render_error(
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('a') }}").message
    doubling = "{% set x = 'a' * 1000 %}" + "{% set x = x ~ x %}" * 20
    assert render_error(doubling).line == 1


def test_filter_blocks_are_guarded_and_shrinking_filters_are_not_refused() -> None:
    err = render_error("a = 1\n{% filter center(300000000) %}x{% endfilter %}\n")
    assert "'center' filter" in err.message and err.line == 2
    assert render_template("{{ 'abc' | truncate(300000000) }}") == "abc"
    assert render_template("{{ range(3) | batch(100000000) | list }}") == "[[0, 1, 2]]"


def test_ordinary_templates_render_unchanged() -> None:
    text = dedent("""\
        {% macro svc(n) %}[services.s{{ n }}]
        image = "{{ 'img-%02d' % n }}"
        {% endmacro %}
        {% for n in range(3) %}{{ svc(n) }}{% endfor %}
        [vars]
        s = "{{ 'ab' + 'cd' }}-{{ 'x' ~ 1 }}-{{ [1] + [2] }}-{{ 'hi' | center(6) }}"
        l = "{% for x in [1, 2, 3] %}{{ loop.index }}{% if not loop.last %},{% endif %}{% endfor %}"
        """)
    out = render_template(text)
    assert 'image = "img-02"' in out
    assert 's = "abcd-x1-[1, 2]-  hi  "' in out and 'l = "1,2,3"' in out


def test_render_limit_is_exit_two_with_the_location(tmp_path: Path) -> None:
    path = tmp_path / "huge.clnrm.toml"
    path.write_text('[meta]\nname = "{{ \'a\' | center(300000000) }}"\n')
    res = run_cli("validate", str(path), timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr + res.stdout
    assert f"{path}:2" in res.stdout and "render limit" in res.stdout


# -- deep nesting -----------------------------------------------------------------------


@pytest.mark.parametrize("depth", [301, 500, 1200, 5000])
@pytest.mark.parametrize("shape", ["array", "table"])
def test_deep_nesting_says_file_and_line(depth: int, shape: str) -> None:
    value = "[" * depth + "]" * depth if shape == "array" else "{a = " * depth + "1" + "}" * depth
    text = f'[meta]\nname = "deep"\n\n[vars]\nx = {value}\n'
    with pytest.raises(ScenarioError) as info:
        loads_scenario(text, source="deep.clnrm.toml")
    err = info.value
    assert str(err.file) == "deep.clnrm.toml" and err.line == 5, str(err)
    assert err.key_path and err.key_path.startswith("vars.x")
    assert "nested" in err.message


# -- host mounts ------------------------------------------------------------------------

MOUNT_FILE = """\
{opt_in}
[meta]
name = "mounts"

[services.app]
image = "clnrm/busybox:latest"
volumes = [
  "/srv/fixtures:/data:ro",
  {volume},
]

[[steps]]
name = "s"
command = ["true"]
service = "app"
"""


def mount_file(volume: str, opt_in: str = "") -> str:
    return MOUNT_FILE.format(volume=json.dumps(volume), opt_in=opt_in)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("/", "root folder"),
        ("/etc", "system folder /etc"),
        ("/etc/passwd", "inside the host's system folder /etc"),
        ("/proc/1/root", "/proc"),
        ("/sys", "/sys"),
        ("/var/run", "system folder"),
        ("/var", "contains the host's system folder /var/run"),
        ("/var/run/docker.sock", "engine's socket"),
        ("/run/docker.sock", "engine's socket"),
        ("/tmp/../etc/shadow", "/etc"),
        ("~/.ssh", "folder"),
    ],
)
def test_sensitive_host_mounts_are_refused_with_the_mount_and_why(host: str, why: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads_scenario(mount_file(f"{host}:/mnt"), source="m.clnrm.toml")
    err = info.value
    assert err.key_path == "services.app.volumes[1]" and err.line == 9
    assert repr(host) in err.message and why in err.message
    assert err.hint and "allow_host_mounts = true" in err.hint and "--allow-host-mounts" in err.hint


_segment = st.text(alphabet="abcxyz.-_", min_size=1, max_size=6).filter(
    lambda t: t not in (".", ".."))


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(_segment, max_size=4), root=st.sampled_from(SYSTEM_PATHS))
def test_anything_under_a_system_path_is_refused(parts: list[str], root: str) -> None:
    assert sensitive_reason("/".join([root, *parts])) is not None


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(_segment, min_size=1, max_size=4))
def test_paths_under_an_ordinary_folder_are_accepted(parts: list[str]) -> None:
    assert sensitive_reason("/".join(["/srv", *parts])) is None
    assert sensitive_reason("/".join(["/etcetera", *parts])) is None


def test_read_only_does_not_make_the_engine_socket_safe() -> None:
    with pytest.raises(ScenarioError) as info:
        loads_scenario(mount_file("/var/run/docker.sock:/var/run/docker.sock:ro"))
    assert "read_only does not help" in info.value.message


@pytest.mark.parametrize("host", ["/etcetera", "/srv/data", "/tmp/x", "/varnish", "named-volume"])
def test_ordinary_mounts_load(host: str) -> None:
    assert loads_scenario(mount_file(f"{host}:/mnt")).services["app"].volumes[1].host_path == host


def test_symlinks_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "innocent").symlink_to("/etc")
    (tmp_path / "engine.sock").symlink_to("/var/run/docker.sock")
    assert "/etc" in (sensitive_reason(str(tmp_path / "innocent" / "hosts")) or "")
    assert "engine's socket" in (sensitive_reason(str(tmp_path / "engine.sock")) or "")
    assert sensitive_reason(str(tmp_path)) is None


def test_socket_found_through_docker_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/engine")
    assert "engine's socket" in (sensitive_reason(f"{tmp_path}/engine") or "")


def test_file_key_and_context_opt_in() -> None:
    text = mount_file("/var/run/docker.sock:/var/run/docker.sock")
    assert loads_scenario(mount_file("/etc:/etc", opt_in="allow_host_mounts = true"))
    with allowing_host_mounts():
        assert loads_scenario(text).services["app"].volumes[1].host_path.endswith("docker.sock")
    with pytest.raises(ScenarioError):
        loads_scenario(text)


def test_cli_flag_opts_in_and_the_default_is_exit_two(tmp_path: Path) -> None:
    path = tmp_path / "m.clnrm.toml"
    path.write_text(mount_file("/etc:/host-etc"))
    res = run_cli("validate", str(path), timeout=120)
    assert res.returncode == 2 and f"{path}:9" in res.stdout and "'/etc'" in res.stdout
    res = run_cli("validate", "--allow-host-mounts", str(path), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


# -- secret redaction -------------------------------------------------------------------


@pytest.fixture
def no_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_only_secret_looking_names_are_masked(no_secrets: None) -> None:
    register_secret("PATH_PREFIX", "visible-value")
    register_secret("db_password", "hunter22")
    register_secret("API_TOKEN", "t0k")
    register_secret("SESSION_KEY", "x")  # too short to mask without destroying the report
    assert redact_text("visible-value hunter22 t0k x") == f"visible-value {MASK} {MASK} x"


SECRET = "s3cr3t-Value-9f1c"

RUN_FILE = """\
[meta]
name = "leak-{{ env(name="MY_TOKEN") }}"

[[steps]]
name = "uses-the-token"
command = ["sh", "-c", "test \\"$PASS_ON\\" = '{{ env(name="MY_TOKEN") }}' && echo got:$PASS_ON"]
env = { PASS_ON = "{{ env(name='MY_TOKEN') }}", API_PASSWORD = "pw-from-file-77" }
expected_output_regex = "got:"

[[steps]]
name = "fails-showing-it"
command = ["sh", "-c", "echo $API_PASSWORD; exit 3"]
env = { API_PASSWORD = "pw-from-file-77" }
continue_on_failure = true
"""


def test_secrets_appear_in_no_report_and_no_log(tmp_path: Path) -> None:
    path = tmp_path / "secret.clnrm.toml"
    path.write_text(RUN_FILE)
    reports = {ext: tmp_path / f"report.{ext}" for ext in ("json", "xml", "html")}
    res = run_cli("-vv", "run", "--backend", "local", str(path),
                  "--artifacts", str(tmp_path / "runs"),
                  "--report-json", str(reports["json"]), "--report-junit", str(reports["xml"]),
                  "--report-html", str(reports["html"]),
                  env={"MY_TOKEN": SECRET}, timeout=240)
    texts = {name: p.read_text() for name, p in reports.items()}
    texts["stdout"], texts["stderr"] = res.stdout, res.stderr
    json_res = run_cli("run", "--backend", "local", "--format", "json", str(path),
                       "--artifacts", str(tmp_path / "runs"), env={"MY_TOKEN": SECRET},
                       timeout=240)
    texts["json-stdout"] = json_res.stdout
    for name, text in texts.items():
        assert SECRET not in text, name
        assert "pw-from-file-77" not in text, name
    data = json.loads(texts["json"])
    [test] = data["tests"]
    assert test["name"] == f"leak-{MASK}"
    first, second = test["steps"][:2]
    # the process received the real value: the comparison inside it held
    assert first["exit_code"] == 0 and f"got:{MASK}" in first["stdout"]
    assert second["exit_code"] == 3 and MASK in second["stdout"]
    assert "test.done" in res.stderr and f"leak-{MASK}" in res.stderr  # the log line is masked


def test_load_errors_quoting_a_secret_mask_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.clnrm.toml"
    path.write_text('[meta]\nname = "x"\n[[steps]]\nname = "s"\ncommand = ["true"]\n'
                    "timeout = \"{{ env(name='MY_TOKEN') }}\"\n")
    for fmt in ("human", "json"):
        res = run_cli("validate", "--format", fmt, str(path), env={"MY_TOKEN": SECRET},
                      timeout=120)
        assert res.returncode == 2 and "not a duration" in res.stdout
        assert SECRET not in res.stdout + res.stderr and MASK in res.stdout
