"""clnrm traces itself, with the OpenTelemetry SDK.

Every run produces ``clnrm.run`` > ``clnrm.test`` > ``clnrm.container.start`` /
``clnrm.step`` spans. They are kept in memory so a test can put expectations
on clnrm's own behaviour (the self-test does), are merged into the test's span
set, and after the run the CLI forwards them with the services' spans to
``--otel-endpoint`` (:mod:`clnrm.otel.forward`) so runs show up in Jaeger or
Tempo; ``endpoint`` here is for library callers (own spans only).
Containers receive the test span's W3C ``TRACEPARENT`` so their spans join
the same trace.

The SDK is imported when a run starts, never for ``clnrm --help``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from clnrm.otel.span import Span, SpanEvent

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Span as OtelSpan

SERVICE_NAME = "clnrm"


class SelfTracer:
    """One tracer provider per run, so parallel runs in one process never mix spans."""

    def __init__(self, run_id: str, *, endpoint: str | None = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from clnrm import __version__

        self.provider = TracerProvider(resource=Resource.create({
            "service.name": SERVICE_NAME, "service.version": __version__, "clnrm.run": run_id}))
        self._memory = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self._memory))
        # ``endpoint``: own spans are forwarded once at shutdown, bounded, one warning on
        # failure (clnrm.otel.forward); the SDK's exporter retried for seconds and logged
        # every attempt.
        self._export_to = None
        if endpoint:
            from clnrm.otel.forward import resolve_target

            self._export_to = resolve_target(endpoint)
        self.tracer = self.provider.get_tracer("clnrm")

    @contextmanager
    def span(self, name: str, *, parent: Context | None = None,
             attributes: dict[str, Any] | None = None) -> Iterator[OtelSpan]:
        """A span that records exceptions and sets ERROR status when the block raises."""
        with self.tracer.start_as_current_span(name, context=parent,
                                               attributes=attributes or {}) as span:
            yield span

    @staticmethod
    def context_of(span: OtelSpan) -> Context:
        from opentelemetry import trace

        return trace.set_span_in_context(span)

    @staticmethod
    def context_of_current() -> Context:
        """The calling thread's context, to hand to spans started in helper threads."""
        from opentelemetry import context

        return context.get_current()

    @staticmethod
    def traceparent(span: OtelSpan) -> str:
        ctx = span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"

    @staticmethod
    def trace_id(span: OtelSpan) -> str:
        return f"{span.get_span_context().trace_id:032x}"

    def spans_under(self, root: OtelSpan) -> list[Span]:
        """clnrm's own finished spans in ``root``'s subtree (root included).

        All tests of a run share the run's trace, so a trace id alone would
        mix the spans of tests that ran before or beside this one.
        """
        root_id = root.get_span_context().span_id
        finished = self._memory.get_finished_spans()
        parent_of = {s.context.span_id: (s.parent.span_id if s.parent else None)
                     for s in finished}

        def inside(span_id: int | None) -> bool:
            for _ in range(256):  # bounded walk: a malformed chain must not hang
                if span_id is None:
                    return False
                if span_id == root_id:
                    return True
                span_id = parent_of.get(span_id)
            return False

        return [to_span(s) for s in finished if inside(s.context.span_id)]

    def finished_spans(self) -> list[Span]:
        """Every span of this run clnrm has finished, as clnrm spans: what
        :mod:`clnrm.otel.forward` sends beside the services' spans after the run."""
        return [to_span(s) for s in self._memory.get_finished_spans()]

    def shutdown(self) -> None:
        """End the provider; with ``endpoint``, export this run's own spans (one bounded
        attempt, one warning line when the collector is not there)."""
        self.provider.shutdown()
        if self._export_to is not None:
            from clnrm.otel.forward import forward_spans

            report = forward_spans(self.finished_spans(), self._export_to)
            if not report.ok:
                import structlog

                structlog.get_logger("clnrm.otel").warning("otel.export_failed",
                                                           reason=report.warning())


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def to_span(s: ReadableSpan) -> Span:
    """SDK span -> clnrm Span, following span.py's conventions."""
    ctx = s.context
    return Span(
        name=s.name,
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=f"{s.parent.span_id:016x}" if s.parent is not None else None,
        start_time_unix_nano=s.start_time,
        end_time_unix_nano=s.end_time,
        kind=s.kind.name.lower(),
        status=s.status.status_code.name,
        status_message=s.status.description or "",
        attributes={k: _plain(v) for k, v in (s.attributes or {}).items()},
        events=[SpanEvent(e.name, e.timestamp, {k: _plain(v) for k, v in
                                                 (e.attributes or {}).items()})
                for e in s.events],
        resource={k: _plain(v) for k, v in s.resource.attributes.items()},
        scope=s.instrumentation_scope.name if s.instrumentation_scope else None,
    )
