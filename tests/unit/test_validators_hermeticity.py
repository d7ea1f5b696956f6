"""``[expect.hermeticity]``: no external services, resources match, forbidden keys."""

from __future__ import annotations

import pytest

from clnrm.validators import EXTERNAL_SERVICE_KEYS
from tests.unit.test_validators_support import assert_fail, assert_pass, mk, only, run

RES = {"service.name": "api", "sandboxed": True}


def test_no_external_services_passes_without_network_attributes() -> None:
    spans = [mk("a", "1", attrs={"db.system": "postgresql"}), mk("b", "2")]
    result = only(spans, hermeticity={"no_external_services": True})
    assert_pass(result)
    assert result.expectation == "hermeticity no_external_services"
    assert result.seen == "none of 2 spans has one"
    assert result.declared_at == "expect.hermeticity.no_external_services"


@pytest.mark.parametrize("key", EXTERNAL_SERVICE_KEYS)
def test_no_external_services_fails_on_each_upstream_attribute(key: str) -> None:
    spans = [mk("ok", "1"), mk("call", "2", attrs={key: "example.com"})]
    result = only(spans, hermeticity={"no_external_services": True})
    assert_fail(result, f"1 span named: call (1); e.g. span 2 has {key}='example.com'")


def test_no_external_services_false_asks_nothing() -> None:
    assert run([mk("a", "1", attrs={"http.url": "x"})],
               hermeticity={"no_external_services": False}) == []


def test_resource_must_match_on_every_span_passes() -> None:
    spans = [mk("a", "1", resource=RES), mk("b", "2", resource=dict(RES))]
    result = only(spans, hermeticity={"resource_attrs": {"must_match": {"service.name": "api"}}})
    assert_pass(result)
    assert result.expectation == "hermeticity resource_attrs.must_match service.name"
    assert result.expected == "every span's resource with service.name='api'"
    assert result.seen == "all 2 spans match"
    assert result.declared_at == 'expect.hermeticity.resource_attrs.must_match."service.name"'


def test_resource_mismatch_on_a_later_span_fails() -> None:
    """Upstream looked at the first span's resource only."""
    spans = [mk("a", "1", resource=RES), mk("b", "2", resource={"service.name": "intruder"}),
             mk("c", "3")]
    result = only(spans, hermeticity={"resource_attrs": {"must_match": {"service.name": "api"}}})
    assert_fail(result)
    assert result.seen == "2 of 3 spans have service.name: '<missing>' (1), 'intruder' (1)"


def test_resource_values_compare_as_text() -> None:
    spans = [mk("a", "1", resource=RES)]
    assert_pass(only(spans, hermeticity={"resource_attrs": {"must_match": {"sandboxed": True}}}))


def test_resource_must_match_with_no_spans_fails() -> None:
    assert_fail(only([], hermeticity={"resource_attrs": {"must_match": {"service.name": "api"}}}),
                "no spans to judge")


def test_upstream_flat_aliases_are_judged_like_the_nested_tables() -> None:
    spans = [mk("a", "1", resource=RES, attrs={"secret": "x"})]
    results = run(spans, hermeticity={"resource_attrs_must_match": {"service.name": "api"},
                                      "span_attrs_forbid_keys": ["secret"]})
    assert [(r.expectation, r.status.value) for r in results] == [
        ("hermeticity resource_attrs.must_match service.name", "pass"),
        ("hermeticity span_attrs.forbid_keys secret", "fail"),
    ]


def test_forbidden_key_absent_passes() -> None:
    result = only([mk("a", "1", attrs={"user": "x"})],
                  hermeticity={"span_attrs": {"forbid_keys": ["password"]}})
    assert_pass(result)
    assert result.expectation == "hermeticity span_attrs.forbid_keys password"
    assert result.expected == "no span with attribute password"
    assert result.seen == "none of 1 span has it"
    assert result.declared_at == "expect.hermeticity.span_attrs.forbid_keys"


def test_forbidden_key_present_fails_one_result_per_key() -> None:
    spans = [mk("login", "1", attrs={"password": "hunter2"}), mk("login", "2"),
             mk("signup", "3", attrs={"password": "x", "token": "t"})]
    results = run(spans, hermeticity={"span_attrs": {"forbid_keys": ["password", "token", "pin"]}})
    assert [r.status.value for r in results] == ["fail", "fail", "pass"]
    assert results[0].seen == "2 spans named: login (1), signup (1); e.g. span 1"
    assert results[1].seen == "1 span named: signup (1); e.g. span 3"
