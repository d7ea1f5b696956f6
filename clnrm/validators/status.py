"""``[expect.status]``: the status code every span, or every span of a name, must carry.

Upstream semantics (``validation/status_validator.rs``): ``all`` applies to
every span, ``by_name`` keys are glob patterns and a pattern matching no span
fails.  Deviations:

- the status is ``Span.status`` (the OTLP status field; parsers fall back to
  upstream's ``otel.status_code``/``status`` attributes only for sources
  without one), where upstream read the attributes only;
- ``all`` with no spans at all fails ("no spans to judge") instead of
  passing vacuously: a test that expects statuses and exported nothing has
  not shown anything.

Both rules are answered from per-name status tallies built once by
:class:`SpanIndex`, so they cost one pass however many patterns there are.
"""

from __future__ import annotations

from collections.abc import Iterable

from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect
from clnrm.validators._text import listing, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex


def _offenders(
    index: SpanIndex, names: Iterable[str], want: str
) -> tuple[int, int, dict[str, int]]:
    """(spans judged, spans with another status, ``"name STATUS"`` -> count)."""
    total = wrong = 0
    by_label: dict[str, int] = {}
    for name in names:
        for status, count in index.status_counts[name].items():
            total += count
            if status != want:
                wrong += count
                by_label[f"{name} {status}"] = count
    return total, wrong, by_label


class StatusValidator:
    """``all`` first, then one result per ``by_name`` pattern."""

    name = "status"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        rule = expect.status
        if rule is None:
            return []
        results: list[ValidationResult] = []
        if rule.all is not None:
            results.append(self._judge(
                "status all", f"every span with status {rule.all}", list(index.by_name),
                rule.all, index, where.at(("expect", "status", "all")), pattern=None,
            ))
        for pattern, want in rule.by_name.items():
            results.append(self._judge(
                f"status by_name {quoted(pattern)}",
                f"every span named {quoted(pattern)} with status {want}",
                index.names_matching(pattern), want, index,
                where.at(("expect", "status", "by_name", pattern)), pattern=pattern,
            ))
        return results

    def _judge(
        self,
        expectation: str,
        expected: str,
        names: list[str],
        want: str,
        index: SpanIndex,
        declared_at: str,
        *,
        pattern: str | None,
    ) -> ValidationResult:
        total, wrong, by_label = _offenders(index, names, want)
        if not total:
            seen = ("no spans to judge" if pattern is None else
                    f"no span named {quoted(pattern)}; {name_counts(index.name_counts)}")
            return verdict(self.name, expectation, False, expected=expected, seen=seen,
                           declared_at=declared_at)
        if wrong:
            seen = f"{wrong} of {plural(total, 'span')} not {want}: {listing(by_label)}"
            return verdict(self.name, expectation, False, expected=expected, seen=seen,
                           declared_at=declared_at)
        return verdict(self.name, expectation, True, expected=expected,
                       seen=f"{plural(total, 'span')}, all {want}", declared_at=declared_at)
