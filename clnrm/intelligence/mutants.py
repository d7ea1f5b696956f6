"""Trace-level mutants: the behaviour changes generated tests must catch.

Each operator changes what the system does for one request type (every trace of
it), the way a code change would: a call dropped, a service calling one it never
called, two sequential calls swapped, a span failing, a changed status code, a
renamed operation, or one service 80 % slower (everywhere it runs).  Targets are
chosen with a seeded random generator among the spans each operator applies to,
so the mutant set is the same for the same corpus and seed.  Used by
``bench/generation.py`` and the unit tests.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

from clnrm.intelligence.corpus import Corpus, RequestType, Trace, build_corpus
from clnrm.otel.span import Span

STATUS_CODE_KEYS = ("http.status_code", "http.response.status_code")
SLOWDOWN = 0.8
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Mutant:
    """One behaviour change: what it does, in words, and the mutated spans."""

    operator: str
    request_type: str
    description: str
    spans: list[Span]


def _descendants(trace: Trace, root: Span) -> set[str]:
    ids = {root.span_id}
    changed = True
    while changed:
        changed = False
        for span in trace.spans:
            if span.parent_span_id in ids and span.span_id not in ids:
                ids.add(span.span_id)
                changed = True
    return ids


def _names(rt: RequestType, *, roots: bool = True) -> list[str]:
    return sorted({s.name for t in rt.traces for s in t.spans
                   if roots or s.span_id != t.root.span_id})


def _drop(corpus: Corpus, rt: RequestType, rng: random.Random) -> tuple[str, set[str]] | None:
    names = _names(rt, roots=False)
    if not names:
        return None
    name = rng.choice(names)
    gone: set[str] = set()
    for trace in rt.traces:
        for span in trace.spans:
            if span.name == name:
                gone |= _descendants(trace, span)
    return f"drop the call {name!r} (and what it calls)", gone


def _entries(corpus: Corpus) -> tuple[dict[str, list[Span]], set[tuple[str, str]]]:
    entries: dict[str, list[Span]] = {}
    calls: set[tuple[str, str]] = set()
    for trace in corpus.traces:
        for span in trace.spans:
            parent = trace.parent_of.get(span.span_id)
            svc = span.service_name
            if svc is None:
                continue
            if parent is None or (parent.service_name and parent.service_name != svc):
                entries.setdefault(svc, []).append(span)
                if parent is not None and parent.service_name:
                    calls.add((parent.service_name, svc))
    return entries, calls


class _Draws(random.Random):
    """The seeded generator an operator draws with: its first choice (the target) is the
    ``draw``-th of a seeded shuffle, so the draws of one operator and request type pick
    different targets while there are enough (with replacement, two of three draws often
    hit the same target and the mutant set shrank); later choices are plain draws."""

    def __init__(self, seed: str, draw: int) -> None:
        super().__init__(seed)
        self.draw = draw
        self.targeted = False

    def choice(self, seq: Sequence[T]) -> T:  # type: ignore[override]
        if self.targeted:
            return super().choice(seq)
        self.targeted = True
        order = list(range(len(seq)))
        self.shuffle(order)
        return seq[order[self.draw % len(order)]]


def mutate(spans: list[Span], operator: str, key: str, seed: int = 0,
           draw: int = 0) -> Mutant | None:
    """Apply ``operator`` to every trace of request type ``key`` (the ``draw``-th seeded
    choice of target); None when it cannot apply."""
    spans = copy.deepcopy(spans)
    corpus = build_corpus(spans, "<mutant>")
    rt = next((r for r in corpus.types if r.key == key), None)
    if rt is None:
        return None
    rng = _Draws(f"{seed}/{operator}/{key}", draw)
    described = OPERATORS[operator](corpus, rt, rng)
    if described is None:
        return None
    description, gone = described
    kept = [s for t in corpus.traces for s in t.spans if s.span_id not in gone]
    return Mutant(operator=operator, request_type=key, description=description, spans=kept)


def _add_edge(corpus: Corpus, rt: RequestType,
              rng: random.Random) -> tuple[str, set[str]] | None:
    entries, calls = _entries(corpus)
    callers = sorted({(s.service_name, s.name) for t in rt.traces for s in t.spans
                      if s.service_name and (s is t.root or any(
                          c.parent_span_id == s.span_id for c in t.spans))})
    options = [(svc, name, target) for svc, name in callers for target in sorted(entries)
               if target != svc and (svc, target) not in calls]
    if not options:
        return None
    svc, name, target = rng.choice(options)
    callee = rng.choice(sorted({s.name for s in entries[target]}))
    template = next(s for s in entries[target] if s.name == callee)
    for trace in rt.traces:
        parent = next((s for s in trace.spans if s.name == name), None)
        if parent is None or parent.start_time_unix_nano is None:
            continue
        start = parent.start_time_unix_nano
        end = parent.end_time_unix_nano or start
        trace.spans.append(Span(
            name=callee, trace_id=trace.trace_id, span_id=f"{rng.getrandbits(64):016x}",
            parent_span_id=parent.span_id, start_time_unix_nano=start + (end - start) // 4,
            end_time_unix_nano=start + (end - start) // 2, kind=template.kind,
            attributes=dict(template.attributes), resource=dict(template.resource)))
    return f"{name!r} ({svc}) now calls {callee!r} ({target}), a service it never called", set()


def _shift(trace: Trace, root: Span, delta: int) -> None:
    moved = _descendants(trace, root)
    for span in trace.spans:
        if span.span_id in moved:
            if span.start_time_unix_nano is not None:
                span.start_time_unix_nano += delta
            if span.end_time_unix_nano is not None:
                span.end_time_unix_nano += delta


Label = tuple[str, int]
"""A sibling by name and its place among same-named siblings (the 5th ``clnrm.step``)."""


def _labelled(trace: Trace) -> dict[str, list[tuple[Label, Span]]]:
    """Parent span id -> its children in start order, each with its label."""
    out: dict[str, list[tuple[Label, Span]]] = {}
    for parent in trace.spans:
        seen: dict[str, int] = {}
        kids: list[tuple[Label, Span]] = []
        for span in trace.spans:  # a trace's spans are in start order
            if span.parent_span_id == parent.span_id:
                kids.append(((span.name, seen.get(span.name, 0)), span))
                seen[span.name] = seen.get(span.name, 0) + 1
        if kids:
            out[parent.span_id] = kids
    return out


def _sequential_pairs(rt: RequestType) -> list[tuple[Label, Label]]:
    """Consecutive siblings, the first ending before the second starts, in every trace
    holding both: two sequential calls.  Siblings whose order varies between traces
    (services started in parallel) are concurrent: swapping them gives a trace the
    unchanged system also makes, which no test can tell apart without false alarms."""
    pairs: set[tuple[Label, Label]] = set()
    broken: set[tuple[Label, Label]] = set()
    for trace in rt.traces:
        for kids in _labelled(trace).values():
            spans = dict(kids)
            for (la, a), (lb, b) in pairwise(kids):
                if la[0] != lb[0] and (a.end_time_unix_nano or 0) <= (
                        b.start_time_unix_nano or 0):
                    pairs.add((la, lb))
            for la, lb in pairs:
                a, b = spans.get(la), spans.get(lb)
                if a is not None and b is not None and (a.end_time_unix_nano or 0) > (
                        b.start_time_unix_nano or 0):
                    broken.add((la, lb))
    for trace in rt.traces:  # pairs found in a later trace, broken in an earlier one
        for kids in _labelled(trace).values():
            spans = dict(kids)
            for la, lb in pairs - broken:
                a, b = spans.get(la), spans.get(lb)
                if a is not None and b is not None and (a.end_time_unix_nano or 0) > (
                        b.start_time_unix_nano or 0):
                    broken.add((la, lb))
    return sorted(pairs - broken)


def _reorder(corpus: Corpus, rt: RequestType,
             rng: random.Random) -> tuple[str, set[str]] | None:
    pairs = _sequential_pairs(rt)
    if not pairs:
        return None
    first, then = rng.choice(pairs)
    for trace in rt.traces:
        for kids in _labelled(trace).values():
            spans = dict(kids)
            a, b = spans.get(first), spans.get(then)
            if a is None or b is None:
                continue
            sa, ea = a.start_time_unix_nano or 0, a.end_time_unix_nano or 0
            sb, eb = b.start_time_unix_nano or 0, b.end_time_unix_nano or 0
            _shift(trace, b, sa - sb)
            _shift(trace, a, (sa + (eb - sb) + (sb - ea)) - sa)
    return f"{_label(then)} now runs before {_label(first)}", set()


def _label(label: Label) -> str:
    name, k = label
    return repr(name) if k == 0 else f"{name!r} (#{k + 1})"


def _error(corpus: Corpus, rt: RequestType, rng: random.Random) -> tuple[str, set[str]] | None:
    name = rng.choice(_names(rt))
    for trace in rt.traces:
        for span in trace.spans:
            if span.name == name:
                span.status = "ERROR"
    return f"{name!r} fails (status ERROR)", set()


def _status_code(corpus: Corpus, rt: RequestType,
                 rng: random.Random) -> tuple[str, set[str]] | None:
    names = sorted({s.name for t in rt.traces for s in t.spans
                    if any(k in s.attributes for k in STATUS_CODE_KEYS)})
    if not names:
        return None
    name = rng.choice(names)
    for trace in rt.traces:
        for span in trace.spans:
            for key in STATUS_CODE_KEYS:
                if span.name == name and key in span.attributes:
                    span.attributes[key] = 503 if str(span.attributes[key]) == "500" else 500
    return f"{name!r} answers status code 500", set()


def _rename(corpus: Corpus, rt: RequestType, rng: random.Random) -> tuple[str, set[str]] | None:
    name = rng.choice(_names(rt))
    for trace in rt.traces:
        for span in trace.spans:
            if span.name == name:
                span.name = f"{name} v2"
    return f"{name!r} renamed {name + ' v2'!r}", set()


def _slower(corpus: Corpus, rt: RequestType, rng: random.Random) -> tuple[str, set[str]] | None:
    services = sorted({s.service_name for t in rt.traces for s in t.spans if s.service_name})
    if not services:
        return None
    service = rng.choice(services)
    for trace in corpus.traces:  # the service is slower wherever it runs
        growth = [(s.end_time_unix_nano, int(SLOWDOWN * (s.end_time_unix_nano
                                                          - s.start_time_unix_nano)))
                  for s in trace.spans if s.service_name == service
                  and s.start_time_unix_nano is not None and s.end_time_unix_nano is not None]
        if not growth:
            continue
        for span in trace.spans:
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            if start is not None:
                span.start_time_unix_nano = start + sum(d for e, d in growth if e < start)
            if end is not None:
                span.end_time_unix_nano = end + sum(d for e, d in growth if e <= end)
    return f"service {service!r} is 80 % slower (every span of it, in every request type)", set()


OPERATORS: dict[str, Callable[[Corpus, RequestType, random.Random],
                              tuple[str, set[str]] | None]] = {
    "drop-call": _drop,
    "add-edge": _add_edge,
    "reorder-siblings": _reorder,
    "error-status": _error,
    "status-code": _status_code,
    "rename-span": _rename,
    "latency+80%": _slower,
}
"""Operator name -> function; the bench reports a score per operator."""


CORPUS_WIDE = frozenset({"latency+80%"})
"""Operators whose change is the same whichever request type drew it (a service slower
everywhere): drawn by two request types, it is one mutant, not two."""


def mutants(spans: list[Span], seed: int = 0, draws: int = 1) -> list[Mutant]:
    """Every operator on every request type of ``spans`` (those that apply), ``draws``
    seeded targets each, different while there are enough (a corpus-wide mutant drawn
    again by another request type counts once)."""
    corpus = build_corpus(spans, "<mutants>")
    out: list[Mutant] = []
    seen: set[tuple[str, str, str]] = set()
    for rt in corpus.types:
        for operator in OPERATORS:
            for draw in range(draws):
                mutant = mutate(spans, operator, rt.key, seed, draw)
                if mutant is None:
                    continue
                key = (operator, "" if operator in CORPUS_WIDE else rt.key,
                       mutant.description)
                if key not in seen:
                    seen.add(key)
                    out.append(mutant)
    return out
