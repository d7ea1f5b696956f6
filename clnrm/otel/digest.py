"""A digest of a test's spans that is equal across runs of a deterministic test.

Raw spans differ on every run in exactly the things a deterministic test
cannot control: ids, timestamps and durations. Those are normalised away;
what remains (names, kinds, status, attributes, events, resource, and the
shape of the tree) is hashed. Parent links survive as the parent's *position*
in a canonical order, so "db.query under api.request" still counts.

Per-run values that clnrm itself injects (``clnrm.run``, ``clnrm.test`` ...)
and attributes that are inherently per-run (process ids, host names) are
dropped too; see ``VOLATILE_KEYS``.

The digest also runs on whatever a live test's containers emit, so its cost
is linear in spans at any depth: no recursion, no per-span ancestor strings
(a 20,000-deep chain once took 17 GB).  A parent cycle, which no real tracer
emits, is cut at its smallest member.  Trace *files* deeper than
``MAX_SPAN_DEPTH`` are refused when loaded (:mod:`clnrm.otel.tracefile`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from clnrm.otel.span import Span

VOLATILE_KEYS: Final = frozenset({
    "clnrm.run", "clnrm.run_id", "clnrm.test_id", "process.pid", "process.parent_pid",
    "host.name", "host.id", "container.id", "service.instance.id", "telemetry.sdk.version",
    "thread.id", "net.sock.peer.port", "net.peer.port", "client.port", "network.peer.port",
    "client.address", "net.sock.peer.addr", "network.peer.address",
    "clnrm.duration_ms",
})
MAX_SPAN_DEPTH: Final = 10_000
"""Deepest span tree a trace file may hold; real traces stay far below a hundred levels."""


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs[k] for k in sorted(attrs) if k not in VOLATILE_KEYS}


def _key(span: Span) -> str:
    return json.dumps([span.resource.get("service.name"), span.name, span.kind, span.status,
                       _clean(span.attributes), [e.name for e in span.events]],
                      sort_keys=True, default=str)


def parent_indices(spans: Sequence[Span]) -> list[int]:
    """Each span's parent as an index into ``spans`` (-1 for none).

    Parents are found by span id; when ids repeat, the last span with that id wins.
    """
    by_id = {s.span_id: i for i, s in enumerate(spans)}
    return [by_id.get(s.parent_span_id or "", -1) for s in spans]


def span_depths(spans: Sequence[Span]) -> list[int]:
    """How deep each span sits (1 for a root), in one pass whatever the depth.

    A parent cycle is cut as :func:`normalise` cuts it, so every span has a depth.
    """
    parents = _cut_cycles(parent_indices(spans), lambda i: _key(spans[i]))
    depth = [1] * len(spans)
    for i in _parents_first(parents):
        if parents[i] >= 0:
            depth[i] = depth[parents[i]] + 1
    return depth


def _cut_cycles(parents: list[int], key: Callable[[int], str]) -> list[int]:
    """``parents`` with each parent cycle cut: its smallest member (by key, then input
    position) becomes a root, so the cut does not depend on the order spans arrived in."""
    out = list(parents)
    state = bytearray(len(parents))  # 0 unseen, 1 on the current walk, 2 settled
    for start in range(len(parents)):
        walk: list[int] = []
        cur = start
        while cur >= 0 and state[cur] == 0:
            state[cur] = 1
            walk.append(cur)
            cur = parents[cur]
        if cur >= 0 and state[cur] == 1:
            cycle = walk[walk.index(cur):]
            cut = min(cycle, key=lambda i: (key(i), i))
            out[cut] = -1
        for i in walk:
            state[i] = 2
    return out


def _parents_first(parents: list[int]) -> list[int]:
    """Indices of a forest (no cycles left) in an order that puts every parent first.

    Each span is walked up to the first one already placed, then that walk is placed
    top down: every span is visited once, with no recursion and no child lists.
    """
    placed = bytearray(len(parents))
    order: list[int] = []
    for start in range(len(parents)):
        walk: list[int] = []
        cur = start
        while cur >= 0 and not placed[cur]:
            walk.append(cur)
            cur = parents[cur]
        walk.reverse()
        order.extend(walk)
        for i in walk:
            placed[i] = 1
    return order


def normalise(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Spans in a canonical order with ids and times replaced by tree positions.

    The order is that of each span's chain of ancestor keys (root first), compared key by
    key, ties kept in input order: spans sharing a chain are grouped in a trie of keys
    walked depth first, so the cost is linear in spans (plus sorting siblings) at any
    depth, and no chain is ever spelled out.
    """
    keys = [_key(s) for s in spans]
    parents = _cut_cycles(parent_indices(spans), keys.__getitem__)
    # trie of key chains: node 0 is the empty chain; a span lives at its own chain's node
    children: list[dict[str, int]] = [{}]
    node = [0] * len(spans)
    for i in _parents_first(parents):
        up = children[node[parents[i]]] if parents[i] >= 0 else children[0]
        found = up.get(keys[i])
        if found is None:
            found = up[keys[i]] = len(children)
            children.append({})
        node[i] = found
    members: list[list[int]] = [[] for _ in children]
    for i, n in enumerate(node):
        members[n].append(i)
    ordered: list[Span] = []
    stack = [0]
    while stack:
        n = stack.pop()
        ordered.extend(spans[i] for i in members[n])
        stack.extend(children[n][k] for k in sorted(children[n], reverse=True))
    position = {s.span_id: i for i, s in enumerate(ordered)}
    out = []
    for s in ordered:
        out.append({
            "name": s.name, "kind": s.kind, "status": s.status,
            "parent": position.get(s.parent_span_id or ""),
            "attributes": _clean(s.attributes),
            "events": [{"name": e.name, "attributes": _clean(e.attributes)} for e in s.events],
            "resource": _clean(s.resource),
        })
    return out


def span_digest(spans: Iterable[Span]) -> str:
    """``sha256:<hex>`` over the normalised spans (upstream's ``analyze`` spelling)."""
    data = json.dumps(normalise(list(spans)), sort_keys=True, separators=(",", ":"),
                      default=str)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()
