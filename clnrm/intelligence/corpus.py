"""Spans grouped into traces and traces into request types: what mining walks over.

A request type is the root span's service and name (``frontend GET /users``); a root
named only by its HTTP method (``GET``, as some instrumentations name server spans) adds
its ``http.route`` (or ``url.path``), so requests to different routes stay apart.
A trace's root is its span without a parent in the trace (the earliest one if a
broken export has several).  Orphans whose parent is missing are kept, with no
parent name, so a partial export still mines.
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
    grouped: dict[str, list[Trace]] = defaultdict(list)
    for trace in traces:
        grouped[type_key(trace.root)].append(trace)
    types = [RequestType(key=key, root=group[0].root.name, service=group[0].root.service_name,
                         traces=group) for key, group in sorted(grouped.items())]
    return Corpus(source=str(source), traces=traces, types=types)


def load_corpus(path: Path | str) -> Corpus:
    """Read OTLP JSON, Jaeger JSON or spans.jsonl (bad input: a located ScenarioError)."""
    from clnrm.otel.tracefile import load_trace_file

    return build_corpus(load_trace_file(path, allow_stdin=True), path)
