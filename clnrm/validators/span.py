"""``[[expect.span]]``: a span with this name exists and looks like this.

Upstream semantics (``validation/span_validator.rs``) with these deviations:

- **Some span must satisfy every constraint.** Upstream checked only the
  first span of that name, so a passing test could depend on export order;
  here any span of the name may be the one, and when none is, the result
  names the closest candidates and what each got wrong.
- **``name`` and ``parent`` may be globs** (``fnmatch``, case-sensitive); a
  literal name always matches itself even if it contains ``[``.
- **Attributes compare as text**, the way the loader stores ``attrs``:
  ``true`` matches the boolean ``True``, ``200`` the integer 200, ``2``
  the float ``2.0``; a list matches its JSON or comma-joined text.
  Upstream matched JSON strings only.
- **Missing timestamps fail a ``duration_ms`` bound** with a message saying
  so; upstream passed silently.
- **``status``** (ours, not upstream's) is read from ``Span.status``.
- **``self_ms``** (ours) bounds the span's self time: its duration minus the union of
  its children's intervals, each clipped to the span, so overlapping (concurrent)
  children count once and an async child outliving the span counts only up to its
  end.  ``clnrm.perf.critical_path`` attributes time on the *critical path*, which
  skips a child overlapped by a later-ending sibling and so is not this figure.
- ``parent`` resolves within the span's trace (see :class:`SpanIndex`).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Final, TypeAlias

from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect, SpanExpectation
from clnrm.validators._text import attr_matches, attr_text, ms, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex

CLOSEST: Final = 3
"""Candidates described in a failure message."""

Check: TypeAlias = Callable[[Span], tuple[str, str] | None]
"""A constraint: ``None`` when the span satisfies it, else ``(label, what was wrong)``."""


def describe(exp: SpanExpectation) -> str:
    """The expectation in one sentence, for ``expected``."""
    parts: list[str] = []
    if exp.kind:
        parts.append(f"kind {exp.kind}")
    if exp.parent:
        parts.append(f"parent {quoted(exp.parent)}")
    if exp.status:
        parts.append(f"status {exp.status}")
    if exp.attrs and exp.attrs.all:
        parts.append("attrs " + ", ".join(f"{k}={quoted(v)}" for k, v in exp.attrs.all.items()))
    if exp.attrs and exp.attrs.any:
        pairs = ", ".join(f"{k}={quoted(v)}" for k, v in exp.attrs.any.items())
        parts.append(f"any of attrs {pairs}")
    if exp.events and exp.events.all:
        parts.append("events " + ", ".join(exp.events.all))
    if exp.events and exp.events.any:
        parts.append("any of events " + ", ".join(exp.events.any))
    if exp.duration_ms and (exp.duration_ms.min is not None or exp.duration_ms.max is not None):
        parts.append("duration " + _bounds(exp.duration_ms.min, exp.duration_ms.max))
    if exp.self_ms and (exp.self_ms.min is not None or exp.self_ms.max is not None):
        parts.append("self time " + _bounds(exp.self_ms.min, exp.self_ms.max))
    head = f"a span named {quoted(exp.name)}"
    return head + (" with " + "; ".join(parts) if parts else "")


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{ms(low)} to {ms(high)}"
    return f">= {ms(low)}" if low is not None else f"<= {ms(high or 0)}"


def _checks(exp: SpanExpectation, index: SpanIndex, *, why: bool = False) -> list[Check]:
    """One closure per constraint, cheapest first so a passing span is found fast.

    With ``why`` every failure says what was wrong (for :meth:`SpanShapeValidator._closest`);
    without, the parent check may answer a bare "no" and skip the full id lookup.
    """
    checks: list[Check] = []
    if exp.kind:
        kind = exp.kind
        checks.append(
            lambda s: None if s.kind == kind else ("kind", f"kind {s.kind} (want {kind})")
        )
    if exp.status:
        status = exp.status
        checks.append(
            lambda s: None
            if s.status == status
            else ("status", f"status {s.status} (want {status})")
        )
    if exp.attrs:
        for key, want in exp.attrs.all.items():
            checks.append(_attr_check(key, want))
        if exp.attrs.any:
            checks.append(_any_attr_check(exp.attrs.any))
    if exp.events:
        if exp.events.all:
            checks.append(_events_all_check(exp.events.all))
        if exp.events.any:
            checks.append(_events_any_check(exp.events.any))
    bounds = exp.duration_ms
    if bounds and (bounds.min is not None or bounds.max is not None):
        checks.append(_duration_check(bounds.min, bounds.max))
    own = exp.self_ms
    if own and (own.min is not None or own.max is not None):
        checks.append(_self_check(own.min, own.max, index))
    if exp.parent:
        checks.append((_parent_problem if why else _parent_check)(exp.parent, index))
    return checks


def _attr_check(key: str, want: str) -> Check:
    def check(span: Span) -> tuple[str, str] | None:
        value = span.attributes.get(key)
        if attr_matches(value, want):
            return None
        if value is None:
            return f"attr {key}", f"no attribute {key} (want {quoted(want)})"
        return f"attr {key}", f"{key}={quoted(attr_text(value) or '')} (want {quoted(want)})"

    return check


def _any_attr_check(wanted: dict[str, str]) -> Check:
    pairs = list(wanted.items())

    def check(span: Span) -> tuple[str, str] | None:
        attrs = span.attributes
        if any(attr_matches(attrs.get(k), v) for k, v in pairs):
            return None
        return "attrs.any", "none of attrs.any matched (" + ", ".join(k for k, _ in pairs) + ")"

    return check


def _event_names(span: Span) -> str:
    return ", ".join(event.name for event in span.events[:5]) or "none"


def _events_all_check(wanted: list[str]) -> Check:
    def check(span: Span) -> tuple[str, str] | None:
        have = {event.name for event in span.events}
        missing = [name for name in wanted if name not in have]
        if not missing:
            return None
        return "events.all", f"missing events {', '.join(missing)} (span has: {_event_names(span)})"

    return check


def _events_any_check(wanted: list[str]) -> Check:
    def check(span: Span) -> tuple[str, str] | None:
        if any(event.name in wanted for event in span.events):
            return None
        return "events.any", f"none of events {', '.join(wanted)} (span has: {_event_names(span)})"

    return check


def _duration_check(low: float | None, high: float | None) -> Check:
    def check(span: Span) -> tuple[str, str] | None:
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if start is None or end is None:
            return "duration", "no duration: start or end timestamp missing"
        if end < start:
            return "duration", "no duration: end timestamp precedes start"
        took = (end - start) / 1e6
        if (low is None or took >= low) and (high is None or took <= high):
            return None
        return "duration", f"duration {ms(took)} (want {_bounds(low, high)})"

    return check


def self_time_ns(span: Span, children: Iterable[Span]) -> int | None:
    """The span's own time: its duration minus the union of its children's intervals.

    Each child is clipped to the span (an async child running past the span's end, or a
    skewed one starting before it, covers only the part inside); overlapping children
    count once; untimed children cover nothing.  ``None`` when the span itself has no
    usable timestamps.  The miner calls this too, so a mined bound and its check agree.
    """
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start is None or end is None or end < start:
        return None
    cuts: list[tuple[int, int]] = []
    for child in children:
        cs, ce = child.start_time_unix_nano, child.end_time_unix_nano
        if cs is None or ce is None:
            continue
        cs, ce = max(cs, start), min(ce, end)
        if ce > cs:
            cuts.append((cs, ce))
    covered, reach = 0, start
    for cs, ce in sorted(cuts):
        if ce > reach:
            covered += ce - max(cs, reach)
            reach = ce
    return end - start - covered


def _self_check(low: float | None, high: float | None, index: SpanIndex) -> Check:
    children: dict[tuple[str, str], list[Span]] | None = None

    def check(span: Span) -> tuple[str, str] | None:
        nonlocal children
        if children is None:  # built once, on the first span a self_ms bound judges
            children = defaultdict(list)
            for s in index.spans:
                if s.parent_span_id is not None:
                    children[(s.trace_id, s.parent_span_id)].append(s)
        own = self_time_ns(span, children.get((span.trace_id, span.span_id), ()))
        if own is None:
            return "self time", "no self time: start or end timestamp missing or reversed"
        took = own / 1e6
        if (low is None or took >= low) and (high is None or took <= high):
            return None
        return "self time", f"self time {ms(took)} (want {_bounds(low, high)})"

    return check


def _parent_check(pattern: str, index: SpanIndex) -> Check:
    def check(span: Span) -> tuple[str, str] | None:
        if index.parent_named(span, pattern) is not None:
            return None
        return _NO_PARENT  # the search only asks whether; _closest says why

    return check


_NO_PARENT: Final = ("parent", "")


def _parent_problem(pattern: str, index: SpanIndex) -> Check:
    """:func:`_parent_check` with the reason, which needs the full id lookup."""
    def check(span: Span) -> tuple[str, str] | None:
        if index.parent_named(span, pattern) is not None:
            return None
        parent = index.parent_of(span)
        if parent is not None:
            return "parent", f"parent {quoted(parent.name)} (want {quoted(pattern)})"
        if span.parent_span_id is None:
            return "parent", f"root span, no parent (want {quoted(pattern)})"
        return "parent", (f"parent id {span.parent_span_id} not among the spans "
                          f"(want {quoted(pattern)})")

    return check


def _first_failure(span: Span, checks: list[Check]) -> bool:
    return any(check(span) is not None for check in checks)


class SpanShapeValidator:
    """``[[expect.span]]`` entries, one result each."""

    name = "span"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        return [
            self.judge(exp, index, where.at(("expect", "span", i)))
            for i, exp in enumerate(expect.span)
        ]

    def judge(self, exp: SpanExpectation, index: SpanIndex, declared_at: str) -> ValidationResult:
        expectation = f"span {quoted(exp.name)}"
        expected = describe(exp)
        candidates = index.named(exp.name)
        if not candidates:
            return verdict(
                self.name, expectation, False, expected=expected, declared_at=declared_at,
                seen=f"no span named {quoted(exp.name)}; {name_counts(index.name_counts)}",
            )
        checks = _checks(exp, index)
        of_name = f"{plural(len(candidates), 'span')} named {quoted(exp.name)}"
        for span in candidates:
            if not _first_failure(span, checks):
                return verdict(
                    self.name, expectation, True, expected=expected, declared_at=declared_at,
                    seen=f"{of_name}; span {span.span_id} matches",
                )
        checks = _checks(exp, index, why=True)
        return self._closest(candidates, checks, expectation, expected, of_name, declared_at)

    def _closest(
        self,
        candidates: list[Span],
        checks: list[Check],
        expectation: str,
        expected: str,
        of_name: str,
        declared_at: str,
    ) -> ValidationResult:
        """Rank candidates by how many constraints they break; name the best ones."""
        failed_by: dict[str, int] = {}

        def ranked() -> Iterator[tuple[int, int, Span, list[str]]]:
            for order, span in enumerate(candidates):
                found = [p for p in (check(span) for check in checks) if p is not None]
                for label, _ in found:
                    failed_by[label] = failed_by.get(label, 0) + 1
                yield len(found), order, span, [text for _, text in found]

        closest = heapq.nsmallest(CLOSEST, ranked(), key=lambda item: (item[0], item[1]))
        best = closest[0]
        seen = f"{of_name}, none matches; closest (span {best[2].span_id}): " + "; ".join(best[3])
        lines = [f"{expectation}: no span satisfies every constraint; {of_name}"]
        for _, _, span, problems in closest:
            where = f"  span {span.span_id} (trace {span.trace_id[:8]}): "
            lines.append(where + "; ".join(problems))
        tally = ", ".join(f"{label} on {count}" for label, count in failed_by.items())
        lines.append(f"  constraints failed: {tally} (of {len(candidates)})")
        return verdict(
            self.name, expectation, False, expected=expected, seen=seen,
            declared_at=declared_at, message="\n".join(lines),
        )
