"""The span digest ignores what a deterministic test cannot control, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clnrm.otel import digest
from clnrm.otel.digest import span_digest
from clnrm.otel.span import Span, SpanEvent


def tree(trace: str, ids: tuple[str, str], t0: int) -> list[Span]:
    root = Span("root", trace, ids[0], None, t0, t0 + 50, "server",
                attributes={"http.method": "GET", "process.pid": t0})
    child = Span("child", trace, ids[1], ids[0], t0 + 1, t0 + 9, "client",
                 attributes={"db.system": "postgresql"}, events=[SpanEvent("rows", t0 + 2)],
                 resource={"service.name": "api", "clnrm.run": trace})
    return [root, child]


def test_ids_times_order_and_volatile_attributes_do_not_matter() -> None:
    a = tree("a" * 32, ("1" * 16, "2" * 16), 1000)
    b = list(reversed(tree("b" * 32, ("3" * 16, "4" * 16), 987654321)))
    assert span_digest(a) == span_digest(b)


def test_structure_names_attributes_and_status_do_matter() -> None:
    base = tree("a" * 32, ("1" * 16, "2" * 16), 1000)
    digest = span_digest(base)
    orphan = [base[0], replace(base[1], parent_span_id=None)]
    renamed = [base[0], replace(base[1], name="other")]
    attr = [base[0], replace(base[1], attributes={"db.system": "mysql"})]
    status = [replace(base[0], status="ERROR"), base[1]]
    event = [base[0], replace(base[1], events=[])]
    for changed in (orphan, renamed, attr, status, event):
        assert span_digest(changed) != digest


def test_digest_format() -> None:
    assert span_digest([]).startswith("sha256:") and len(span_digest([])) == 7 + 64


# -- cost and shape: linear in spans at any depth --------------------------------------

T = "a" * 32


def chain(n: int) -> list[Span]:
    return [Span(f"s{i}", T, f"{i + 1:016x}", f"{i:016x}" if i else None) for i in range(n)]


def _by_ancestor_keys(spans: list[Span]) -> list[dict[str, Any]]:
    """The digest's documented order, spelled out the slow way: sort by the tuple of
    ancestor keys (root first), ties in input order.  Only for small acyclic forests."""
    by_id = {s.span_id: s for s in spans}

    def chain_of(s: Span) -> tuple[str, ...]:
        out: list[str] = []
        cur: Span | None = s
        while cur is not None:
            out.append(digest._key(cur))
            cur = by_id.get(cur.parent_span_id or "")
        return tuple(reversed(out))

    ordered = sorted(spans, key=chain_of)
    position = {s.span_id: i for i, s in enumerate(ordered)}
    return [{"name": s.name, "kind": s.kind, "status": s.status,
             "parent": position.get(s.parent_span_id or ""),
             "attributes": digest._clean(s.attributes),
             "events": [{"name": e.name, "attributes": digest._clean(e.attributes)}
                        for e in s.events],
             "resource": digest._clean(s.resource)} for s in ordered]


@st.composite
def forests(draw: st.DrawFn) -> list[Span]:
    """Small acyclic forests with repeated names (so siblings and cousins tie)."""
    n = draw(st.integers(0, 25))
    spans = []
    for i in range(n):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        spans.append(Span(draw(st.sampled_from("abc")), T, f"{i + 1:016x}",
                          f"{parent + 1:016x}" if parent is not None else None,
                          kind=draw(st.sampled_from(["server", "client"])),
                          resource={"service.name": draw(st.sampled_from(["x", "y"])),
                                    "r": draw(st.integers(0, 1))}))
    return draw(st.permutations(spans))


@settings(max_examples=150, deadline=None)
@given(forests())
def test_order_is_the_ancestor_key_order_the_old_digest_used(spans: list[Span]) -> None:
    """Digests of existing runs stay valid: same order, same normalised spans."""
    assert digest.normalise(spans) == _by_ancestor_keys(spans)


@settings(max_examples=60, deadline=None)
@given(forests(), st.randoms(use_true_random=False))
def test_input_order_does_not_change_the_digest_of_a_forest_with_distinct_keys(
        spans: list[Span], rnd: Any) -> None:
    spans = [replace(s, name=f"n{i}") for i, s in enumerate(spans)]
    shuffled = list(spans)
    rnd.shuffle(shuffled)
    assert span_digest(shuffled) == span_digest(spans)


_DEEP_CHAIN_PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression fails, not the box
from clnrm.otel.digest import span_digest, span_depths
from clnrm.otel.span import Span
T = "a" * 32
spans = [Span(f"s{i}", T, f"{i + 1:016x}", f"{i:016x}" if i else None) for i in range(20000)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.setrecursionlimit(200)  # no recursion proportional to depth
forward = span_digest(spans)
backward = span_digest(spans[::-1])
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"same": forward == backward, "grown_kib": grown,
                  "depth": max(span_depths(spans))}))
"""


def test_20000_deep_chain_digest_finishes_in_bounded_memory() -> None:
    """The old digest kept every ancestor path: 17 GB and 42 s for this chain."""
    res = subprocess.run([sys.executable, "-c", _DEEP_CHAIN_PROBE], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["same"] and out["depth"] == 20000
    # peak RSS growth: the quadratic version needed ~10 GB (here: MemoryError under the
    # 3 GB cap); the linear one a few tens of MB
    assert out["grown_kib"] < 512 * 1024, out


def test_parent_cycles_are_cut_the_same_whatever_the_input_order() -> None:
    a = Span("a", T, "1" * 16, "2" * 16)
    b = Span("b", T, "2" * 16, "3" * 16)
    c = Span("c", T, "3" * 16, "1" * 16)
    loop = Span("self", T, "4" * 16, "4" * 16)
    child = Span("d", T, "5" * 16, "2" * 16)
    spans = [a, b, c, loop, child]
    digests = {span_digest([spans[i] for i in order])
               for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 4, 0, 3, 1])}
    assert len(digests) == 1
    # cut at the smallest key ("a"'s): a is a root, c under a, b under c, d under b
    assert digest.span_depths(spans) == [1, 3, 2, 1, 4]


def test_depths_count_from_one_at_the_roots() -> None:
    assert digest.span_depths(chain(5)) == [1, 2, 3, 4, 5]
    assert digest.span_depths([]) == []
    orphan = Span("o", T, "9" * 16, "8" * 16)  # parent not in the set: a root
    assert digest.span_depths([orphan]) == [1]
