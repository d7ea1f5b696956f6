"""Runs of a test as traces (issue 15): repeated steps, their requests inside their spans,
and the mutants that swap them.

A clnrm run is one trace: ``clnrm.test`` holds the ``clnrm.step`` spans (the same name
for every step) and, beside them, the requests each step makes (they carry the test's
trace context, not the step's).  Name-based order cannot tell the 2nd step from the 5th;
the time containment "every request inside a clnrm.step" does, and it is not implied by
the span tree, so it has to be mined.
"""

from __future__ import annotations

from clnrm.execution import judge_spans
from clnrm.intelligence.corpus import build_corpus
from clnrm.intelligence.generate import generate_tests
from clnrm.intelligence.mine import MIN_WINDOW_TRACES, mine
from clnrm.intelligence.mutants import _sequential_pairs, mutants, mutate
from clnrm.intelligence.patterns import MiningOptions
from clnrm.otel.span import Span
from clnrm.results import ValidationStatus
from clnrm.scenario.loader import loads_scenario

MS = 1_000_000
STEPS = ("read", "write", "check")


def run_trace(t: int, *, jitter: int = 0, late_start: bool = False) -> list[Span]:
    """One run: three steps of 100 ms, each making one request 20..80 ms into it, and two
    start-up spans of services started in parallel (their order depends on ``t``)."""
    trace = f"{t + 1:032x}"
    root = Span(name="clnrm.test", trace_id=trace, span_id=f"{t + 1:08x}00000000",
                start_time_unix_nano=0, end_time_unix_nano=1000 * MS,
                resource={"service.name": "clnrm"})
    out = [root]

    def child(i: int, name: str, start: int, end: int, service: str,
              attrs: dict[str, str | int] | None = None) -> Span:
        return Span(name=name, trace_id=trace, span_id=f"{t + 1:08x}{i:08x}",
                    parent_span_id=root.span_id, start_time_unix_nano=start,
                    end_time_unix_nano=end, attributes=attrs or {},
                    resource={"service.name": service})

    first, second = (10, 40) if t % 2 else (40, 10)  # parallel start-ups: either order
    out.append(child(1, "redis.start", first * MS, (first + 20) * MS, "cache"))
    out.append(child(2, "postgresql.start", second * MS, (second + 25) * MS, "db"))
    for k, step in enumerate(STEPS):
        start = (200 + 150 * k + jitter) * MS
        out.append(child(10 + k, "clnrm.step", start, start + 100 * MS, "clnrm",
                         {"clnrm.step": step, "clnrm.step.index": k + 1}))
        request = start + (95 if late_start and k == 0 else 20) * MS
        out.append(child(20 + k, f"GET /{step}", request, request + 60 * MS, "api"))
    return out


def corpus(traces: int, **kw: object) -> list[Span]:
    return [s for t in range(traces) for s in run_trace(t, **kw)]  # type: ignore[arg-type]


def windows(spans: list[Span]) -> dict[str, list[str]]:
    mined = mine(build_corpus(spans), MiningOptions(confidence_threshold=0.8))
    return {w.outer: w.contains for w in mined.request_types[0].windows}


def test_each_steps_request_lies_inside_a_step_span() -> None:
    found = windows(corpus(6))
    assert found["clnrm.step"] == ["GET /check", "GET /read", "GET /write"]
    assert "clnrm.test" in found  # the root's window, as before


def test_few_runs_or_one_request_outside_its_step_assert_no_step_window() -> None:
    assert "clnrm.step" not in windows(corpus(MIN_WINDOW_TRACES - 1))
    late = corpus(5) + run_trace(5, late_start=True)  # its request ends after the step
    assert windows(late).get("clnrm.step") == ["GET /check", "GET /write"]


def failing(spans_from: list[Span], judged: list[Span]) -> bool:
    generation = generate_tests(spans_from, MiningOptions(confidence_threshold=0.8))
    bad = (ValidationStatus.FAIL, ValidationStatus.ERROR)
    return any(v.status in bad for t in generation.tests
               for v in judge_spans(loads_scenario(t.text, source=t.filename), judged))


def test_a_request_swapped_with_the_next_step_is_caught() -> None:
    source, fresh = corpus(8), corpus(8, jitter=3)
    assert not failing(source, source) and not failing(source, fresh)
    mutant = mutate(fresh, "reorder-siblings", "clnrm clnrm.test", draw=0)
    pairs = _sequential_pairs(build_corpus(fresh).types[0])
    assert mutant is not None and mutant.spans != fresh
    assert (("GET /read", 0), ("clnrm.step", 1)) in pairs
    swapped = next(m for m in (mutate(fresh, "reorder-siblings", "clnrm clnrm.test", draw=d)
                               for d in range(len(pairs)))
                   if m is not None and m.description.startswith("'clnrm.step' (#2)"))
    before = {s.span_id: s.start_time_unix_nano for s in fresh}
    moved = [s.name for s in swapped.spans if s.start_time_unix_nano != before[s.span_id]]
    assert sorted(set(moved)) == ["GET /read", "clnrm.step"]  # the pair, not the 1st step
    assert failing(source, swapped.spans)


def test_siblings_whose_order_varies_are_not_reorder_targets() -> None:
    pairs = _sequential_pairs(build_corpus(corpus(6)).types[0])
    names = {(a[0], b[0]) for a, b in pairs}
    assert ("redis.start", "postgresql.start") not in names
    assert ("postgresql.start", "redis.start") not in names


def test_draws_pick_different_targets_and_a_slower_service_counts_once() -> None:
    muts = mutants(corpus(6), draws=3)
    reorders = [m.description for m in muts if m.operator == "reorder-siblings"]
    assert len(reorders) == 3 == len(set(reorders))
    slower = [m.description for m in muts if m.operator == "latency+80%"]
    assert len(slower) == len(set(slower)) == 3
    assert mutants(corpus(6), draws=3) == muts  # seeded: the same set again
