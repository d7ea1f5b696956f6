"""Validation speed: 1,000,000 spans against 50 expectations.

Workload: 1,000 synthetic traces of 1,000 spans each (a server root, nine
service spans, 990 leaves spread over ~30 operation names), with attributes,
a shared per-service resource, ~1% ERROR leaves, events on ~5% of spans and
nanosecond timestamps nested the way real traces nest.  The 50 expectations
mix every validator (span, graph, counts, window, order, status,
hermeticity), including a few that fail, since failures are the slow path
(every candidate is examined to find the closest).

Timed: ``clnrm.validators.validate`` only (index build included); span
generation is timed and printed separately.  Peak RSS is the process maximum
(``getrusage``), so it includes the span list itself.

Baseline (measured in the same run): a naive validator that rescans the full
span list for every expectation (no shared index; a parent lookup builds its
own id map).  It runs on the first 100,000 spans and is extrapolated
linearly to 1,000,000 (each expectation is a fixed number of full passes,
so its cost is linear in the span count); clnrm is run on the same subset
and both must reach the same verdicts.  ratio = clnrm time / naive time.

Target (issue #20; it was 5 s and 1.5 GB): under 1.5 s and under 0.5 GB peak RSS on
this machine.  README quotes ``seconds`` and ``peak_rss_mb``.
Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clnrm.otel.span import AttrValue, Span, SpanEvent  # noqa: E402
from clnrm.results import ValidationStatus  # noqa: E402
from clnrm.scenario.expect import CountBound, Expect, SpanExpectation  # noqa: E402
from clnrm.validators import EXTERNAL_SERVICE_KEYS, summarize, validate  # noqa: E402
from clnrm.validators._text import attr_matches, bound_holds  # noqa: E402

TARGET_SECONDS = 1.5
TARGET_RSS_MB = 512
MS = 1_000_000

SERVICES = ["orders", "payments", "inventory", "shipping", "users", "search", "cart", "pricing",
            "reviews"]
LEAVES = ["db.query", "db.connect", "cache.get", "cache.set", "http.client", "queue.publish",
          "queue.consume", "auth.check", "render.template", "serialize.json", "feature.flag",
          "config.load", "rpc.call", "file.read", "metrics.flush", "lock.acquire", "lock.release",
          "validate.input", "compute.tax", "compute.discount", "fs.stat", "log.write",
          "retry.backoff", "index.lookup", "session.load", "token.verify", "blob.get",
          "blob.put", "dns.resolve.local", "tls.handshake.local"]


def generate(traces: int, per_trace: int, seed: int) -> list[Span]:
    """``traces`` trees of ``per_trace`` spans: root -> 9 service spans -> leaves."""
    rng = random.Random(seed)
    resources: dict[str, dict[str, AttrValue]] = {
        svc: {"service.name": svc, "deployment.environment": "test",
              "telemetry.sdk.language": "python"}
        for svc in ["api", *SERVICES]
    }
    spans: list[Span] = []
    leaves_per_service = (per_trace - 1 - len(SERVICES)) // len(SERVICES)
    sid = 0
    for t in range(traces):
        trace_id = f"{t + 1:032x}"
        base = 1_700_000_000_000 * MS + t * 2_000 * MS
        root_id = f"{sid + 1:016x}"
        sid += 1
        root_end = base + 1_000 * MS
        spans.append(Span("api.request", trace_id, root_id, None, base, root_end, kind="server",
                          status="OK", attributes={"http.method": "GET", "http.route": "/api/v1",
                                                   "http.status_code": 200},
                          resource=resources["api"]))
        for k, svc in enumerate(SERVICES):
            mid_id = f"{sid + 1:016x}"
            sid += 1
            mid_start = base + 5 * MS + k * 110 * MS
            spans.append(Span(f"{svc}.handle", trace_id, mid_id, root_id, mid_start,
                              mid_start + 100 * MS, kind="internal", status="OK",
                              attributes={"component": svc, "handler.version": 3},
                              resource=resources[svc]))
            for j in range(leaves_per_service):
                name = LEAVES[(j * 7 + k) % len(LEAVES)]
                start = mid_start + (j % 90) * MS + rng.randrange(MS)
                end = start + rng.randrange(50_000, 9 * MS)
                error = rng.random() < 0.01
                attrs: dict[str, Any] = {"component": svc, "thread.id": j % 8,
                                         "cached": j % 3 == 0}
                if name.startswith("db."):
                    attrs["db.system"] = "postgresql"
                events = ([SpanEvent("retry", end - 1000)] if rng.random() < 0.05 else [])
                sid += 1
                spans.append(Span(name, trace_id, f"{sid:016x}", mid_id, start, end,
                                  kind="client" if name.startswith(("db.", "http.", "rpc.")) else
                                  "internal", status="ERROR" if error else "UNSET",
                                  attributes=attrs, events=events, resource=resources[svc]))
    return spans


def expectations() -> Expect:
    """50 expectation entries/rules over every table (a few fail on purpose)."""
    return Expect.model_validate({
        "span": [
            {"name": "api.request", "kind": "server", "attrs": {"all": {"http.method": "GET",
                                                                     "http.status_code": 200}}},
            {"name": "orders.handle", "parent": "api.request", "duration_ms": {"max": 150}},
            {"name": "db.query", "kind": "client", "parent": "*.handle",
             "attrs": {"all": {"db.system": "postgresql"}}},
            {"name": "cache.*", "attrs": {"any": {"cached": True, "hit": True}}},
            {"name": "queue.publish", "events": {"any": ["retry"]}},
            {"name": "http.client", "status": "ERROR"},
            {"name": "auth.check", "duration_ms": {"min": 0.01, "max": 20}},
            {"name": "render.template", "attrs": {"all": {"thread.id": 3}}},
            {"name": "payments.handle", "attrs": {"all": {"component": "payments"}}},
            {"name": "token.verify", "parent": "users.handle", "kind": "internal"},
            {"name": "rpc.call", "kind": "client", "duration_ms": {"min": 0.05}},
            {"name": "lock.*", "status": "UNSET"},
            {"name": "db.query", "kind": "server"},                      # fails: all client
            {"name": "compute.tax", "attrs": {"all": {"currency": "EUR"}}},  # fails
            {"name": "payment.capture"},                                  # fails: absent
        ],
        "graph": {
            "must_include": [["api.request", "orders.handle"], ["orders.handle", "db.query"],
                             ["*.handle", "cache.get"], ["payments.handle", "rpc.call"],
                             ["api.request", "search.handle"], ["db.query", "api.request"]],
            "must_not_cross": [["api.request", "db.query"], ["cache.get", "db.query"]],
            "acyclic": True,
        },
        "counts": {
            "spans_total": {"gte": 1000},
            "errors_total": {"lte": 100},                                 # fails: ~1%
            "events_total": {"gte": 1},
            "by_name": {"api.request": {"eq": 1000}, "db.query": {"gte": 1},
                        "*.handle": {"eq": 9000}, "lock.acquire": {"gte": 10, "lte": 10_000_000},
                        "nothing.here": {"eq": 0}},
        },
        "window": [
            {"outer": "api.request", "contains": ["orders.handle", "payments.handle"]},
            {"outer": "api.request", "contains": ["db.query", "cache.get"]},
            {"outer": "*.handle", "contains": ["queue.publish"]},
            {"outer": "orders.handle", "contains": ["http.client"]},        # fails: other svc
            {"outer": "api.request", "contains": ["lock.*", "file.read"]},
        ],
        "order": {
            "must_precede": [["orders.handle", "reviews.handle"], ["db.connect", "metrics.flush"],
                             ["api.request", "orders.handle"],        # fails: root ends last
                             ["users.handle", "cart.handle"]],
            "must_follow": [["pricing.handle", "orders.handle"],
                            ["reviews.handle", "search.handle"]],
        },
        "status": {"all": "OK",                                           # fails: UNSET/ERROR
                   "by_name": {"api.*": "OK", "*.handle": "OK", "db.*": "UNSET"}},
        "hermeticity": {"no_external_services": True,
                        "resource_attrs": {"must_match": {"deployment.environment": "test"}},
                        "span_attrs": {"forbid_keys": ["password"]}},
    })


# --- the baseline: every expectation rescans the whole list, nothing is shared -----------


def _match(name: str, pattern: str) -> bool:
    return name == pattern or (any(c in pattern for c in "*?[") and fnmatchcase(name, pattern))


def _ids(spans: list[Span]) -> dict[tuple[str, str], Span]:
    return {(s.trace_id, s.span_id): s for s in spans}


def _parent(span: Span, ids: dict[tuple[str, str], Span]) -> Span | None:
    if span.parent_span_id is None:
        return None
    return ids.get((span.trace_id, span.parent_span_id))


def _span_ok(s: Span, e: SpanExpectation, ids: dict[tuple[str, str], Span]) -> bool:
    if (e.kind and s.kind != e.kind) or (e.status and s.status != e.status):
        return False
    if e.attrs and not all(attr_matches(s.attributes.get(k), v) for k, v in e.attrs.all.items()):
        return False
    if e.attrs and e.attrs.any and not any(attr_matches(s.attributes.get(k), v)
                                           for k, v in e.attrs.any.items()):
        return False
    names = {ev.name for ev in s.events}
    if e.events and (not set(e.events.all) <= names
                     or (e.events.any and not names & set(e.events.any))):
        return False
    d = e.duration_ms
    if d and (d.min is not None or d.max is not None):
        if s.start_time_unix_nano is None or s.end_time_unix_nano is None:
            return False
        took = (s.end_time_unix_nano - s.start_time_unix_nano) / MS
        if took < 0 or (d.min is not None and took < d.min) or (d.max is not None and took > d.max):
            return False
    if e.parent:
        p = _parent(s, ids)
        return p is not None and _match(p.name, e.parent)
    return True


def _edge(spans: list[Span], a: str, b: str) -> bool:
    ids = _ids(spans)
    return any(_match(s.name, b) and (p := _parent(s, ids)) is not None and _match(p.name, a)
               for s in spans)


def _acyclic(spans: list[Span]) -> bool:
    ids, done = _ids(spans), set()
    for s in spans:
        path: set[int] = set()
        cur: Span | None = s
        while cur is not None and id(cur) not in done:
            if id(cur) in path:
                return False
            path.add(id(cur))
            cur = _parent(cur, ids)
        done |= path
    return True


def _errors(s: Span) -> bool:
    return s.status == "ERROR" or str(s.attributes.get("error")).lower() == "true"


def _events(s: Span) -> int:
    declared = s.attributes.get("event.count")
    return max(len(s.events), int(declared) if isinstance(declared, int) else 0)


def _window(spans: list[Span], outer: str, contains: list[str]) -> bool:
    outers = [(s.trace_id, s.start_time_unix_nano, s.end_time_unix_nano) for s in spans
              if _match(s.name, outer) and s.start_time_unix_nano is not None
              and s.end_time_unix_nano is not None]
    if not outers:
        return False
    for name in contains:
        found = False
        for s in spans:
            if not _match(s.name, name):
                continue
            found = True
            st, en = s.start_time_unix_nano, s.end_time_unix_nano
            if st is None or en is None:
                return False
            local = [(a, b) for t, a, b in outers if t == s.trace_id] or [
                (a, b) for _, a, b in outers]
            if not any(a <= st and en <= b for a, b in local):
                return False
        if not found:
            return False
    return True


def _precedes(spans: list[Span], a: str, b: str) -> bool:
    ends: dict[str, int] = {}
    starts: dict[str, int] = {}
    for s in spans:
        if _match(s.name, a) and s.end_time_unix_nano is not None:
            ends[s.trace_id] = min(ends.get(s.trace_id, s.end_time_unix_nano),
                                   s.end_time_unix_nano)
    for s in spans:
        if _match(s.name, b) and s.start_time_unix_nano is not None:
            starts[s.trace_id] = max(starts.get(s.trace_id, s.start_time_unix_nano),
                                     s.start_time_unix_nano)
    if not ends or not starts:
        return False
    shared = ends.keys() & starts.keys()
    if shared:
        return all(ends[t] <= starts[t] for t in shared)
    return min(ends.values()) <= max(starts.values())


def _count(bound: CountBound, value: int) -> bool:
    return bound_holds(bound, value)


def naive_validate(expect: Expect, spans: list[Span]) -> list[bool]:
    """Verdicts in :func:`validate`'s order (no ``source``), each from its own full scans."""
    out: list[bool] = []
    for e in expect.span:
        ids = _ids(spans) if e.parent else {}
        out.append(any(_match(s.name, e.name) and _span_ok(s, e, ids) for s in spans))
    g = expect.graph
    if g:
        out += [_edge(spans, a, b) for a, b in g.must_include]
        out += [not _edge(spans, a, b) for a, b in g.must_not_cross]
        if g.acyclic:
            out.append(_acyclic(spans))
    c = expect.counts
    if c:
        if c.spans_total:
            out.append(_count(c.spans_total, sum(1 for _ in spans)))
        if c.events_total:
            out.append(_count(c.events_total, sum(_events(s) for s in spans)))
        if c.errors_total:
            out.append(_count(c.errors_total, sum(1 for s in spans if _errors(s))))
        out += [_count(b, sum(1 for s in spans if _match(s.name, n))) for n, b in c.by_name.items()]
    out += [_window(spans, w.outer, w.contains) for w in expect.window]
    o = expect.order
    if o:
        out += [_precedes(spans, a, b) for a, b in o.must_precede]
        out += [_precedes(spans, b, a) for a, b in o.must_follow]
    st = expect.status
    if st:
        if st.all:
            out.append(bool(spans) and all(s.status == st.all for s in spans))
        for pattern, status in st.by_name.items():
            hits = [s.status for s in spans if _match(s.name, pattern)]
            out.append(bool(hits) and all(x == status for x in hits))
    h = expect.hermeticity
    if h:
        if h.no_external_services:
            out.append(not any(k in s.attributes for s in spans for k in EXTERNAL_SERVICE_KEYS))
        if h.resource_attrs:
            for key, value in h.resource_attrs.must_match.items():
                out.append(bool(spans) and all(attr_matches(s.resource.get(key), value)
                                               for s in spans))
        for key in dict.fromkeys(h.span_attrs.forbid_keys if h.span_attrs else []):
            out.append(not any(key in s.attributes for s in spans))
    return out


# --- measurement -------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--per-trace", type=int, default=1000)
    parser.add_argument("--naive-spans", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    expect = expectations()
    t0 = time.perf_counter()
    spans = generate(args.traces, args.per_trace, args.seed)
    gen_s = time.perf_counter() - t0
    print(f"generated {len(spans):,} spans in {gen_s:.2f} s (not timed below; "
          f"{len({s.name for s in spans})} names, {args.traces} traces); "
          f"RSS {peak_rss_mb():.0f} MB")

    t0 = time.perf_counter()
    results = validate(expect, spans)
    clnrm_s = time.perf_counter() - t0
    rss_after_clnrm = peak_rss_mb()
    tally = summarize(results)
    print(f"clnrm: {len(results)} results ({tally.passed} pass, {tally.failed} fail, "
          f"{tally.errors} error, {tally.skipped} skip) over {len(spans):,} spans in "
          f"{clnrm_s:.2f} s = {len(spans) / clnrm_s:,.0f} spans/s; "
          f"peak RSS {rss_after_clnrm:.0f} MB")
    for r in results:
        if r.status is not ValidationStatus.PASS:
            print(f"  {r.status.value:5} {r.expectation}: {r.seen[:110]}")

    subset = spans[: args.naive_spans]
    scale = len(spans) / len(subset)
    t0 = time.perf_counter()
    naive = naive_validate(expect, subset)
    naive_s = time.perf_counter() - t0
    sub_results = validate(expect, subset)
    ours = [r.status is ValidationStatus.PASS for r in sub_results if r.status
            is not ValidationStatus.SKIP]
    if ours != naive:
        diff = [(r.expectation, n) for r, n in zip(sub_results, naive, strict=False)
                if (r.status is ValidationStatus.PASS) != n]
        print(f"verdicts differ between clnrm and the naive baseline: {diff}", file=sys.stderr)
        return 1
    naive_full = naive_s * scale
    print(f"naive rescan baseline: {naive_s:.2f} s on {len(subset):,} spans, same verdicts; "
          f"EXTRAPOLATED x{scale:g} to {len(spans):,} spans = {naive_full:.1f} s")

    peak = peak_rss_mb()
    ratio = clnrm_s / naive_full
    met = clnrm_s < TARGET_SECONDS and peak < TARGET_RSS_MB
    print(f"clnrm / naive = {ratio:.3f} (naive is {1 / ratio:.1f}x slower); "
          f"target < {TARGET_SECONDS:g} s and < {TARGET_RSS_MB} MB: {'met' if met else 'NOT met'}"
          f" (cores: {os.cpu_count()})")
    print(json.dumps({
        "bench": "validate", "spans": len(spans), "expectations": len(results),
        "seconds": round(clnrm_s, 3), "spans_per_s": round(len(spans) / clnrm_s),
        "peak_rss_mb": round(peak, 1), "ratio_vs_naive_rescan": round(ratio, 4),
        "target_seconds": TARGET_SECONDS, "target_rss_mb": TARGET_RSS_MB, "met": met,
    }))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
