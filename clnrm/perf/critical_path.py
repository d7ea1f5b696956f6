"""The critical path through each trace (or each request), and what dominates it.

The critical path is the chain of work that decided when the root span
ended: shorten anything on it and the request gets faster; shorten anything
off it and nothing changes.  It is found the classic way (Jaeger's and
Uber's CRISP): start at the end of the root, step back into the child that
finished last before that moment, recurse into it, and when it is done
continue in the parent from the child's start; time between children is the
parent's own ("self") time on the path.  Every instant of the root's
duration is attributed to exactly one span, so the shares add up to 100 %.

Real traces need a few rules first, applied top-down so each child is
judged against its parent's *adjusted* window:

- a child that starts before its parent (clock skew between services) is
  clamped to the parent's start;
- a child that ends after its parent (async work, fire-and-forget, skew) is
  cut at the parent's end, and one that starts at or after the parent's end
  cannot have delayed it and is left off the path with its subtree;
- spans without both timestamps, orphans whose parent never arrived, spans
  of other roots and parent links that loop are never on the path; the
  report counts them in ``notes``.

Paths are computed per request (each *entry* SERVER span: one with no server
span above it in its trace) when there are any, else per trace from its
longest root, so a load test of 1,000 requests that all joined one test
trace still yields 1,000 paths.  Sorting children by end time is the only
super-linear step: O(n log n) overall, iterative (no recursion) so chains
thousands deep are fine.

:func:`critical_paths` also writes :attr:`CriticalPathReport.recommendations`,
plain sentences about the patterns worth fixing (:mod:`clnrm.perf._advice`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Final, Literal

from pydantic import BaseModel, Field

from clnrm.otel.span import Span
from clnrm.perf._advice import AdviceThresholds, Analysis, advise
from clnrm.perf.metrics import NO_SERVICE

__all__ = [
    "PATH_LIMIT",
    "AdviceThresholds",
    "CriticalPath",
    "CriticalPathReport",
    "PathSegment",
    "PathShare",
    "Per",
    "analyse",
    "critical_paths",
    "recommendations",
]

PATH_LIMIT: Final = 200
"""Paths kept in a report (the earliest); shares and advice always use all of them."""

Per = Literal["auto", "trace", "request"]
"""What one path covers: a trace from its root, or a request from its entry SERVER span."""

Key = tuple[str, str]
"""``(trace_id, span_id)``: span ids are only unique within a trace."""


class PathSegment(BaseModel):
    """A stretch of the path during which ``span_id`` itself was the work being waited on."""

    span_id: str
    name: str
    service: str
    kind: str
    start_unix_nano: int
    end_unix_nano: int

    @property
    def duration_ms(self) -> float:
        return (self.end_unix_nano - self.start_unix_nano) / 1e6


class CriticalPath(BaseModel):
    """One root's path; segments in time order, adjacent stretches of one span merged."""

    trace_id: str
    root_span_id: str
    root_name: str
    start_unix_nano: int
    end_unix_nano: int
    segments: list[PathSegment] = Field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_unix_nano - self.start_unix_nano) / 1e6

    def self_time_ms(self) -> dict[str, float]:
        """Span id -> its time on this path, in ms."""
        out: dict[str, float] = defaultdict(float)
        for seg in self.segments:
            out[seg.span_id] += seg.duration_ms
        return dict(out)


class PathShare(BaseModel):
    """How much of all critical-path time one operation (service + span name) took."""

    name: str
    service: str
    kind: str
    path_ms: float  # summed over all paths
    share: float  # of all critical-path time, 0..1
    per_path_ms: float  # path_ms / number of paths
    spans_on_path: int


class CriticalPathReport(BaseModel):
    """Critical paths of a set of spans; ``shares`` sorted by time on the path, largest first."""

    per: Literal["trace", "request"]
    path_count: int = 0
    total_ms: float = 0.0
    shares: list[PathShare] = Field(default_factory=list)
    paths: list[CriticalPath] = Field(default_factory=list)  # at most PATH_LIMIT
    notes: list[str] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)

    def keys(self) -> set[Key]:
        """``(trace_id, span_id)`` of every span on a kept path (for the waterfall)."""
        return {(p.trace_id, seg.span_id) for p in self.paths for seg in p.segments}


def critical_paths(spans: Sequence[Span], *, per: Per = "auto", path_limit: int = PATH_LIMIT,
                   thresholds: AdviceThresholds | None = None) -> CriticalPathReport:
    """Critical paths, per-operation shares and recommendations for ``spans``."""
    report, analysis = analyse(spans, per=per, path_limit=path_limit)
    report.recommendations = advise(analysis, report, thresholds or AdviceThresholds())
    return report


def recommendations(spans: Sequence[Span], *, per: Per = "auto",
                    thresholds: AdviceThresholds | None = None) -> list[str]:
    """Plain-word advice about the critical paths of ``spans``, most important first.

    Dominating operations, N+1 call patterns, retries after errors, calls made
    one after another on the path, and slow work that is off the path (so not
    worth optimising); thresholds in :class:`~clnrm.perf._advice.AdviceThresholds`.
    """
    return critical_paths(spans, per=per, path_limit=0, thresholds=thresholds).recommendations


def analyse(spans: Sequence[Span], *, per: Per = "auto",
            path_limit: int = PATH_LIMIT) -> tuple[CriticalPathReport, Analysis]:
    """The report without recommendations, plus the working state that produced it."""
    by_trace: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(spans):
        by_trace[s.trace_id].append(i)
    children: dict[int, list[int]] = {}
    trace_roots: dict[str, list[int]] = {}
    entries: dict[str, list[int]] = {}
    counts: dict[str, int] = defaultdict(int)
    for trace_id, members in by_trace.items():
        roots = _link(spans, members, children, counts)
        trace_roots[trace_id] = roots
        entries[trace_id] = _entry_servers(spans, roots, children)
    chosen: Literal["trace", "request"]
    if per == "auto":
        chosen = "request" if any(entries.values()) else "trace"
    else:
        chosen = per

    path_roots: list[int] = []
    for trace_id in by_trace:
        if chosen == "request":
            timed = [r for r in entries[trace_id] if _timed(spans[r])]
            counts["untimed"] += len(entries[trace_id]) - len(timed)
            path_roots.extend(timed)
        else:
            timed = [r for r in trace_roots[trace_id] if _timed(spans[r])]
            if timed:
                path_roots.append(max(timed, key=lambda r: (_length(spans[r]),
                                                            -_start(spans[r]), -r)))
            if len(trace_roots[trace_id]) > 1:
                counts["other_roots"] += len(trace_roots[trace_id]) - (1 if timed else 0)
    path_roots.sort(key=lambda r: (_start(spans[r]), r))

    analysis = Analysis(spans=spans, children=children, on_path_ms={}, path_roots=path_roots)
    paths: list[CriticalPath] = []
    per_op: dict[tuple[str, str], list[float]] = {}  # (service, name) -> [ns, spans]
    kinds: dict[tuple[str, str], str] = {}
    total_ns = 0
    for root in path_roots:
        analysis.entered.add(root)
        raw = _walk(spans, root, children, counts, analysis.entered)
        analysis.path_ns[root] = _length(spans[root])
        total_ns += _length(spans[root])
        merged = _merge(raw)
        seen_here: set[int] = set()
        for i, start, end in merged:
            span = spans[i]
            op = (_service(span), span.name)
            kinds.setdefault(op, span.kind)
            acc = per_op.setdefault(op, [0.0, 0.0])
            acc[0] += end - start
            if i not in seen_here:
                acc[1] += 1
                seen_here.add(i)
            analysis.on_path_ms[i] = analysis.on_path_ms.get(i, 0.0) + (end - start) / 1e6
        if len(paths) < path_limit:
            paths.append(_path(spans, root, merged))

    n_paths = len(path_roots)
    shares = [PathShare(name=name, service=service, kind=kinds[(service, name)],
                        path_ms=ns / 1e6, share=ns / total_ns if total_ns else 0.0,
                        per_path_ms=ns / 1e6 / n_paths, spans_on_path=int(n))
              for (service, name), (ns, n) in per_op.items()]
    shares.sort(key=lambda s: (-s.path_ms, s.service, s.name))
    report = CriticalPathReport(per=chosen, path_count=n_paths, total_ms=total_ns / 1e6,
                                shares=shares, paths=paths, notes=_notes(counts, chosen))
    return report, analysis


def _link(spans: Sequence[Span], members: list[int], children: dict[int, list[int]],
          counts: dict[str, int]) -> list[int]:
    """Fill ``children`` for one trace and return its roots (no parent, orphan, self-parent)."""
    first: dict[str, int] = {}
    for i in members:
        first.setdefault(spans[i].span_id, i)
    roots: list[int] = []
    linked = 0
    for i in members:
        if first[spans[i].span_id] != i:
            counts["duplicates"] += 1
            continue
        parent_id = spans[i].parent_span_id
        parent = first.get(parent_id) if parent_id else None
        if parent is None or parent == i:
            roots.append(i)
            if parent_id and parent is None:
                counts["orphans"] += 1
        else:
            children.setdefault(parent, []).append(i)
            linked += 1
    reachable, stack = 0, list(roots)
    while stack:
        reachable += 1
        stack.extend(children.get(stack.pop(), ()))
    counts["loops"] += len(roots) + linked - reachable
    return roots


def _entry_servers(spans: Sequence[Span], roots: list[int],
                   children: dict[int, list[int]]) -> list[int]:
    """SERVER spans with no SERVER span above them, found in one walk down from the roots."""
    found: list[int] = []
    stack = [(r, False) for r in roots]
    while stack:
        i, under = stack.pop()
        server = spans[i].kind == "server"
        if server and not under:
            found.append(i)
        stack.extend((c, under or server) for c in children.get(i, ()))
    return found


def _walk(spans: Sequence[Span], root: int, children: dict[int, list[int]],
          counts: dict[str, int], entered: set[int]) -> list[tuple[int, int, int]]:
    """``(span index, start, end)`` stretches of the path under ``root``, in time order.

    ``entered`` receives every span the path passes through, including spans whose
    own time is all covered by children (they are on the path, their self time is not).
    """
    window: dict[int, tuple[int, int]] = {root: (_start(spans[root]), _end(spans[root]))}
    ordered: dict[int, list[int]] = {}
    stack = [root]
    while stack:  # adjusted windows, top-down
        x = stack.pop()
        ps, pe = window[x]
        kept: list[int] = []
        for c in children.get(x, ()):
            span = spans[c]
            cs, ce = span.start_time_unix_nano, span.end_time_unix_nano
            if cs is None or ce is None or ce < cs:
                counts["untimed"] += 1
                continue
            if cs >= pe and not (cs == ce == pe == ps):
                counts["after_parent"] += 1
                continue
            if cs < ps:
                counts["skewed"] += 1
            if ce > pe:
                counts["outlived"] += 1
            s2 = max(cs, ps)
            window[c] = (s2, max(min(ce, pe), s2))
            kept.append(c)
        if kept:
            kept.sort(key=lambda c: (-window[c][1], window[c][0], c))
            ordered[x] = kept
            stack.extend(kept)

    out: list[tuple[int, int, int]] = []
    pointer: dict[int, int] = {}
    frames = [(root, window[root][1])]
    while frames:  # back from the end: the last child to finish, then the parent before it
        x, barrier = frames.pop()
        kids = ordered.get(x, [])
        k = pointer.get(x, 0)
        while k < len(kids) and window[kids[k]][1] > barrier:
            k += 1  # finished after the barrier: it overlapped the child already taken
        if k < len(kids):
            child = kids[k]
            pointer[x] = k + 1
            cs, ce = window[child]
            if ce < barrier:
                out.append((x, ce, barrier))
            frames.append((x, cs))
            frames.append((child, ce))
            if ce > cs:
                entered.add(child)
        elif window[x][0] < barrier:
            out.append((x, window[x][0], barrier))
    out.reverse()
    return out


def _merge(raw: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    merged: list[tuple[int, int, int]] = []
    for i, start, end in raw:
        if merged and merged[-1][0] == i and merged[-1][2] == start:
            merged[-1] = (i, merged[-1][1], end)
        else:
            merged.append((i, start, end))
    return merged


def _path(spans: Sequence[Span], root: int, merged: list[tuple[int, int, int]]) -> CriticalPath:
    r = spans[root]
    return CriticalPath(
        trace_id=r.trace_id, root_span_id=r.span_id, root_name=r.name,
        start_unix_nano=_start(r), end_unix_nano=_end(r),
        # trusted values built here: construct without re-validating thousands of segments
        segments=[PathSegment.model_construct(span_id=spans[i].span_id, name=spans[i].name,
                                              service=_service(spans[i]), kind=spans[i].kind,
                                              start_unix_nano=start, end_unix_nano=end)
                  for i, start, end in merged])


def _notes(counts: dict[str, int], per: str) -> list[str]:
    texts = {
        "orphans": "{n} orphan span(s) (parent never arrived) are not on any path",
        "other_roots": "{n} other root span(s) of a trace are not on its path",
        "untimed": "{n} span(s) without usable timestamps are not on any path",
        "after_parent": "{n} span(s) started after their parent ended (async); "
                        "they and their children are off the path",
        "outlived": "{n} span(s) ended after their parent; cut at the parent's end",
        "skewed": "{n} span(s) started before their parent (clock skew?); "
                  "clamped to the parent's start",
        "duplicates": "{n} span(s) repeat a span id already seen in their trace; ignored",
        "loops": "{n} span(s) sit on a loop of parent links; not on any path",
    }
    return [texts[k].format(n=counts[k]) for k in texts if counts.get(k)]


def _service(span: Span) -> str:
    return span.service_name or NO_SERVICE


def _timed(span: Span) -> bool:
    s, e = span.start_time_unix_nano, span.end_time_unix_nano
    return s is not None and e is not None and e >= s


def _start(span: Span) -> int:
    return span.start_time_unix_nano or 0


def _end(span: Span) -> int:
    end = span.end_time_unix_nano
    return max(end, _start(span)) if end is not None else _start(span)


def _length(span: Span) -> int:
    return _end(span) - _start(span)
