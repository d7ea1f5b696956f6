"""The span digest ignores what a deterministic test cannot control, and nothing else."""

from __future__ import annotations

from dataclasses import replace

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
