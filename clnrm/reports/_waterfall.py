"""Trace waterfalls: spans laid out as rows under their parents, bars on a time axis.

Pure layout over untrusted spans, so it must survive what real collectors
and hand-written trace files contain: spans without timestamps (no bar, a
note), an end before the start (a tick, no bar), orphans whose parent never
arrived (shown as roots, marked), parent links that loop, duplicated span ids
and chains thousands deep (the walk is iterative, never recursive).  Parents
are looked up within the span's own trace, as the validators do.

Each trace gets its own axis starting at its first span, the way trace
viewers draw one trace; traces are ordered by start.  At most ``limit`` rows
are laid out per test and the rest are counted, so a million-span run still
renders a readable file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Final

from clnrm.otel.span import AttrValue, Span

SPAN_LIMIT: Final = 500
"""Waterfall rows per test; spans beyond it are counted, not drawn."""

_TITLE_ATTRS: Final = 40
_TITLE_VALUE: Final = 200

Key = tuple[str, str]
"""``(trace_id, span_id)``: span ids are only unique within a trace."""


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    """One span on the axis of its trace; percentages are of the trace's duration."""

    span: Span
    depth: int
    left_pct: float | None  # None: the span has no start time
    width_pct: float | None  # None: no usable end time; drawn as a tick at left_pct
    duration: str  # "12.3 ms", or "" without both timestamps
    error: bool
    note: str  # why the row looks unusual: orphan, loop, missing timestamps
    title: str  # hover text: every field and attribute, clipped
    critical: bool = False  # on the critical path (clnrm.perf.critical_path)

    @property
    def service(self) -> str | None:
        return self.span.service_name


@dataclass(slots=True)
class TraceLane:
    """The rows of one trace, its duration and the axis labels ``(percent, label)``."""

    trace_id: str
    rows: list[WaterfallRow] = field(default_factory=list)
    span_count: int = 0
    duration: str = ""
    ticks: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class Waterfall:
    lanes: list[TraceLane]
    total: int
    shown: int

    @property
    def truncated(self) -> bool:
        return self.shown < self.total


def is_error(span: Span) -> bool:
    """ERROR status, or the ``error = true`` attribute some SDKs set instead."""
    if span.status == "ERROR":
        return True
    flag = span.attributes.get("error")
    return flag is True or (isinstance(flag, str) and flag.lower() == "true")


def waterfall(spans: Sequence[Span], *, limit: int = SPAN_LIMIT,
              critical: Set[Key] | None = None) -> Waterfall:
    """Lay out ``spans`` as trace lanes of rows in parent-first, start-time order.

    Rows whose ``(trace_id, span_id)`` is in ``critical`` are marked ``critical``.
    """
    by_trace: dict[str, list[int]] = defaultdict(list)
    for i, span in enumerate(spans):
        by_trace[span.trace_id].append(i)

    def trace_start(trace_id: str) -> tuple[bool, int, str]:
        starts = [s for i in by_trace[trace_id]
                  if (s := spans[i].start_time_unix_nano) is not None]
        return (not starts, min(starts) if starts else 0, trace_id)

    lanes: list[TraceLane] = []
    shown = 0
    for trace_id in sorted(by_trace, key=trace_start):
        members = by_trace[trace_id]
        lane = TraceLane(trace_id=trace_id, span_count=len(members))
        lanes.append(lane)
        if shown >= limit:
            continue
        order = _tree_order(spans, members)[: limit - shown]
        _place(spans, lane, order, critical or frozenset())
        shown += len(lane.rows)
    return Waterfall(lanes=[lane for lane in lanes if lane.rows], total=len(spans), shown=shown)


def _tree_order(spans: Sequence[Span], members: list[int]) -> list[tuple[int, int, str]]:
    """``(span index, depth, note)`` in depth-first order, children by start time."""

    def when(i: int) -> tuple[bool, int, int]:
        start = spans[i].start_time_unix_nano
        return (start is None, start or 0, i)

    first: dict[str, int] = {}
    for i in members:
        first.setdefault(spans[i].span_id, i)
    children: dict[int, list[int]] = defaultdict(list)
    roots: list[tuple[int, str]] = []
    for i in members:
        parent_id = spans[i].parent_span_id
        parent = first.get(parent_id) if parent_id else None
        if parent is not None and parent != i:
            children[parent].append(i)
        elif parent == i:
            roots.append((i, "its parent id is its own span id"))
        elif parent_id:
            roots.append((i, f"orphan: parent {parent_id[:16]} missing"))
        else:
            roots.append((i, ""))
    roots.sort(key=lambda r: when(r[0]))
    order: list[tuple[int, int, str]] = []
    seen: set[int] = set()

    def walk(root: int, note: str) -> None:
        stack = [(root, 0, note)]
        while stack:
            i, depth, why = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            order.append((i, depth, why))
            kids = sorted(children.get(i, ()), key=when, reverse=True)
            stack.extend((k, depth + 1, "") for k in kids if k not in seen)

    for root, note in roots:
        walk(root, note)
    # whatever no root reaches sits on a loop of parent links (a -> b -> a)
    for i in sorted(members, key=when):
        if i not in seen:
            walk(i, "parent links form a loop; shown as a root")
    return order


def _place(spans: Sequence[Span], lane: TraceLane, order: list[tuple[int, int, str]],
           critical: Set[Key]) -> None:
    starts = [t for i, _, _ in order if (t := spans[i].start_time_unix_nano) is not None]
    ends = [t for i, _, _ in order for t in (spans[i].start_time_unix_nano,
                                             spans[i].end_time_unix_nano) if t is not None]
    origin = min(starts) if starts else 0
    window = max((max(ends) - origin) if ends else 0, 1)
    if starts:
        lane.duration = _ms_text((max(ends) - origin) / 1e6)
        lane.ticks = [(pct, _ms_text(window * pct / 100 / 1e6)) for pct in (0, 25, 50, 75, 100)]
    for i, depth, note in order:
        span = spans[i]
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        left = width = None
        if start is not None:
            left = _pct(start - origin, window)
            if end is not None and end >= start:
                width = _pct(end - start, window)
        if not note:
            if start is None:
                note = "no timestamps" if end is None else "no start time"
            elif width is None:
                note = "no end time" if end is None else "ends before it starts"
        ms = span.duration_ms
        lane.rows.append(WaterfallRow(
            span=span, depth=depth, left_pct=left, width_pct=width,
            duration=_ms_text(ms) if ms is not None else "", error=is_error(span), note=note,
            title=_title(span, depth, ms), critical=(span.trace_id, span.span_id) in critical))


def _pct(value: int, window: int) -> float:
    return round(min(max(value / window * 100, 0.0), 100.0), 3)


def _ms_text(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f}".rstrip("0").rstrip(".") + " ms"
    return f"{ms:.2f}".rstrip("0").rstrip(".") + " ms" if ms >= 0.005 else "0 ms"


def _title(span: Span, depth: int, ms: float | None) -> str:
    status = span.status + (f" ({span.status_message})" if span.status_message else "")
    lines = [
        span.name,
        f"service: {span.service_name or '(no service.name)'}   kind: {span.kind}   "
        f"status: {status}",
        f"duration: {_ms_text(ms) if ms is not None else 'unknown'}   depth: {depth}",
        f"span {span.span_id}   parent {span.parent_span_id or '(root)'}",
        f"trace {span.trace_id}",
    ]
    if span.attributes:
        lines.append("attributes:")
        items = list(span.attributes.items())
        lines += [f"  {k} = {_value(v)}" for k, v in items[:_TITLE_ATTRS]]
        if len(items) > _TITLE_ATTRS:
            lines.append(f"  … {len(items) - _TITLE_ATTRS} more")
    if span.events:
        names = ", ".join(e.name for e in span.events[:10])
        more = f" … {len(span.events) - 10} more" if len(span.events) > 10 else ""
        lines.append(f"events ({len(span.events)}): {names}{more}")
    return "\n".join(lines)


def _value(value: AttrValue) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= _TITLE_VALUE else text[: _TITLE_VALUE - 1] + "…"
