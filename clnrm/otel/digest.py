"""A digest of a test's spans that is equal across runs of a deterministic test.

Raw spans differ on every run in exactly the things a deterministic test
cannot control: ids, timestamps and durations. Those are normalised away;
what remains (names, kinds, status, attributes, events, resource, and the
shape of the tree) is hashed. Parent links survive as the parent's *position*
in a canonical order, so "db.query under api.request" still counts.

Per-run values that clnrm itself injects (``clnrm.run``, ``clnrm.test`` ...)
and attributes that are inherently per-run (process ids, host names) are
dropped too; see ``VOLATILE_KEYS``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from clnrm.otel.span import Span

VOLATILE_KEYS: Final = frozenset({
    "clnrm.run", "clnrm.run_id", "clnrm.test_id", "process.pid", "process.parent_pid",
    "host.name", "host.id", "container.id", "service.instance.id", "telemetry.sdk.version",
    "thread.id", "net.sock.peer.port", "net.peer.port", "client.port", "network.peer.port",
    "client.address", "net.sock.peer.addr", "network.peer.address",
    "clnrm.duration_ms",
})


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs[k] for k in sorted(attrs) if k not in VOLATILE_KEYS}


def _key(span: Span) -> str:
    return json.dumps([span.resource.get("service.name"), span.name, span.kind, span.status,
                       _clean(span.attributes), [e.name for e in span.events]],
                      sort_keys=True, default=str)


def normalise(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Spans in a canonical order with ids and times replaced by tree positions."""
    by_id = {s.span_id: s for s in spans}
    memo: dict[str, str] = {}

    def path(span: Span, depth: int = 0) -> str:
        # the chain of ancestor keys makes identical spans under different parents distinct
        if span.span_id in memo:
            return memo[span.span_id]
        parent = by_id.get(span.parent_span_id or "")
        prefix = path(parent, depth + 1) + " > " if parent is not None and depth < 64 else ""
        memo[span.span_id] = prefix + _key(span)
        return memo[span.span_id]

    ordered = sorted(spans, key=path)
    position = {s.span_id: i for i, s in enumerate(ordered)}
    out = []
    for s in ordered:
        out.append({
            "name": s.name, "kind": s.kind, "status": s.status,
            "parent": position.get(s.parent_span_id or "", None),
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
