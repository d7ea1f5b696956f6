"""Mine what a system always (or reliably) does, per request type.

The generated files are judged with ``clnrm run FILE --traces EXPORT``, where
every validator looks at the whole export, so two scopes are mined:

- per request type, *existential* patterns the type's traces show (a span of
  this name under that parent, a constant attribute on it, sibling order),
  each with its support among that type's traces;
- over the whole corpus, *universal* rules for the names the type uses
  (statuses, time windows, order, forbidden edges): a rule is only kept when
  no trace of any type breaks it, since the validators judge every span of a
  name, whichever request made it.

Noise (ids, timestamps, user names) is told apart from invariants the way
Diffy does: the traces are split into two independent halves with the seed,
and a value that differs between halves, or is new on most spans, is noise.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Final

import structlog

from clnrm.intelligence.corpus import Corpus, RequestType, Trace
from clnrm.intelligence.patterns import (
    AttributeProfile,
    CountPattern,
    ErrorRatePattern,
    Evidence,
    ForbiddenEdge,
    LatencyPattern,
    MinedPatterns,
    MiningOptions,
    OrderPattern,
    RequestTypePatterns,
    SpanPattern,
    StatusPattern,
    WindowPattern,
    existential_confidence,
    universal_confidence,
)
from clnrm.otel.span import Span
from clnrm.validators._text import attr_text
from clnrm.validators.index import is_glob
from clnrm.validators.span import self_time_ns

log = structlog.get_logger("clnrm.intelligence")

NOISY_KEY_TOKENS: Final = frozenset({
    "id", "ids", "uuid", "guid", "session", "sessionid", "timestamp", "time", "date",
    "datetime", "nonce", "token", "requestid", "userid", "traceid", "spanid", "correlation",
    "ip", "peer", "pid", "thread", "hostname"})
"""Key words that name per-request or per-process values, whatever they hold."""
TEST_IDENTITY_KEYS: Final = frozenset({"clnrm.file", "clnrm.test", "clnrm.run"})
"""clnrm's own span attributes naming the test file and run: a generated test has others."""
ENCODING_KEYS: Final = frozenset({
    "span.kind", "otel.status_code", "otel.status_description", "otel.scope.name",
    "otel.scope.version", "otel.library.name", "otel.library.version"})
"""Jaeger's tags for OTLP fields (kind, status, scope), kept as attributes on load: an
OTLP export of the same system has no such attributes, and kind and status are asserted
through their own keys."""
_NOISY_VALUE: Final = re.compile(
    r"^(?:[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{12,}|\d{10,}|\d{4}-\d\d-\d\dT.*)$")
"""UUIDs, long hex ids, epoch timestamps and ISO datetimes."""
MISS_PROBABILITY: Final = 1e-6
"""Latency envelopes: chance that a same-sized export of the unchanged system has no
span under the bound (before the tolerance widens it)."""
MIN_LATENCY_SPANS: Final = 8
MIN_FLOOR_HALF: Final = 4
"""The floor model needs this many timed spans in each half."""
FLOOR_QUANTILE: Final = 0.25
"""The floor model's cluster: each half's fastest quarter."""
MAX_ENUMERATION: Final = 8
MIN_WINDOW_TRACES: Final = 5
"""Containment the span tree does not imply needs this many traces showing it: a race
(a service's start-up span inside clnrm's container start in 21 of 22 demo runs) holds
in three runs often enough to fail a fourth."""
SPREAD_TOLERANCE: Final = 0.15
"""The smallest latency tolerance; the halves' spread, doubled, widens it."""


@dataclass(slots=True)
class _Global:
    """Corpus-wide facts: what every validator will see in a same-shaped export."""

    half: dict[str, int]
    types: dict[str, RequestType] = field(default_factory=dict)
    name_types: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    durations: dict[str, list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list))
    self_times: dict[str, list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list))
    """Self time (duration minus the children's union, as ``self_ms`` judges it) per name."""
    parents: set[str] = field(default_factory=set)
    """Names with at least one child span somewhere: only their self time differs."""
    traces_with: dict[str, list[Trace]] = field(default_factory=lambda: defaultdict(list))
    calls: set[tuple[str, str]] = field(default_factory=set)
    edges: set[tuple[str, str]] = field(default_factory=set)
    entries: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    window_index: dict[str, dict[str, tuple[list[int], list[int]]]] = field(
        default_factory=dict)
    extremes: dict[str, dict[str, tuple[int | None, int | None]]] = field(default_factory=dict)
    container_names: dict[str, set[str]] = field(default_factory=dict)


def _collect(corpus: Corpus, seed: int) -> _Global:
    ids = [t.trace_id for t in corpus.traces]
    random.Random(seed).shuffle(ids)
    facts = _Global(half={tid: i % 2 for i, tid in enumerate(ids)},
                    types={rt.key: rt for rt in corpus.types})
    for rt in corpus.types:
        for trace in rt.traces:
            kids: dict[str, list[Span]] = defaultdict(list)
            for span in trace.spans:
                up = trace.parent_of.get(span.span_id)
                if up is not None:
                    kids[up.span_id].append(span)
                    facts.parents.add(up.name)
            for span in trace.spans:
                own = self_time_ns(span, kids.get(span.span_id, ()))
                if own is not None:
                    facts.self_times[span.name].append((facts.half[trace.trace_id], own / 1e6))
            seen: set[str] = set()
            for span in trace.spans:
                facts.name_types[span.name].add(rt.key)
                facts.statuses[span.name][span.status] += 1
                if span.duration_ms is not None:
                    facts.durations[span.name].append((facts.half[trace.trace_id],
                                                       span.duration_ms))
                if span.name not in seen:
                    seen.add(span.name)
                    facts.traces_with[span.name].append(trace)
                parent = trace.parent_of.get(span.span_id)
                if parent is not None:
                    facts.edges.add((parent.name, span.name))
                svc = span.service_name
                if svc is None:
                    continue
                if parent is None:
                    facts.entries[svc].add(span.name)
                elif parent.service_name is not None and parent.service_name != svc:
                    facts.calls.add((parent.service_name, svc))
                    facts.entries[svc].add(span.name)
    return facts


def mine(corpus: Corpus, options: MiningOptions | None = None) -> MinedPatterns:
    """Every request type's patterns; the same corpus, options and seed give the same result."""
    options = options or MiningOptions()
    facts = _collect(corpus, options.seed)
    types = [_mine_type(rt, facts, options) for rt in corpus.types]
    log.info("mined", source=corpus.source, traces=len(corpus.traces), types=len(types))
    return MinedPatterns(source=corpus.source, options=options, traces=len(corpus.traces),
                         spans=corpus.span_count, request_types=types)


def _judged(n: int, options: MiningOptions) -> int:
    """How many of ``n`` source items a judged export holds."""
    return max(1, round(n * options.export_share))


def _mine_type(rt: RequestType, facts: _Global, options: MiningOptions) -> RequestTypePatterns:
    n = len(rt.traces)
    groups: dict[tuple[str, str | None, str], list[tuple[int, Span]]] = defaultdict(list)
    support: Counter[tuple[str, str | None, str]] = Counter()
    for trace in rt.traces:
        keys: set[tuple[str, str | None, str]] = set()
        for span in trace.spans:
            key = (span.name, trace.parent_name(span), span.kind)
            groups[key].append((facts.half[trace.trace_id], span))
            keys.add(key)
        support.update(keys)
    spans: list[SpanPattern] = []
    profiles: list[AttributeProfile] = []
    for key in sorted(groups, key=lambda k: (k[0], k[1] or "", k[2])):
        k = support[key]
        if k / n < options.min_pattern_frequency:
            continue
        name, parent, kind = key
        shape = _attribute_profiles(name, parent, groups[key], options)
        profiles.extend(shape)
        constants = {p.key: p.values[0] for p in shape if p.verdict == "constant"
                     and p.evidence.confidence >= options.confidence_threshold}
        constants.update({p.key: p.dominant for p in shape if p.dominant is not None
                          and p.dominant_confidence >= options.confidence_threshold})
        status, seen = Counter(s.status for _, s in groups[key]).most_common(1)[0]
        m = len(groups[key])
        usual = status if seen * 2 > m and existential_confidence(
            seen, m, _judged(m, options)) >= options.confidence_threshold else None
        spans.append(SpanPattern(
            name=name, parent=parent, kind=kind, service=groups[key][0][1].service_name,
            attrs=constants, status=usual,
            evidence=Evidence(support=k, total=n, confidence=existential_confidence(
                k, n, _judged(n, options)))))
    names = sorted({p.name for p in spans})
    return RequestTypePatterns(
        key=rt.key, root=rt.root, service=rt.service, traces=n, spans=spans,
        attributes=profiles, order=_order(rt, facts), counts=_counts(rt, facts, names, options),
        status=_status(facts, names), error_rates=_error_rates(facts, names, options),
        windows=_windows(rt, facts, names), latency=_latency(facts.durations, names, options),
        self_time=_latency(facts.self_times, [n for n in names if n in facts.parents], options),
        forbidden=_forbidden(rt, facts, options))


def _noisy_key(key: str) -> bool:
    tokens = [t for t in re.split(r"[._\-\s]+", key.lower()) if t]
    return any(t in NOISY_KEY_TOKENS or (len(t) > 2 and t.endswith("id") and t[:-2].isalpha()
                                         and t not in {"paid", "valid", "void", "android"})
               for t in tokens)


def _attribute_profiles(name: str, parent: str | None, samples: list[tuple[int, Span]],
                        options: MiningOptions) -> list[AttributeProfile]:
    """Each attribute key on every span of one shape: constant, enumeration or noise."""
    m = len(samples)
    keys = sorted(set().union(*(s.attributes for _, s in samples)))
    out: list[AttributeProfile] = []
    for key in keys:
        values = [(half, attr_text(s.attributes.get(key))) for half, s in samples]
        present = [(h, v) for h, v in values if v is not None]
        if len(present) < m:
            continue  # an optional attribute asserts nothing
        texts = [v for _, v in present]
        distinct = sorted(set(texts))
        halves = [{v for h, v in present if h == i} for i in (0, 1)]
        evidence = Evidence(support=m, total=m, unit="spans", confidence=universal_confidence(m))
        verdict, reason = _classify(key, texts, distinct, halves)
        dominant, dominant_confidence = None, 0.0
        if verdict == "enumeration":
            value, count = Counter(texts).most_common(1)[0]
            if count * 2 > m:
                dominant, dominant_confidence = value, existential_confidence(
                    count, m, _judged(m, options))
        out.append(AttributeProfile(
            span=name, parent=parent, key=key, verdict=verdict,
            values=distinct if verdict != "noise" else [], distinct=len(distinct),
            reason=reason, dominant=dominant, dominant_confidence=dominant_confidence,
            evidence=evidence))
    return out


def _classify(key: str, texts: list[str], distinct: list[str],
              halves: list[set[str]]) -> tuple[str, str]:
    if key in ENCODING_KEYS:
        return "noise", "a Jaeger tag for an OTLP field, asserted as kind or status"
    if key in TEST_IDENTITY_KEYS:
        return "noise", "it names the test file or run, which the generated test changes"
    if _noisy_key(key):
        return "noise", "its name says it identifies a request, user, time or process"
    if any(_NOISY_VALUE.match(v) for v in distinct):
        return "noise", "its values look like ids or timestamps"
    if len(distinct) == 1:
        return "constant", "one value on every span, in both halves" if all(halves) else \
            "one value on every span (too few traces to compare halves)"
    if len(texts) >= 4 and len(distinct) / len(texts) > 0.5:
        return "noise", f"{len(distinct)} values on {len(texts)} spans (high cardinality)"
    a, b = halves
    if a and b and len(a & b) / len(a | b) < 0.5:
        return "noise", "the two independent halves show different values"
    if len(distinct) <= MAX_ENUMERATION:
        return "enumeration", "the same few values in both halves"
    return "noise", f"{len(distinct)} different values"


def _extremes(facts: _Global, trace: Trace) -> dict[str, tuple[int | None, int | None]]:
    """Per name in ``trace``: its spans' latest end and earliest start (None when a span
    lacks it); built once per trace, so order checks do not rescan a large trace."""
    found = facts.extremes.get(trace.trace_id)
    if found is None:
        ends: dict[str, list[int | None]] = defaultdict(list)
        starts: dict[str, list[int | None]] = defaultdict(list)
        for span in trace.spans:
            ends[span.name].append(span.end_time_unix_nano)
            starts[span.name].append(span.start_time_unix_nano)
        found = {name: (None if None in ends[name] else max(ends[name]),  # type: ignore[type-var]
                        None if None in starts[name] else min(starts[name]))  # type: ignore[type-var]
                 for name in ends}
        facts.extremes[trace.trace_id] = found
    return found


def _sequential(facts: _Global, trace: Trace, first: str, then: str) -> bool | None:
    """Within ``trace``: True when every ``first`` ends before any ``then`` starts."""
    extremes = _extremes(facts, trace)
    if first not in extremes or then not in extremes:
        return None
    last_end, first_start = extremes[first][0], extremes[then][1]
    if last_end is None or first_start is None:
        return False
    return last_end <= first_start


def _order(rt: RequestType, facts: _Global) -> list[OrderPattern]:
    """Consecutive siblings whose order no trace of the corpus ever breaks."""
    candidates: Counter[tuple[str, str, str]] = Counter()
    for trace in rt.traces:
        children: dict[str, list[Span]] = defaultdict(list)
        names: dict[str, str] = {}
        for span in trace.spans:
            parent = trace.parent_of.get(span.span_id)
            if parent is not None:
                children[parent.span_id].append(span)
                names[parent.span_id] = parent.name
        pairs: set[tuple[str, str, str]] = set()
        for pid, kids in children.items():
            for a, b in pairwise(kids):
                if a.name != b.name:
                    pairs.add((names[pid], a.name, b.name))
        candidates.update(pairs)
    out: list[OrderPattern] = []
    for (under, first, then), _ in sorted(candidates.items()):
        if is_glob(first) or is_glob(then):
            continue
        with_then = {t.trace_id for t in facts.traces_with[then]}
        shared = [t for t in facts.traces_with[first] if t.trace_id in with_then]
        verdicts = [_sequential(facts, t, first, then) for t in shared]
        if not shared or not all(verdicts):
            continue
        out.append(OrderPattern(first=first, then=then, parent=under, evidence=Evidence(
            support=len(shared), total=len(shared),
            confidence=universal_confidence(len(shared)))))
    return out


def _counts(rt: RequestType, facts: _Global, names: list[str],
            options: MiningOptions) -> list[CountPattern]:
    """Totals of each name over every request type making it, with a 4-sigma range.

    The total is stable for an export with the source's requests (a test's load step,
    a scenario's runs): each type contributes its mean per trace times its traces, and
    its per-trace variance times its traces to the spread.
    """
    if not options.counts:
        return []
    n = len(rt.traces)
    out: list[CountPattern] = []
    for name in names:
        if is_glob(name):
            continue
        total = variance = 0.0
        mine_per: list[int] = []
        for key in sorted(facts.name_types[name]):
            traces = facts.types[key].traces
            per = [sum(1 for s in t.spans if s.name == name) for t in traces]
            judged = _judged(len(traces), options)
            total += statistics.fmean(per) * judged
            variance += statistics.pvariance(per) * judged
            if key == rt.key:
                mine_per = per
        spread = 4 * math.sqrt(variance)
        out.append(CountPattern(
            name=name, per_trace_min=min(mine_per), per_trace_max=max(mine_per),
            gte=max(0, math.floor(total - spread + 1e-9)),
            lte=math.ceil(total + spread - 1e-9),
            also_in=sorted(facts.name_types[name] - {rt.key}),
            evidence=Evidence(support=sum(1 for c in mine_per if c), total=n,
                              confidence=universal_confidence(n))))
    return out


def _status(facts: _Global, names: list[str]) -> list[StatusPattern]:
    out: list[StatusPattern] = []
    for name in names:
        seen = facts.statuses[name]
        if len(seen) == 1 and not is_glob(name):
            status, m = next(iter(seen.items()))
            out.append(StatusPattern(name=name, status=status, evidence=Evidence(
                support=m, total=m, unit="spans", confidence=universal_confidence(m))))
    return out


def _error_rates(facts: _Global, names: list[str],
                 options: MiningOptions) -> list[ErrorRatePattern]:
    out: list[ErrorRatePattern] = []
    for name in names:
        seen = facts.statuses[name]
        errors, m = seen.get("ERROR", 0), sum(seen.values())
        if not errors:
            continue
        miss = (1 - errors / m) ** _judged(m, options)  # chance an export shows no error
        out.append(ErrorRatePattern(
            name=name, errors=errors, spans=m, rate=round(errors / m, 4),
            assert_error_path=options.include_error_scenarios
            and 1 - miss >= options.confidence_threshold,
            evidence=Evidence(support=errors, total=m, unit="spans",
                              confidence=round(1 - miss, 4))))
    return out


def _inside(trace: Trace, span: Span, outer: str) -> bool:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start is None or end is None:
        return False
    return any(o.name == outer and o.start_time_unix_nano is not None
               and o.end_time_unix_nano is not None
               and o.start_time_unix_nano <= start and end <= o.end_time_unix_nano
               for o in trace.spans)


def _windows(rt: RequestType, facts: _Global, names: list[str]) -> list[WindowPattern]:
    """Time containment the validators judge by name: the root's window, then the others.

    First the names every span of which, in any trace, lies inside this type's root span.
    Then containment the span tree does not imply: every span of a name inside a span of
    another name that is never its ancestor, as every request of a test step lies inside
    that step's ``clnrm.step`` span (the step's process makes it, but the request carries
    the test's trace context, not the step's) or a service's start-up span inside
    ``clnrm.container.start``.  Steps or calls that change places break it, which sibling
    order between repeated names (judged by name, any span of it) cannot show.
    """
    if is_glob(rt.root):
        return []
    out: list[WindowPattern] = []
    inside: list[str] = []
    checked = 0
    for name in names:
        if name == rt.root or is_glob(name):
            continue
        spans = [(t, s) for t in facts.traces_with[name] for s in t.spans if s.name == name]
        if all(_inside(t, s, rt.root) for t, s in spans):
            inside.append(name)
            checked += len(spans)
    if inside:
        out.append(WindowPattern(outer=rt.root, contains=inside, evidence=Evidence(
            support=checked, total=checked, unit="spans",
            confidence=universal_confidence(checked))))
    by_outer: dict[str, list[str]] = defaultdict(list)
    for name in names:
        if name == rt.root or is_glob(name) or len(facts.traces_with[name]) < MIN_WINDOW_TRACES:
            continue
        outers = _containers(facts, name)
        for outer in sorted(outers - {rt.root, name}):
            if not is_glob(outer) and outer in names:
                by_outer[outer].append(name)
    for outer in sorted(by_outer):
        contained = by_outer[outer]
        traces = min(len(facts.traces_with[n]) for n in contained)  # the weakest name's
        out.append(WindowPattern(outer=outer, contains=contained,
                                 evidence=Evidence(support=traces, total=traces,
                                                   confidence=universal_confidence(traces))))
    return out


def _window_index(facts: _Global, trace: Trace) -> dict[str, tuple[list[int], list[int]]]:
    """Per name in ``trace``: its spans' starts in order and the running maximum of their
    ends, so "does some span of this name hold [s, e]" is one bisection (a load test's
    run is one trace of thousands of spans); built once per trace."""
    index = facts.window_index.get(trace.trace_id)
    if index is None:
        timed: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for o in trace.spans:
            if o.start_time_unix_nano is not None and o.end_time_unix_nano is not None:
                timed[o.name].append((o.start_time_unix_nano, o.end_time_unix_nano))
        index = {}
        for o_name, windows in timed.items():
            windows.sort()
            index[o_name] = ([w[0] for w in windows],
                             list(accumulate((w[1] for w in windows), max)))
        facts.window_index[trace.trace_id] = index
    return index


def _held_by(index: dict[str, tuple[list[int], list[int]]], outer: str, start: int,
             end: int) -> bool:
    starts, max_end = index.get(outer, ([], []))
    i = bisect_right(starts, start)
    return i > 0 and max_end[i - 1] >= end


def _containers(facts: _Global, name: str) -> set[str]:
    """Names of which, in every trace of the corpus, some span (never an ancestor of it)
    holds each span of ``name`` inside its time window; cached per name."""
    if name in facts.container_names:
        return facts.container_names[name]
    common: set[str] | None = None
    ancestors: set[str] = set()
    for trace in facts.traces_with[name]:
        index = _window_index(facts, trace)
        for span in trace.spans:
            if span.name != name:
                continue
            parent, walked = trace.parent_of.get(span.span_id), {span.span_id}
            while parent is not None and parent.span_id not in walked:  # a broken export
                ancestors.add(parent.name)  # may hold a parent cycle
                walked.add(parent.span_id)
                parent = trace.parent_of.get(parent.span_id)
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            if start is None or end is None:
                common = set()
                break
            candidates = (set(index) - {name}) if common is None else common
            common = {o for o in candidates if _held_by(index, o, start, end)}
        if not common:
            break
    found = (common or set()) - ancestors
    facts.container_names[name] = found
    return found


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _latency(durations: dict[str, list[tuple[int, float]]], names: list[str],
             options: MiningOptions) -> list[LatencyPattern]:
    """Envelopes of ``durations`` (whole durations or self times), ``(half, ms)`` per span."""
    out: list[LatencyPattern] = []
    for name in names:
        timed = durations.get(name, [])
        n = len(timed)
        if n < MIN_LATENCY_SPANS or is_glob(name):
            continue
        values = [d for _, d in timed]
        judged = _judged(n, options)
        q = min(0.95, max(0.05, 1 - MISS_PROBABILITY ** (1 / judged)))
        at_q = _quantile(values, q)
        halves = [[d for h, d in timed if h == i] for i in (0, 1)]
        spread = 0.0
        if all(len(h) >= 4 for h in halves) and at_q > 0:
            spread = abs(_quantile(halves[0], q) - _quantile(halves[1], q)) / at_q
        tolerance = round(max(SPREAD_TOLERANCE, 2 * spread), 3)
        max_ms = round(max(at_q * (1 + tolerance), at_q + 0.01), 3)
        # the floor model judges an export at least as large as each half (a smaller one,
        # as one run of `--from`, has fewer chances to show its floor)
        floor = _floor(halves) if judged >= max(map(len, halves)) else None
        if floor is not None and floor[2] < max_ms:  # the tighter of the two models
            at_q, tolerance, max_ms = floor
        out.append(LatencyPattern(
            name=name, spans=n, p50_ms=round(_quantile(values, 0.5), 3),
            p95_ms=round(_quantile(values, 0.95), 3), quantile=round(q, 3),
            quantile_ms=round(at_q, 3), tolerance=tolerance, max_ms=max_ms,
            basis="quantile" if floor is None or floor[2] != max_ms else "floor",
            evidence=Evidence(support=sum(1 for v in values if v <= max_ms), total=n,
                              unit="spans", confidence=round(1 - (1 - q) ** judged, 4))))
    return out


def _floor(halves: list[list[float]]) -> tuple[float, float, float] | None:
    """The floor model: ``(floor, tolerance, bound)`` from the two halves' fastest spans.

    Contention only adds delay, so the fastest span of a name is its most stable
    figure (the performance layer judges runs on their low quantile for the same
    reason): a heavy, load-driven right tail moves the quantile the iid model needs
    (for ten spans, the 75th percentile) by multiples, the minimum hardly at all.
    The bound is the slower half's minimum widened by the largest of 15 %, twice the
    gap between the halves' minima (a floor that moves with the machine's load) and the
    spread of each half's fastest quarter above its minimum (no floor at all, as in a
    lognormal service time); the quantile model's bound is kept when it is tighter.
    None when a half has fewer than four timed spans.
    """
    if not all(len(h) >= MIN_FLOOR_HALF for h in halves):
        return None
    lo, hi = sorted(min(h) for h in halves)
    if lo <= 0:
        return None
    # a floor is a cluster: each half's fastest quarter sits on it (no floor, as in a
    # lognormal service time, spreads the quarter and widens the bound with it)
    cluster = max(_quantile(h, FLOOR_QUANTILE) / min(h) for h in halves)
    tolerance = round(max(SPREAD_TOLERANCE, 2 * (hi / lo - 1), cluster - 1), 3)
    return hi, tolerance, round(max(hi * (1 + tolerance), hi + 0.01), 3)


def _forbidden(rt: RequestType, facts: _Global, options: MiningOptions) -> list[ForbiddenEdge]:
    """Callers of this type × entry spans of services their service never called."""
    callers: dict[str, set[str]] = defaultdict(set)
    for trace in rt.traces:
        if trace.root.service_name is not None:  # a leaf root may start calling, too
            callers[trace.root.service_name].add(trace.root.name)
        for span in trace.spans:
            parent = trace.parent_of.get(span.span_id)
            if parent is not None and parent.service_name is not None:
                callers[parent.service_name].add(parent.name)
    n = len(rt.traces)
    evidence = Evidence(support=n, total=n, confidence=universal_confidence(n))
    out: list[ForbiddenEdge] = []
    pairs: set[tuple[str, str]] = set()
    for source in sorted(callers):
        for target in sorted(facts.entries):
            if target == source or (source, target) in facts.calls:
                continue
            for caller in sorted(callers[source]):
                for child in sorted(facts.entries[target]):
                    if len(out) >= options.max_forbidden_edges:
                        return out
                    if not (is_glob(caller) or is_glob(child) or (caller, child) in pairs
                            or (caller, child) in facts.edges):
                        pairs.add((caller, child))
                        out.append(ForbiddenEdge(parent=caller, child=child,
                                                 from_service=source, to_service=target,
                                                 evidence=evidence))
    return out
