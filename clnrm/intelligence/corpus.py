"""Spans grouped into traces and traces into request types: what mining walks over.

A request type is the root span's service and name (``frontend GET /users``); a root
named only by its HTTP method (``GET``, as some instrumentations name server spans) adds
its ``http.route`` (or ``url.path``), so requests to different routes stay apart.
A trace's root is its span without a parent in the trace (the earliest one if a
broken export has several).  Orphans whose parent is missing are kept, with no
parent name, so a partial export still mines.  Traces of one root name whose roots
share no first call are split into request types by clustering (:func:`split_by_calls`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clnrm.otel.span import Span


@dataclass(slots=True)
class Trace:
    """One trace: its spans, their parents' names, and its root."""

    trace_id: str
    spans: list[Span]
    root: Span
    parent_of: dict[str, Span | None] = field(default_factory=dict)
    """span id -> parent span (``None`` for the root and orphans)."""

    def parent_name(self, span: Span) -> str | None:
        parent = self.parent_of.get(span.span_id)
        return parent.name if parent is not None else None

    def parent_service(self, span: Span) -> str | None:
        parent = self.parent_of.get(span.span_id)
        return parent.service_name if parent is not None else None


@dataclass(slots=True)
class RequestType:
    key: str
    root: str
    service: str | None
    traces: list[Trace]


@dataclass(slots=True)
class Corpus:
    """Every trace of a source, by request type (keys sorted: output order is stable)."""

    source: str
    traces: list[Trace]
    types: list[RequestType]

    @property
    def span_count(self) -> int:
        return sum(len(t.spans) for t in self.traces)


def _start(span: Span) -> int:
    return span.start_time_unix_nano if span.start_time_unix_nano is not None else 0


def build_trace(trace_id: str, spans: list[Span]) -> Trace:
    spans = sorted(spans, key=lambda s: (_start(s), s.name, s.span_id))
    by_id = {s.span_id: s for s in spans}
    parent_of: dict[str, Span | None] = {
        s.span_id: by_id.get(s.parent_span_id) if s.parent_span_id else None for s in spans}
    roots = [s for s in spans if parent_of[s.span_id] is None]
    return Trace(trace_id=trace_id, spans=spans, root=roots[0] if roots else spans[0],
                 parent_of=parent_of)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def type_key(root: Span) -> str:
    """``service name``; a root named only by its HTTP method adds its route (or path)."""
    name = root.name
    if name in HTTP_METHODS:
        route = root.attributes.get("http.route") or root.attributes.get("url.path")
        if isinstance(route, str) and route:
            name = f"{name} {route}"
    service = root.service_name
    return f"{service} {name}" if service else name


def build_corpus(spans: list[Span], source: str | Path = "<spans>") -> Corpus:
    """Group ``spans`` by trace id, then traces by request type."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    traces = [build_trace(tid, by_trace[tid]) for tid in sorted(by_trace)]
    by_root: dict[str, list[Trace]] = defaultdict(list)
    for trace in traces:
        by_root[type_key(trace.root)].append(trace)
    grouped: dict[str, list[Trace]] = {}
    for key, group in by_root.items():
        grouped.update(split_by_calls(key, group))
    types = [RequestType(key=key, root=group[0].root.name, service=group[0].root.service_name,
                         traces=group) for key, group in sorted(grouped.items())]
    return Corpus(source=str(source), traces=traces, types=types)


MIN_CLUSTER_TRACES = 2
"""A request type split off a shared root name needs this many traces."""


def _first_calls(trace: Trace) -> frozenset[str]:
    """What the root calls directly (service and name): the operation a request asks for."""
    return frozenset(f"{s.service_name or ''} {s.name}" for s in trace.spans
                     if trace.parent_of.get(s.span_id) is trace.root)


def split_by_calls(key: str, group: list[Trace]) -> dict[str, list[Trace]]:
    """Traces of one root name, clustered into request types where the name alone does not
    separate them (one ``POST /rpc`` serving ``GetUser`` and ``Charge``).

    Each trace is the set of calls its root makes; scikit-learn's agglomerative
    clustering (single linkage, Jaccard distance, threshold just under 1) joins traces
    that share a first call, so a type stays whole when its requests differ only in
    optional calls (a cache miss adds one beside the calls every request makes) and is
    split only into groups that share no first call at all.  Such a group is named by
    its most common first call: ``gw POST /rpc [users GetUser]``.  A group with a leaf
    root, with fewer than two distinct call sets, or without scikit-learn stays whole.
    """
    calls = [_first_calls(t) for t in group]
    if len(group) < 2 * MIN_CLUSTER_TRACES or len(set(calls)) < 2 or not all(calls):
        return {key: group}
    if frozenset.intersection(*calls):  # one call every request makes: one type, and
        return {key: group}  # scikit-learn (seconds to import) is not needed
    try:
        import numpy as np
        from sklearn.cluster import AgglomerativeClustering
    except ImportError:  # the [memory] extra brings it; without it, names alone
        return {key: group}
    vocabulary = sorted(set().union(*calls))
    matrix = np.array([[name in c for name in vocabulary] for c in calls], dtype=bool)
    labels = AgglomerativeClustering(n_clusters=None, metric="jaccard", linkage="single",
                                     distance_threshold=0.999).fit_predict(matrix)
    clusters: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        clusters[int(label)].append(i)
    if len(clusters) < 2 or min(map(len, clusters.values())) < MIN_CLUSTER_TRACES:
        return {key: group}
    out: dict[str, list[Trace]] = {}
    for members in clusters.values():
        counts: dict[str, int] = defaultdict(int)
        for i in members:
            for name in calls[i]:
                counts[name] += 1
        top = min(counts, key=lambda n: (-counts[n], n)).strip()
        out[f"{key} [{top}]"] = [group[i] for i in members]
    return out


def load_corpus(path: Path | str) -> Corpus:
    """Read OTLP JSON, Jaeger JSON or spans.jsonl (bad input: a located ScenarioError)."""
    from clnrm.otel.tracefile import load_trace_file

    return build_corpus(load_trace_file(path, allow_stdin=True), path)
