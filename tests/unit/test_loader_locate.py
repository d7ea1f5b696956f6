"""The line index behind located errors, and duration parsing."""

from __future__ import annotations

import pytest

from clnrm.scenario import parse_duration
from clnrm.scenario.locate import LineIndex, format_key_path

DOC = '''\
# comment [not.a.table]
title = "x"   # trailing comment

[meta]
name = "n"
"quoted.key" = 1
a.b.c = true

[[steps]]
name = "one"
command = ["sh", "-c", """
multi-line = "not a key"
[not.a.table]
"""]

[[steps]]
name = "two"
env = { A = "1", B = { C = 2 } }

[services.db]
ports = [
  5432,
  "8080:80",
]

[[scenario]]
name = "s"
[[scenario.steps]]
name = "inner"
[scenario.artifacts]
collect = ["spans"]

[[scenario]]
name = "t"
[[scenario.steps]]
name = "first of second"
[[scenario.steps]]
name = "second of second"

[otel]
resources = {
  "service.name" = "clnrm",
}
when = 1979-05-27 07:32:00Z
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("title",), 2),
        (("meta",), 4),
        (("meta", "name"), 5),
        (("meta", "quoted.key"), 6),
        (("meta", "a", "b", "c"), 7),
        (("steps", 0), 9),
        (("steps", 0, "command", 2), 11),
        (("steps", 1, "name"), 17),
        (("steps", 1, "env", "B", "C"), 18),
        (("services", "db", "ports", 1), 23),
        (("scenario", 0, "steps", 0, "name"), 29),
        (("scenario", 0, "artifacts", "collect"), 31),
        (("scenario", 1, "steps", 1, "name"), 38),
        (("otel", "resources", "service.name"), 42),
        (("otel", "when"), 44),
    ],
)
def test_line_index_finds_keys_tables_and_array_elements(
    path: tuple[str | int, ...], line: int
) -> None:
    assert LineIndex(DOC).exact(path) == line


def test_lookup_falls_back_to_the_nearest_parent() -> None:
    index = LineIndex(DOC)
    assert index.exact(("meta", "missing")) is None
    assert index.line_of(("meta", "missing")) == 4
    assert index.line_of(("steps", 1, "env", "Z")) == 18
    assert index.line_of(("nowhere",)) is None


def test_text_inside_multiline_strings_is_not_indexed() -> None:
    index = LineIndex(DOC)
    assert index.exact(("not",)) is None
    assert index.exact(("steps", 0, "multi-line")) is None


@pytest.mark.parametrize(
    "text", ["[[[", "a = [1, 2", 'x = "unterminated', "= 1", "[a]\nb = {", "\x00", ""]
)
def test_line_index_never_raises_on_broken_text(text: str) -> None:
    LineIndex(text).line_of(("a", "b"))


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    LineIndex("a = " + "[" * 5000 + "]" * 5000)


def test_key_paths_are_formatted_like_the_error_messages() -> None:
    assert format_key_path(("expect", "span", 0, "kind")) == "expect.span[0].kind"
    assert (
        format_key_path(("expect", "counts", "by_name", "clnrm.run", "eq"))
        == 'expect.counts.by_name."clnrm.run".eq'
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("90s", 90.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        (" 10 s ", 10.0),
        ("45", 45.0),
        ("0", 0.0),
    ],
)
def test_durations_accept_numbers_and_unit_strings(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "soon", "5 parsecs", "-3s", -1, True, "nan", "inf", [30], "9" * 100]
)
def test_durations_reject_everything_else(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
