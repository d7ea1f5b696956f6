"""Request types where root names alone do not separate them (issue 15 §1): one ``POST /rpc``
serving two operations is split by clustering what the root calls; optional calls are not."""

from __future__ import annotations

from clnrm.intelligence.corpus import build_corpus
from clnrm.intelligence.synthetic import shop_corpus
from clnrm.otel.span import Span


def rpc(traces: dict[str, list[str]]) -> list[Span]:
    """``gw POST /rpc`` traces; each calls the given ``service name`` children."""
    out: list[Span] = []
    for t, (tid, children) in enumerate(traces.items()):
        root = Span(name="POST /rpc", trace_id=tid, span_id=f"{t:08x}00000000",
                    start_time_unix_nano=0, end_time_unix_nano=10**8, kind="SERVER",
                    resource={"service.name": "gw"})
        out.append(root)
        for c, child in enumerate(children):
            service, name = child.split(" ", 1)
            out.append(Span(name=name, trace_id=tid, span_id=f"{t:08x}{c + 1:08x}",
                            parent_span_id=root.span_id, start_time_unix_nano=10**6 * (c + 1),
                            end_time_unix_nano=10**6 * (c + 2), kind="CLIENT",
                            resource={"service.name": service}))
    return out


def test_one_root_name_serving_two_operations_is_two_request_types() -> None:
    traces = {f"{i:032x}": (["users GetUser", "cache Get"] if i % 2 else ["payments Charge"])
              for i in range(8)}
    corpus = build_corpus(rpc(traces))
    assert [(rt.key, len(rt.traces)) for rt in corpus.types] == [
        ("gw POST /rpc [cache Get]", 4), ("gw POST /rpc [payments Charge]", 4)]
    assert {s.name for t in corpus.types[1].traces for s in t.spans} == {"POST /rpc", "Charge"}


def test_optional_calls_beside_a_shared_one_keep_the_type_whole() -> None:
    traces = {f"{i:032x}": ["users GetUser"] + (["db Select"] if i % 3 == 0 else [])
              for i in range(9)}
    corpus = build_corpus(rpc(traces))
    assert [rt.key for rt in corpus.types] == ["gw POST /rpc"]


def test_a_rare_disjoint_trace_does_not_make_a_type_of_its_own() -> None:
    traces = {f"{i:032x}": ["users GetUser"] for i in range(6)}
    traces["f" * 32] = ["payments Charge"]  # one trace: below the cluster minimum
    assert [rt.key for rt in build_corpus(rpc(traces)).types] == ["gw POST /rpc"]


def test_the_synthetic_shop_keeps_its_four_request_types() -> None:
    assert len(build_corpus(shop_corpus(1)).types) == 4


def test_each_operation_gets_its_own_test_that_passes_on_the_source() -> None:
    from clnrm.execution import judge_spans
    from clnrm.intelligence.generate import generate_tests
    from clnrm.results import ValidationStatus
    from clnrm.scenario.loader import loads_scenario

    traces = {f"{i:032x}": (["users GetUser"] if i % 2 else ["payments Charge"])
              for i in range(12)}
    spans = rpc(traces)
    generation = generate_tests(spans)
    assert len(generation.tests) == 2
    for test in generation.tests:
        scenario = loads_scenario(test.text, source=test.filename)
        verdicts = judge_spans(scenario, spans)
        assert verdicts and all(v.status is ValidationStatus.PASS for v in verdicts), test.text
