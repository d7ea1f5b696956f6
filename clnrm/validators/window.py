"""``[[expect.window]]``: spans that must happen inside an outer span's time window.

Upstream (``validation/window_validator.rs``) compared the *first* span named
``outer`` with the *first* span of each contained name, so with several
traces the verdict depended on export order.  Here:

- **every** span of each ``contains`` name must lie inside the window of an
  ``outer`` span (bounds inclusive): one in its own trace when its trace has
  an outer span, otherwise any outer span, so processes that do not
  propagate trace context are still judged by time;
- each contained name needs at least one span, and an outer span with both
  timestamps must exist (both fail with a message saying which was missing);
- a contained span without both timestamps fails (upstream too).

Names may be globs.  Cost is ``O((outer + contained) log outer)``: outer
windows are sorted once with a running maximum of their ends, so "is there
a window starting before s and ending after e" is one bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import TypeAlias

from clnrm.otel.span import Span
from clnrm.results import ValidationResult
from clnrm.scenario.expect import Expect, WindowExpectation
from clnrm.validators._text import ms, name_counts, plural, quoted
from clnrm.validators.base import Declarations, verdict
from clnrm.validators.index import SpanIndex

Window: TypeAlias = tuple[int, int, Span]
"""An outer span's start and end (ns) and the span itself."""


def _timed(span: Span) -> tuple[int, int] | None:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start is None or end is None or end < start:
        return None
    return start, end


class Windows:
    """The outer spans of one expectation, queryable per trace and across traces."""

    def __init__(self, outers: list[Span]) -> None:
        self.by_trace: dict[str, list[Window]] = {}
        timed: list[Window] = []
        for span in outers:
            times = _timed(span)
            if times is not None:
                window = (*times, span)
                timed.append(window)
                self.by_trace.setdefault(span.trace_id, []).append(window)
        timed.sort(key=lambda w: (w[0], w[1]))
        self.timed = timed
        self.starts = [start for start, _, _ in timed]
        self.max_end = list(accumulate((end for _, end, _ in timed), max))
        # per trace: the one window's bounds, or (like the global lists) starts in
        # order with the running maximum of ends, so a check is one bisection
        self.local: dict[str, tuple[int, int] | tuple[list[int], list[int]]] = {}
        for trace, windows in self.by_trace.items():
            if len(windows) == 1:
                self.local[trace] = windows[0][0], windows[0][1]
            else:
                ordered = sorted(windows, key=lambda w: (w[0], w[1]))
                self.local[trace] = ([w[0] for w in ordered],
                                     list(accumulate((w[1] for w in ordered), max)))

    def __bool__(self) -> bool:
        return bool(self.starts)

    def contains(self, span: Span, start: int, end: int) -> bool:
        local = self.local.get(span.trace_id)
        if local is None:
            starts, max_end = self.starts, self.max_end
        else:
            low, high = local
            if low.__class__ is int:  # one window in the trace (the usual case)
                return low <= start and end <= high  # type: ignore[operator]
            starts, max_end = local  # type: ignore[assignment]
        i = bisect_right(starts, start)
        return i > 0 and max_end[i - 1] >= end

    def nearest(self, span: Span, start: int) -> Window:
        """The window the span is best compared with, for the failure message."""
        local = self.by_trace.get(span.trace_id)
        if local:
            return min(local, key=lambda w: abs(w[0] - start))
        return self.timed[max(bisect_right(self.starts, start) - 1, 0)]


def _offence(span: Span, start: int, end: int, window: Window) -> str:
    outer_start, outer_end, outer = window
    parts = []
    if start < outer_start:
        parts.append(f"starts {ms((outer_start - start) / 1e6)} before")
    if end > outer_end:
        parts.append(f"ends {ms((end - outer_end) / 1e6)} after")
    whose = "its trace's" if outer.trace_id == span.trace_id else "the nearest"
    return (f"span {span.span_id} ({span.name}) " + " and ".join(parts)
            + f" {whose} {outer.name} (span {outer.span_id})")


class WindowValidator:
    """One result per ``[[expect.window]]`` entry."""

    name = "window"

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]:
        return [
            self.judge(exp, index, where.at(("expect", "window", i)))
            for i, exp in enumerate(expect.window)
        ]

    def judge(self, exp: WindowExpectation, index: SpanIndex, declared_at: str) -> ValidationResult:
        expectation = f"window {quoted(exp.outer)} contains {', '.join(exp.contains)}"
        expected = (f"every span named {', '.join(map(quoted, exp.contains))} inside the time "
                    f"window of a span named {quoted(exp.outer)}")
        outers = index.named(exp.outer)
        windows = Windows(outers)
        if not windows:
            seen = (f"no span named {quoted(exp.outer)}; {name_counts(index.name_counts)}"
                    if not outers else
                    f"{plural(len(outers), 'span')} named {quoted(exp.outer)}, "
                    "none with both start and end timestamps")
            return verdict(self.name, expectation, False, expected=expected, seen=seen,
                           declared_at=declared_at)
        problems: list[str] = []
        checked = 0
        for name in exp.contains:
            spans = index.named(name)
            if not spans:
                problems.append(f"no span named {quoted(name)}")
                continue
            checked += len(spans)
            problem = self._check_name(name, spans, windows)
            if problem:
                problems.append(problem)
        if problems:
            return verdict(self.name, expectation, False, expected=expected,
                           seen="; ".join(problems), declared_at=declared_at)
        seen = (f"all {plural(checked, 'span')} inside windows of "
                f"{plural(len(windows.starts), 'span')} named {quoted(exp.outer)}")
        return verdict(self.name, expectation, True, expected=expected, seen=seen,
                       declared_at=declared_at)

    @staticmethod
    def _check_name(name: str, spans: list[Span], windows: Windows) -> str | None:
        untimed = outside = 0
        example = ""
        contains = windows.contains
        for span in spans:
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            if start is None or end is None or end < start:
                untimed += 1
                continue
            if not contains(span, start, end):
                outside += 1
                if not example:
                    example = _offence(span, start, end, windows.nearest(span, start))
        if not untimed and not outside:
            return None
        parts = []
        if outside:
            parts.append(f"{outside} of {len(spans)} named {quoted(name)} outside, e.g. {example}")
        if untimed:
            parts.append(f"{untimed} of {len(spans)} named {quoted(name)} without both timestamps")
        return "; ".join(parts)
