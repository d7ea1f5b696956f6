"""``[expect.status]``: ``all`` and ``by_name`` globs, read from ``Span.status``."""

from __future__ import annotations

from tests.unit.test_validators_support import assert_fail, assert_pass, mk, only, run

SPANS = [
    mk("api.request", "1", status="OK"),
    mk("db.query", "2", status="OK"),
    mk("db.query", "3", status="ERROR"),
    mk("cache.get", "4", status="UNSET"),
]


def test_all_ok_passes() -> None:
    spans = [mk("a", "1", status="OK"), mk("b", "2", status="OK")]
    result = only(spans, status={"all": "ok"})
    assert_pass(result)
    assert result.expectation == "status all"
    assert result.expected == "every span with status OK"
    assert result.seen == "2 spans, all OK"
    assert result.declared_at == "expect.status.all"


def test_all_fails_listing_offenders_by_name_and_status() -> None:
    result = only(SPANS, status={"all": "OK"})
    assert_fail(result)
    assert result.seen == "2 of 4 spans not OK: cache.get UNSET (1), db.query ERROR (1)"


def test_all_with_no_spans_fails() -> None:
    assert_fail(only([], status={"all": "OK"}), "no spans to judge")


def test_status_comes_from_the_span_field_not_attributes() -> None:
    span = mk("a", "1", status="OK", attrs={"otel.status_code": "ERROR"})
    assert_pass(only([span], status={"all": "OK"}))


def test_by_name_glob_passes() -> None:
    result = only(SPANS, status={"by_name": {"api.*": "OK"}})
    assert_pass(result)
    assert result.expectation == "status by_name 'api.*'"
    assert result.expected == "every span named 'api.*' with status OK"
    assert result.seen == "1 span, all OK"
    assert result.declared_at == 'expect.status.by_name."api.*"'


def test_by_name_fails_when_one_matching_span_differs() -> None:
    result = only(SPANS, status={"by_name": {"db.*": "OK"}})
    assert_fail(result)
    assert result.seen == "1 of 2 spans not OK: db.query ERROR (1)"


def test_by_name_pattern_matching_nothing_fails() -> None:
    result = only(SPANS, status={"by_name": {"queue.*": "OK"}})
    assert_fail(result, "no span named 'queue.*'; 4 spans named: db.query (2)")


def test_all_then_each_pattern_in_order() -> None:
    results = run(SPANS, status={"by_name": {"db.query": "ERROR", "cache.*": "UNSET"},
                                 "all": "UNSET"})
    assert [(r.expectation, r.status.value) for r in results] == [
        ("status all", "fail"),
        ("status by_name 'db.query'", "fail"),
        ("status by_name 'cache.*'", "pass"),
    ]
