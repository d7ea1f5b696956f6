"""``clnrm.validators``: the public call, where results point, the shared index."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest
import tomli
from hypothesis import given
from hypothesis import strategies as st

import clnrm.validators as validators
from clnrm.results import ValidationResult, ValidationStatus
from clnrm.scenario.expect import Expect
from clnrm.validators import (
    BUILTIN_VALIDATORS,
    Declarations,
    SpanIndex,
    SpanValidator,
    ValidationTally,
    summarize,
    validate,
)
from clnrm.validators._text import attr_matches, attr_text
from tests.unit.test_validators_support import mk

TOML = dedent('''\
    [meta]
    name = "checkout"
    version = "1"

    [expect.counts]
    spans_total = { gte = 1 }
    by_name = { "db.query" = { eq = 5 } }

    [[expect.span]]
    name = "api.request"
    kind = "server"

    [[expect.span]]
    name = "db.query"
    parent = "api.request"

    [expect.graph]
    must_include = [
      ["api.request", "db.query"],
      ["db.query", "api.request"],
    ]

    [expect.order]
    must_precede = [["api.request", "db.query"]]

    [[expect.window]]
    outer = "api.request"
    contains = ["db.query"]

    [expect.status]
    all = "OK"

    [expect.hermeticity]
    no_external_services = true
    resource_attrs.must_match = { "service.name" = "api" }
    span_attrs_forbid_keys = ["password"]
    ''')

SPANS = [
    mk("api.request", "1", kind="server", status="OK", start=0, end=100,
       resource={"service.name": "api"}),
    mk("db.query", "2", "1", status="OK", start=10, end=20, resource={"service.name": "api"}),
]


def _expect(text: str = TOML) -> Expect:
    return Expect.model_validate(tomli.loads(text)["expect"])


@pytest.fixture
def toml_file(tmp_path: Path) -> Path:
    path = tmp_path / "checkout.clnrm.toml"
    path.write_text(TOML)
    return path


def test_declared_at_is_file_line_and_key_and_results_follow_the_file(toml_file: Path) -> None:
    results = validate(_expect(), SPANS, source=toml_file)
    at = [(r.declared_at or "").replace(str(toml_file), "F") for r in results]
    assert at == [
        "F:6 [expect.counts.spans_total]",
        'F:7 [expect.counts.by_name."db.query"]',
        "F:9 [expect.span[0]]",
        "F:13 [expect.span[1]]",
        "F:19 [expect.graph.must_include[0]]",
        "F:20 [expect.graph.must_include[1]]",
        "F:24 [expect.order.must_precede[0]]",
        "F:26 [expect.window[0]]",
        "F:31 [expect.status.all]",
        "F:34 [expect.hermeticity.no_external_services]",
        'F:35 [expect.hermeticity.resource_attrs.must_match."service.name"]',
        "F:36 [expect.hermeticity.span_attrs_forbid_keys]",
    ]
    failed = [r.expectation for r in results if r.status is ValidationStatus.FAIL]
    assert failed == ["counts by_name 'db.query'", "graph must_include db.query -> api.request",
                      "order must_precede api.request -> db.query"]


def test_without_source_results_come_in_validator_order_with_key_paths() -> None:
    results = validate(_expect(), SPANS)
    assert [r.validator for r in results] == [
        "span", "span", "graph", "graph", "counts", "counts", "window", "order", "status",
        "hermeticity", "hermeticity", "hermeticity",
    ]
    assert results[0].declared_at == "expect.span[0]"


def test_edited_file_is_re_indexed(toml_file: Path) -> None:
    validate(_expect(), SPANS, source=toml_file)
    toml_file.write_text("# a new first line\n" + TOML)
    os.utime(toml_file, ns=(1, 1))  # mtime alone may not tick within the test
    first = validate(_expect(), SPANS, source=toml_file)[0]
    assert first.declared_at == f"{toml_file}:7 [expect.counts.spans_total]"


def test_unreadable_source_degrades_to_file_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    result = validate(_expect(), SPANS, source=missing)[0]
    assert result.declared_at == f"{missing} [expect.span[0]]"


def test_line_falls_back_to_the_nearest_parent_key() -> None:
    where = Declarations(None)
    assert where.at(("expect", "span", 3)) == "expect.span[3]"


def test_a_raising_validator_becomes_an_error_result_and_the_others_still_run() -> None:
    class Broken:
        name = "broken"

        def validate(self, expect: Expect, index: SpanIndex,
                     where: Declarations) -> list[ValidationResult]:
            raise KeyError("boom")

    results = validate(_expect(), SPANS, validators=[Broken(), *BUILTIN_VALIDATORS])
    assert results[0].status is ValidationStatus.ERROR
    assert results[0].message == "broken validator raised KeyError: 'boom'"
    assert results[0].declared_at == "expect.broken"
    assert len(results) == 13


def test_summarize_counts_each_status() -> None:
    tally = summarize(validate(_expect(), SPANS))
    assert tally == ValidationTally(passed=9, failed=3, errors=0, skipped=0)
    assert not tally.ok
    assert summarize([]).ok


def test_every_builtin_meets_the_protocol_under_a_unique_name() -> None:
    names = [v.name for v in BUILTIN_VALIDATORS]
    assert names == ["span", "graph", "counts", "window", "order", "status", "hermeticity"]
    assert all(isinstance(v, SpanValidator) for v in BUILTIN_VALIDATORS)


def test_empty_expect_yields_no_results() -> None:
    assert validate(Expect(), SPANS) == []


def test_a_prebuilt_index_can_be_shared_between_calls() -> None:
    index = SpanIndex(SPANS)
    assert validate(_expect(), index) == validate(_expect(), SPANS)


def test_public_names_are_sorted_and_importable() -> None:
    assert validators.__all__ == sorted(validators.__all__)
    for name in validators.__all__:
        assert getattr(validators, name) is not None


def test_index_links_parents_within_their_own_trace() -> None:
    spans = [mk("a", "1", trace="t1"), mk("b", "2", "1", trace="t1"),
             mk("c", "1", trace="t2"), mk("d", "2", "1", trace="t2")]
    index = SpanIndex(spans)
    assert index.parent_of(spans[1]) is spans[0]
    assert index.parent_of(spans[3]) is spans[2]
    assert index.parent_of(spans[0]) is None


def test_index_names_match_literally_or_as_globs() -> None:
    index = SpanIndex([mk("GET /u/[id]", "1"), mk("GET /u/i", "2"), mk("db", "3")])
    assert index.names_matching("GET /u/[id]") == ["GET /u/[id]", "GET /u/i"]
    assert index.names_matching("db") == ["db"]
    assert index.names_matching("nope") == []
    assert index.count_named("GET*") == 2


@given(st.integers(-10**12, 10**12))
def test_integers_match_their_decimal_text(value: int) -> None:
    assert attr_matches(value, str(value))
    assert not attr_matches(value, str(value + 1))


@given(st.booleans())
def test_booleans_match_toml_spelling_only(value: bool) -> None:
    assert attr_text(value) == str(value).lower()
    assert attr_matches(value, str(value).lower())
    assert not attr_matches(value, str(value))
    assert not attr_matches(value, "1" if value else "0")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_match_their_python_text_and_equal_numbers(value: float) -> None:
    assert attr_matches(value, str(value))
    if value.is_integer() and abs(value) < 2**53:
        assert attr_matches(value, str(int(value)))
