"""``[expect.hermeticity]``: nothing left the sandbox, and spans came from it.

Upstream semantics (``validation/hermeticity_validator.rs``): with
``no_external_services = true`` any span carrying one of the network
attributes below fails; ``span_attrs.forbid_keys`` fails if any span has a
listed key; ``resource_attrs.must_match`` compares resource attributes as
text and fails with no spans at all.  Deviations:

- **resource_attrs.must_match is checked on every span's resource**;
  upstream looked at the first span only, so a stray span from a process
  outside the test passed unnoticed;
- resource and span values compare as text the way ``[[expect.span]]``
  attrs do (``true`` matches ``True``);
- one result per rule and per key (upstream folded all violations into one
  error), so a report says exactly which key failed and where it is written;
- ``no_external_services = false`` asks nothing and yields no result.

Each rule is one pass over the spans using set operations on the attribute
keys (C speed), not a Python loop per key.
"""

from __future__ import annotations

from typing import Final

from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect
from clnrm.validators._text import attr_matches, attr_text, listing, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex

EXTERNAL_SERVICE_KEYS: Final = (
    "net.peer.name",
    "net.peer.ip",
    "net.peer.port",
    "http.host",
    "http.url",
    "db.connection_string",
    "rpc.service",
    "messaging.destination",
    "messaging.url",
)
"""Span attributes upstream treats as evidence of a call to an outside service."""

_HERMETICITY: Final = ("expect", "hermeticity")


def spans_with_keys(index: SpanIndex, keys: frozenset[str]) -> list[Span]:
    """Spans carrying any of ``keys``; no scan at all when no span has one."""
    if keys.isdisjoint(index.attribute_keys):
        return []
    # isdisjoint iterates the (small) attribute dict and probes the set: C speed.
    return [span for span in index.spans if not keys.isdisjoint(span.attributes)]


class HermeticityValidator:
    """``no_external_services``, each ``must_match`` key, then each forbidden key."""

    name = "hermeticity"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        rule = expect.hermeticity
        if rule is None:
            return []
        results: list[ValidationResult] = []
        if rule.no_external_services:
            results.append(self._no_external(index, where))
        if rule.resource_attrs:
            for key, want in rule.resource_attrs.must_match.items():
                results.append(self._resource(key, want, index, where))
        if rule.span_attrs and rule.span_attrs.forbid_keys:
            results += self._forbidden(rule.span_attrs.forbid_keys, index, where)
        return results

    def _no_external(self, index: SpanIndex, where: Declarations) -> ValidationResult:
        expectation = "hermeticity no_external_services"
        expected = "no span with an external-service attribute (" + ", ".join(
            EXTERNAL_SERVICE_KEYS[:3]) + ", ...)"
        declared_at = where.at((*_HERMETICITY, "no_external_services"))
        keys = frozenset(EXTERNAL_SERVICE_KEYS)
        hits = spans_with_keys(index, keys)
        if not hits:
            return verdict(self.name, expectation, True, expected=expected, declared_at=declared_at,
                           seen=f"none of {plural(len(index), 'span')} has one")
        first = hits[0]
        found = sorted(keys.intersection(first.attributes))
        example = ", ".join(f"{k}={quoted(attr_text(first.attributes[k]) or '')}" for k in found)
        by_name: dict[str, int] = {}
        for span in hits:
            by_name[span.name] = by_name.get(span.name, 0) + 1
        seen = f"{name_counts(by_name)}; e.g. span {first.span_id} has {example}"
        return verdict(self.name, expectation, False, expected=expected, seen=seen,
                       declared_at=declared_at)

    def _resource(
        self, key: str, want: str, index: SpanIndex, where: Declarations
    ) -> ValidationResult:
        expectation = f"hermeticity resource_attrs.must_match {key}"
        expected = f"every span's resource with {key}={quoted(want)}"
        declared_at = where.at((*_HERMETICITY, "resource_attrs", "must_match", key),
                               (*_HERMETICITY, "resource_attrs_must_match", key))
        if not len(index):
            return verdict(self.name, expectation, False, expected=expected,
                           seen="no spans to judge", declared_at=declared_at)
        wrong: dict[str, int] = {}
        # Spans of one OTLP resource block usually share its dict and sit together:
        # judge a resource once per run of spans carrying it, without a memo that
        # would grow to a million entries when every span has its own copy.
        last: object = None
        ok = True
        for span in index.spans:
            resource = span.resource
            if resource is not last:
                last, ok = resource, attr_matches(resource.get(key), want)
            if not ok:
                label = quoted(attr_text(resource.get(key)) or "<missing>")
                wrong[label] = wrong.get(label, 0) + 1
        if not wrong:
            return verdict(self.name, expectation, True, expected=expected, declared_at=declared_at,
                           seen=f"all {plural(len(index), 'span')} match")
        bad = sum(wrong.values())
        seen = f"{bad} of {plural(len(index), 'span')} have {key}: {listing(wrong)}"
        return verdict(self.name, expectation, False, expected=expected, seen=seen,
                       declared_at=declared_at)

    def _forbidden(
        self, keys: list[str], index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        hits = spans_with_keys(index, frozenset(keys))
        results = []
        for key in dict.fromkeys(keys):
            carriers = [span for span in hits if key in span.attributes]
            expectation = f"hermeticity span_attrs.forbid_keys {key}"
            expected = f"no span with attribute {key}"
            declared_at = where.at((*_HERMETICITY, "span_attrs", "forbid_keys"),
                                   (*_HERMETICITY, "span_attrs_forbid_keys"))
            if not carriers:
                seen = f"none of {plural(len(index), 'span')} has it"
            else:
                by_name: dict[str, int] = {}
                for span in carriers:
                    by_name[span.name] = by_name.get(span.name, 0) + 1
                seen = f"{name_counts(by_name)}; e.g. span {carriers[0].span_id}"
            results.append(verdict(self.name, expectation, not carriers, expected=expected,
                                   seen=seen, declared_at=declared_at))
        return results
