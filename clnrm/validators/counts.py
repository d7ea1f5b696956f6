"""``[expect.counts]``: how many spans, errors and events a run produced.

Upstream semantics (``validation/count_validator.rs``): ``eq`` wins over
``gte``/``lte``, otherwise both apply, bounds inclusive.  Deviations:

- **errors_total** counts spans whose ``Span.status`` is ERROR (the OTLP
  field; parsers already apply upstream's ``otel.status_code`` fallback) or
  that carry ``error = true``; upstream read the attributes only.
- **events_total** counts each span's events list, or its ``event.count``
  attribute when that is larger (upstream summed ``event.count`` alone and
  ignored real events; taking the larger of the two never counts twice).
- **by_name** keys may be globs, as in ``[expect.status]``; a literal name
  always matches itself.
- A bound table with none of ``eq``/``gte``/``lte`` yields SKIP, not PASS.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from clnrm.results import ValidationResult, ValidationStatus
from clnrm.scenario.expect import CountBound, Expect
from clnrm.validators._text import (
    bound_holds,
    bound_text,
    listing,
    name_counts,
    plural,
    quoted,
)
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex


def _is_empty(bound: CountBound) -> bool:
    return bound.eq is None and bound.gte is None and bound.lte is None


class CountsValidator:
    """``spans_total``, ``events_total``, ``errors_total``, then each ``by_name`` entry."""

    name = "counts"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        counts = expect.counts
        if counts is None:
            return []
        totals: list[tuple[str, CountBound | None, Callable[[], tuple[int, str]]]] = [
            ("spans_total", counts.spans_total, lambda: self._spans(index)),
            ("events_total", counts.events_total, lambda: self._events(index)),
            ("errors_total", counts.errors_total, lambda: self._errors(index)),
        ]
        results: list[ValidationResult] = []
        for key, bound, measure in totals:
            if bound is not None:
                results.append(
                    self._judge(f"counts {key}", key.replace("_total", ""), bound, measure,
                                where.at(("expect", "counts", key)))
                )
        for name, bound in counts.by_name.items():
            results.append(
                self._judge(f"counts by_name {quoted(name)}", f"spans named {quoted(name)}", bound,
                            partial(self._named, index, name),
                            where.at(("expect", "counts", "by_name", name)))
            )
        return results

    def _judge(
        self,
        expectation: str,
        what: str,
        bound: CountBound,
        measure: Callable[[], tuple[int, str]],
        declared_at: str,
    ) -> ValidationResult:
        if _is_empty(bound):
            return ValidationResult(
                validator=self.name, expectation=expectation, status=ValidationStatus.SKIP,
                message=f"{expectation}: no bound given (eq, gte or lte)",
                expected="any number", seen="", declared_at=declared_at,
            )
        value, seen = measure()
        return verdict(self.name, expectation, bound_holds(bound, value),
                       expected=f"{what}: {bound_text(bound)}", seen=seen, declared_at=declared_at)

    @staticmethod
    def _spans(index: SpanIndex) -> tuple[int, str]:
        return len(index), name_counts(index.name_counts)

    @staticmethod
    def _events(index: SpanIndex) -> tuple[int, str]:
        by_name = index.event_counts
        total = sum(by_name.values())
        if not total:
            return 0, f"no events on {plural(len(index), 'span')}"
        return total, f"{plural(total, 'event')} on spans named: {listing(by_name)}"

    @staticmethod
    def _errors(index: SpanIndex) -> tuple[int, str]:
        by_name = index.error_counts
        total = sum(by_name.values())
        if not total:
            return 0, f"no error spans among {plural(len(index), 'span')}"
        return total, name_counts(by_name, noun="error span")

    @staticmethod
    def _named(index: SpanIndex, pattern: str) -> tuple[int, str]:
        names = index.names_matching(pattern)
        total = index.count_named(pattern)
        if not total:
            return 0, f"no span named {quoted(pattern)}; {name_counts(index.name_counts)}"
        if names == [pattern]:
            return total, f"{plural(total, 'span')} named {quoted(pattern)}"
        return total, name_counts(index.counts_of(names))
