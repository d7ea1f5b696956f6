"""Builders shared by the validator tests (no tests here).

Spans are built with the real dataclass, times in milliseconds for
readability; expectations with ``Expect.model_validate`` in the TOML shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clnrm.otel.span import AttrValue, Span, SpanEvent
from clnrm.results import ValidationResult, ValidationStatus
from clnrm.scenario.expect import Expect
from clnrm.validators import validate

MS = 1_000_000


def mk(
    name: str,
    span_id: str,
    parent: str | None = None,
    *,
    trace: str = "t1",
    start: float | None = 0,
    end: float | None = 1,
    kind: str = "internal",
    status: str = "UNSET",
    attrs: dict[str, AttrValue] | None = None,
    events: Sequence[str] = (),
    resource: dict[str, AttrValue] | None = None,
) -> Span:
    """A span; ``start``/``end`` in ms (``None`` = missing timestamp)."""
    return Span(
        name=name,
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        start_time_unix_nano=None if start is None else int(start * MS),
        end_time_unix_nano=None if end is None else int(end * MS),
        kind=kind,
        status=status,
        attributes=dict(attrs or {}),
        events=[SpanEvent(e) for e in events],
        resource=dict(resource or {}),
    )


def expect(**tables: Any) -> Expect:
    return Expect.model_validate(tables)


def run(spans: Sequence[Span], **tables: Any) -> list[ValidationResult]:
    return validate(expect(**tables), spans)


def only(spans: Sequence[Span], **tables: Any) -> ValidationResult:
    """The single result of an ``Expect`` holding exactly one rule."""
    results = run(spans, **tables)
    assert len(results) == 1, [r.expectation for r in results]
    return results[0]


def passed(result: ValidationResult) -> bool:
    assert result.status in (ValidationStatus.PASS, ValidationStatus.FAIL), result
    return result.status is ValidationStatus.PASS


def assert_pass(result: ValidationResult) -> None:
    assert result.status is ValidationStatus.PASS, result.message


def assert_fail(result: ValidationResult, *seen: str) -> None:
    """FAIL, and each fragment appears in ``seen``."""
    assert result.status is ValidationStatus.FAIL, result
    for fragment in seen:
        assert fragment in result.seen, (fragment, result.seen)
