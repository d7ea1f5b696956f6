"""``[expect.order]``: one kind of span happens before another.

Upstream semantics (``validation/order_validator.rs``): ``must_precede
[a, b]`` holds when *some* span named ``a`` ends at or before the start of
*some* span named ``b``; ``must_follow [a, b]`` is exactly ``must_precede
[b, a]``; a missing name or missing timestamps fail.  Deviations:

- **judged per trace.**  Upstream compared all spans at once, so with
  several traces an ``a`` from one request "preceded" a ``b`` of a later,
  unrelated one and almost any order passed.  Here every trace holding
  both names must show the order (upstream's existential reading, within
  that trace); only when no trace holds both, e.g. processes that do not
  propagate context, are all spans compared as upstream did.  For a single
  trace this is exactly upstream's rule.
- names may be globs; the failure says which timestamps were missing, or in
  which trace and by how much the order was wrong.
- ``every = true`` (ours) makes the table's rules universal: in each trace
  holding both, *every* ``a`` ends at or before *every* ``b`` starts, so two
  calls of a repeated name changing places fail; a span of either name without
  the timestamp it is judged on fails the rule, since it cannot be placed.

Per trace the rule reduces to two numbers, the earliest end of ``a`` and the
latest start of ``b`` (with ``every``: the latest end and the earliest start),
so each rule is one pass over the spans of its names.
"""

from __future__ import annotations

from typing import TypeAlias

from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect
from clnrm.validators._text import ms, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex

Extreme: TypeAlias = tuple[Span, int]
"""A span and the timestamp that made it the earliest end / latest start."""


def _ends(spans: list[Span], latest: bool) -> dict[str, Extreme]:
    """Trace id -> the span with the earliest (``latest``: the latest) end in that trace."""
    best: dict[str, Extreme] = {}
    for span in spans:
        end = span.end_time_unix_nano
        if end is not None:
            known = best.get(span.trace_id)
            if known is None or (end > known[1] if latest else end < known[1]):
                best[span.trace_id] = span, end
    return best


def _starts(spans: list[Span], earliest: bool) -> dict[str, Extreme]:
    """Trace id -> the span with the latest (``earliest``: the earliest) start in that trace."""
    best: dict[str, Extreme] = {}
    for span in spans:
        start = span.start_time_unix_nano
        if start is not None:
            known = best.get(span.trace_id)
            if known is None or (start < known[1] if earliest else start > known[1]):
                best[span.trace_id] = span, start
    return best


def _gap(early: Extreme, late: Extreme, every: bool = False) -> str:
    (first, end), (then, start) = early, late
    if end <= start:
        return (f"span {first.span_id} ({first.name}) ends {ms((start - end) / 1e6)} before "
                f"span {then.span_id} ({then.name}) starts")
    ending, starting = ("latest", "earliest") if every else ("earliest", "latest")
    return (f"the {ending} end (span {first.span_id}) is {ms((end - start) / 1e6)} after the "
            f"{starting} start (span {then.span_id})")


def _untimed(first: str, firsts: list[Span], then: str, thens: list[Span]) -> str | None:
    """With ``every``, a span that cannot be placed: what is missing, else None."""
    for name, spans, field in ((first, firsts, "end"), (then, thens, "start")):
        missing = [s for s in spans if getattr(s, f"{field}_time_unix_nano") is None]
        if missing:
            return (f"{len(missing)} of {plural(len(spans), 'span')} named {quoted(name)} "
                    f"without a{'n' if field == 'end' else ''} {field} timestamp, e.g. span "
                    f"{missing[0].span_id}: every one must be placed")
    return None


def precedes(first: str, then: str, index: SpanIndex,
             every: bool = False) -> tuple[bool, str]:
    """Whether ``first`` comes before ``then`` (see module docstring); what was seen."""
    firsts, thens = index.named(first), index.named(then)
    for name, spans in ((first, firsts), (then, thens)):
        if not spans:
            return False, f"no span named {quoted(name)}; {name_counts(index.name_counts)}"
    if every and (missing := _untimed(first, firsts, then, thens)) is not None:
        return False, missing
    ends, starts = _ends(firsts, latest=every), _starts(thens, earliest=every)
    if not ends:
        return False, (f"{plural(len(firsts), 'span')} named {quoted(first)}, "
                       "none with an end timestamp")
    if not starts:
        return False, (f"{plural(len(thens), 'span')} named {quoted(then)}, "
                       "none with a start timestamp")
    # existential: the earliest end against the latest start; universal: the latest
    # end against the earliest start
    pick_end, pick_start = (max, min) if every else (min, max)
    broken = (f"some {quoted(first)} ends after some {quoted(then)} starts" if every
              else f"every {quoted(first)} ends after every {quoted(then)} starts")
    shared = [trace for trace in ends if trace in starts]
    if not shared:
        early = pick_end(ends.values(), key=lambda item: item[1])
        late = pick_start(starts.values(), key=lambda item: item[1])
        ok = early[1] <= late[1]
        head = "no trace holds both; across traces "
        if ok:
            return True, head + _gap(early, late, every)
        return False, head + f"{broken}: {_gap(early, late, every)}"
    wrong = [trace for trace in shared if ends[trace][1] > starts[trace][1]]
    if not wrong:
        example = shared[0]
        return True, (f"in {plural(len(shared), 'trace')} holding both, "
                      f"{'every ' if every else ''}{quoted(first)} comes first, e.g. trace "
                      f"{example[:8]}: {_gap(ends[example], starts[example], every)}")
    bad = wrong[0]
    return False, (f"in {len(wrong)} of {plural(len(shared), 'trace')} holding both, "
                   f"{broken}, e.g. trace {bad[:8]}: {_gap(ends[bad], starts[bad], every)}")


class OrderValidator:
    """One result per ``must_precede`` pair, then per ``must_follow`` pair."""

    name = "order"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        order = expect.order
        if order is None:
            return []
        every = order.every
        some = "every" if every else "a"
        results: list[ValidationResult] = []
        for i, (a, b) in enumerate(order.must_precede):
            ok, seen = precedes(a, b, index, every)
            results.append(verdict(
                self.name, f"order must_precede {a} -> {b}", ok,
                expected=(f"{some} span named {quoted(a)} ending before {some} span named "
                          f"{quoted(b)} starts"),
                seen=seen, declared_at=where.at(("expect", "order", "must_precede", i)),
            ))
        for i, (a, b) in enumerate(order.must_follow):
            ok, seen = precedes(b, a, index, every)
            results.append(verdict(
                self.name, f"order must_follow {a} -> {b}", ok,
                expected=(f"{some} span named {quoted(a)} starting after {some} span named "
                          f"{quoted(b)} ends"),
                seen=seen, declared_at=where.at(("expect", "order", "must_follow", i)),
            ))
        return results
