"""Recommendations in plain words, read off the critical paths and the span tree.

Each finding is aggregated over every path (every request), so a pattern in
1,000 requests is one sentence, not 1,000.  The order is the order of
payoff: operations that dominate the path, N+1 call patterns, retries after
errors, independent-looking calls made one after another, and last the slow
work that is *off* the path, which the reader should leave alone.

A "call" is a CLIENT or PRODUCER span, or any span with ``db.system``: the
spans whose repetition or serialisation costs a network round trip.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clnrm.otel.span import Span
from clnrm.perf.metrics import NO_SERVICE

if TYPE_CHECKING:
    from clnrm.perf.critical_path import CriticalPathReport

_STATEMENT_KEYS = ("db.query.text", "db.statement")
_STATEMENT_CHARS = 60

Op = tuple[str, str]
"""``(service, span name)``: what the advice talks about."""


@dataclass(frozen=True, slots=True)
class AdviceThresholds:
    """When a pattern is worth a sentence."""

    dominant_share: float = 0.3  # an operation at least this share of the path
    repeat_min: int = 10  # the same call this many times under one parent: N+1
    sequential_share: float = 0.1  # serial calls worth at least this share of all path time
    off_path_ratio: float = 0.2  # off-path work this long relative to the mean path
    limit: int = 8  # sentences at most


@dataclass(slots=True)
class Analysis:
    """The critical-path walk's working state; what :func:`advise` reads besides the report."""

    spans: Sequence[Span]
    children: dict[int, list[int]]  # parent index -> child indices, within a trace
    on_path_ms: dict[int, float]  # span index -> its time on a path
    path_roots: list[int]
    path_ns: dict[int, int] = field(default_factory=dict)  # path root -> path length
    entered: set[int] = field(default_factory=set)  # spans the path passes through


def advise(analysis: Analysis, report: CriticalPathReport, limit: AdviceThresholds) -> list[str]:
    """Sentences about ``report``'s paths, most valuable first, at most ``limit.limit``."""
    if not analysis.path_roots or report.total_ms <= 0:
        return []
    ctx = _Context(analysis, report)
    repeated = ctx.repeated(limit)  # first: the dominant sentences skip what N+1 explains
    found = ctx.dominant(limit) + repeated + ctx.sequential(limit)
    found.sort(key=lambda f: -f[0])  # stable: ties keep the order above
    return ([text for _, text in found] + ctx.off_path(limit))[: limit.limit]


class _Context:
    def __init__(self, analysis: Analysis, report: CriticalPathReport) -> None:
        self.a = analysis
        self.spans = analysis.spans
        self.ops: dict[int, Op] = {}
        self.unit = report.per
        self.report = report
        self.mean_path_ms = report.total_ms / max(report.path_count, 1)
        self.root_ops = {self.op(i) for i in analysis.path_roots}
        self.flagged: set[tuple[Op, Op]] = set()  # (parent op, child op) already explained
        self.examples: dict[Op, int] = {}
        self.members = self._members()

    def op(self, i: int) -> Op:
        op = self.ops.get(i)
        if op is None:
            span = self.spans[i]
            self.ops[i] = op = (span.service_name or NO_SERVICE, span.name)
        return op

    def label(self, op: Op) -> str:
        service, name = op
        text = f"`{name}` ({service})"
        example = self.examples.get(op)
        if example is not None:
            attrs = self.spans[example].attributes
            statement = next((v for k in _STATEMENT_KEYS if isinstance(v := attrs.get(k), str)
                              and v.strip() and v.strip() != name), None)
            if statement:
                statement = " ".join(statement.split())
                if len(statement) > _STATEMENT_CHARS:
                    statement = statement[: _STATEMENT_CHARS - 1] + "…"
                text += f" `{statement}`"
        return text

    def is_call(self, i: int) -> bool:
        span = self.spans[i]
        return span.kind in ("client", "producer") or "db.system" in span.attributes

    def _members(self) -> list[int]:
        """Every span in the subtree of a path root, whether on the path or not."""
        out: list[int] = []
        stack = list(self.a.path_roots)
        children = self.a.children
        while stack:
            i = stack.pop()
            out.append(i)
            kids = children.get(i)
            if kids:
                stack.extend(kids)
        for i in out:
            self.examples.setdefault(self.op(i), i)
        return out

    def dominant(self, t: AdviceThresholds) -> list[tuple[float, str]]:
        """Operations with a large share of the path; own time of a parent said as such."""
        parents = {self.op(i) for i in self.members if self.a.children.get(i)}
        explained = {child for _, child in self.flagged}
        out = []
        for share in self.report.shares:
            if share.share < t.dominant_share:
                break
            op = (share.service, share.name)
            if op in explained:
                continue
            per = f"{_ms(share.per_path_ms)} of {_ms(self.mean_path_ms)} per {self.unit}"
            if op in parents:
                out.append((share.share, f"{self.label(op)} spends {_pct(share.share)} of the "
                            f"critical path in its own code, outside its child spans ({per}): "
                            "add spans inside it to see where that time goes."))
                continue
            calls = share.spans_on_path / max(self.report.path_count, 1)
            many = f", {calls:.3g} calls per {self.unit}" if calls >= 1.5 else ""
            out.append((share.share, f"{self.label(op)} is {_pct(share.share)} of the "
                        f"critical path ({per}{many})."))
        return out

    def repeated(self, t: AdviceThresholds) -> list[tuple[float, str]]:
        """N+1 patterns, then retries after errors."""
        n_plus_one: dict[tuple[Op, Op], list[tuple[int, float]]] = defaultdict(list)
        retries: dict[tuple[Op, Op], list[tuple[int, int, float]]] = defaultdict(list)
        for parent in self.members:
            kids = [c for c in self.a.children.get(parent, ()) if self.is_call(c)]
            if len(kids) < 2:
                continue
            kids.sort(key=lambda c: (self.spans[c].start_time_unix_nano or 0, c))
            by_name: dict[str, list[int]] = defaultdict(list)
            for c in kids:
                by_name[self.spans[c].name].append(c)
            for group in by_name.values():
                if len(group) >= t.repeat_min:
                    on_path = sum(self.a.on_path_ms.get(c, 0.0) for c in group)
                    n_plus_one[(self.op(parent), self.op(group[0]))].append((len(group), on_path))
            for key, attempts in self._retries(parent, kids):
                on_path = sum(self.a.on_path_ms.get(c, 0.0) for c in attempts)
                retries[key].append((len(attempts) - 1, len(attempts), on_path))
        out = []
        for key, seen in sorted(n_plus_one.items(), key=lambda kv: -sum(x[1] for x in kv[1])):
            parent_op, child_op = key
            self.flagged.add(key)
            calls = statistics.median_low(n for n, _ in seen)
            path = sum(ms for _, ms in seen) / self.report.total_ms
            where = f"{_pct(path)} of the critical path" if path >= 0.01 else "off the path"
            out.append((path, f"N+1: {self.label(child_op)} runs {calls} times under each "
                        f"{self.label(parent_op)} ({calls} calls per {self.unit}, {where}, "
                        f"seen {len(seen)} time{'s' if len(seen) != 1 else ''}): fetch them "
                        "in one batched call."))
        for key, tries in sorted(retries.items(), key=lambda kv: -sum(x[2] for x in kv[1])):
            parent_op, child_op = key
            path = sum(ms for _, _, ms in tries) / self.report.total_ms
            if path < 0.01:
                continue  # rare and off the path: a reliability matter, not a latency one
            self.flagged.add(key)
            failed = sum(f for f, _, _ in tries)
            out.append((path, f"Retries: {self.label(child_op)} failed and was tried again "
                        f"{failed} time{'s' if failed != 1 else ''} under "
                        f"{self.label(parent_op)} (in {len(tries)} of them; the attempts are "
                        f"{_pct(path)} of the critical path): fix the failure, or give up on "
                        "it sooner."))
        return out

    def _retries(self, parent: int, kids: list[int]) -> list[tuple[tuple[Op, Op], list[int]]]:
        """Runs of one call where each attempt but the last failed and the next started after.

        ``kids`` are the parent's calls in start order; another call in between, or an
        attempt that overlaps the failed one, ends the run (that is concurrency, not a retry).
        """
        runs: list[tuple[tuple[Op, Op], list[int]]] = []
        run: list[int] = []
        for c in kids:
            prev = run[-1] if run else None
            if prev is not None and self.spans[prev].name == self.spans[c].name \
                    and self.spans[prev].status == "ERROR" \
                    and (self.spans[c].start_time_unix_nano or 0) \
                    >= (self.spans[prev].end_time_unix_nano or 0):
                run.append(c)
                continue
            if len(run) > 1:
                runs.append(((self.op(parent), self.op(run[0])), run))
            run = [c]
        if len(run) > 1:
            runs.append(((self.op(parent), self.op(run[0])), run))
        return runs

    def sequential(self, t: AdviceThresholds) -> list[tuple[float, str]]:
        found: dict[tuple[Op, tuple[str, ...]], list[float]] = defaultdict(list)
        for parent in self.members:
            if parent not in self.a.on_path_ms:
                continue
            kids = [c for c in self.a.children.get(parent, ())
                    if self.is_call(c) and self.a.on_path_ms.get(c, 0.0) > 0]
            if len(kids) < 2:
                continue
            pop = self.op(parent)
            if all((pop, self.op(c)) in self.flagged for c in kids):
                continue
            kids.sort(key=lambda c: (self.spans[c].start_time_unix_nano or 0, c))
            names = tuple(self.spans[c].name for c in kids)
            found[(pop, names)].append(sum(self.a.on_path_ms[c] for c in kids))
        out = []
        for (parent_op, names), totals in sorted(found.items(), key=lambda kv: -sum(kv[1])):
            share = sum(totals) / self.report.total_ms
            if share < t.sequential_share:
                continue
            mean = sum(totals) / len(totals)
            shown = ", ".join(f"`{n}`" for n in names[:6]) + (" …" if len(names) > 6 else "")
            out.append((share,
                        f"{self.label(parent_op)} makes {len(names)} calls one after another, "
                        f"all on the critical path ({shown}; {_ms(mean)} each time, in "
                        f"{len(totals)} of {self.report.path_count} {self.unit}s, "
                        f"{_pct(share)} of the critical path): if they do not depend on "
                        "each other, make them concurrently."))
        return out

    def off_path(self, t: AdviceThresholds) -> list[str]:
        total: dict[Op, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for i in self.members:
            span = self.spans[i]
            ms = span.duration_ms
            if ms is None:
                continue
            acc = total[self.op(i)]
            acc[0] += ms
            acc[1] += 1
            if i in self.a.entered:
                acc[2] += ms
        slow = [(op, ms / n, on / ms) for op, (ms, n, on) in total.items()
                if op not in self.root_ops and ms > 0
                and ms / n >= t.off_path_ratio * self.mean_path_ms and on / ms < 0.05]
        slow.sort(key=lambda x: (-x[1], x[0]))
        return [f"{self.label(op)} takes {_ms(mean)} on average but is "
                f"{'never' if on == 0 else 'rarely'} on the critical path (it runs alongside or "
                f"after what the caller waits for): making it faster will not make "
                f"{self.unit}s faster." for op, mean, on in slow[:3]]


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%" if share >= 0.01 or share == 0 else "<1%"


def _ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.3g} ms" if ms >= 1 else f"{ms:.2f} ms"

