"""Writing tests from mined patterns (issue 15): readable files that load, pass on the
system they came from and on a fresh corpus of it, and fail on changed behaviour."""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clnrm.cli import app
from clnrm.execution import judge_spans
from clnrm.intelligence.generate import Generation, generate_tests, scenario_body
from clnrm.intelligence.mutants import OPERATORS, mutants
from clnrm.intelligence.synthetic import shop_corpus
from clnrm.otel.span import Span
from clnrm.results import ValidationStatus
from clnrm.scenario import Scenario
from clnrm.scenario.loader import loads_scenario


@cache
def generation() -> Generation:
    return generate_tests(shop_corpus(1))


@cache
def generated_scenarios() -> list[Scenario]:
    return [loads_scenario(t.text, source=t.filename) for t in generation().tests]


def failing(spans: list[Span]) -> list[str]:
    bad = (ValidationStatus.FAIL, ValidationStatus.ERROR)
    return [sc.name for sc in generated_scenarios()
            if any(v.status in bad for v in judge_spans(sc, spans))]


def write_jsonl(path: Path, spans: list[Span]) -> Path:
    path.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in spans), encoding="utf-8")
    return path


def test_one_test_per_request_type_each_assertion_with_its_support() -> None:
    names = [t.filename for t in generation().tests]
    assert names == ["frontend-get-catalog.clnrm.toml", "frontend-get-health.clnrm.toml",
                     "frontend-get-users-id.clnrm.toml", "frontend-post-orders.clnrm.toml"]
    text = generation().tests[2].text
    blocks = [b for b in text.split("\n\n") if "[[expect.span]]" in b]
    assert len(blocks) > 5
    assert all(b.startswith(("# seen in", "# latency envelope", "# self-time envelope"))
               for b in blocks)
    assert "# seen in 60/60 traces" in text
    assert "enduser.id" not in text.split("# Not asserted:")[0]


def test_generated_tests_pass_on_their_source_and_on_fresh_corpora() -> None:
    assert failing(shop_corpus(1)) == []
    for seed in (2, 3, 4):
        assert failing(shop_corpus(seed)) == [], seed


def test_generated_tests_catch_every_kind_of_mutant() -> None:
    muts = mutants(shop_corpus(2))
    assert {m.operator for m in muts} == set(OPERATORS)
    survivors = [f"{m.operator}: {m.description}" for m in muts if not failing(m.spans)]
    assert len(survivors) <= 0.1 * len(muts), survivors


def test_a_test_generated_from_a_scenario_keeps_its_steps_and_meta() -> None:
    text = ('[meta]\nname = "x"\ntimeout = "90s"\n\n[[steps]]\nname = "s"\n'
            'command = ["true"]\n')
    made = generate_tests(shop_corpus(1), steps_toml=scenario_body(text)).tests[0]
    scenario = loads_scenario(made.text, source=made.filename)
    assert scenario.name == "generated frontend-get-catalog"
    assert [s.name for s in scenario.steps] == ["s"]
    assert made.text.count("[meta]") == 1 and 'timeout = "90s"' in made.text


def test_same_input_and_seed_give_the_same_bytes() -> None:
    again = generate_tests(shop_corpus(1))
    assert [t.text for t in again.tests] == [t.text for t in generation().tests]


def test_scenario_body_drops_the_name_and_expectations_keeps_the_rest() -> None:
    text = ('[meta]\nname = "x"\ntimeout = "90s"\n\n[services.api]\nimage = "a"\n\n'
            '[[steps]]\nname = "s"\ncommand = ["true"]\n\n[[expect.span]]\nname = "old"\n\n'
            '[expect.graph]\nacyclic = true\n\n[vars]\nk = "v"\n')
    body = scenario_body(text)
    assert "[services.api]" in body and "[[steps]]" in body and "[vars]" in body
    assert 'timeout = "90s"' in body and 'name = "s"' in body
    assert 'name = "x"' not in body and "expect" not in body and '"old"' not in body


runner = CliRunner()


def test_cli_generates_files_that_validate_and_judge_their_export(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "spans.jsonl", shop_corpus(1))
    fresh = write_jsonl(tmp_path / "fresh.jsonl", shop_corpus(5))
    out = tmp_path / "gen"
    res = runner.invoke(app, ["generate", "--traces", str(source), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 request types" in res.output
    assert len(list(out.glob("*.clnrm.toml"))) == 4 and (out / "patterns.json").is_file()
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    for export in (source, fresh):
        judged = runner.invoke(app, ["run", str(out), "--traces", str(export)])
        assert judged.exit_code == 0, judged.output


def test_cli_judges_a_mutant_export_as_failed(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "spans.jsonl", shop_corpus(1))
    broken = next(m for m in mutants(shop_corpus(2)) if m.operator == "add-edge")
    mutant = write_jsonl(tmp_path / "mutant.jsonl", broken.spans)
    out = tmp_path / "gen"
    assert runner.invoke(app, ["generate", "--traces", str(source), "-o", str(out)]).exit_code == 0
    assert runner.invoke(app, ["run", str(out), "--traces", str(mutant)]).exit_code == 1


@pytest.mark.parametrize("content", ["not json at all\n", '{"resourceSpans": 3}\n'])
def test_cli_bad_trace_file_is_a_located_error_exit_2(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    res = runner.invoke(app, ["generate", "--traces", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "bad.json" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_cli_needs_exactly_one_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["generate", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "exactly one of --traces" in res.output


def jaeger_export(spans: list[Span]) -> dict[str, object]:
    """The spans as Jaeger JSON (microseconds, tags, one process per service)."""
    def tag(key: str, value: object) -> dict[str, object]:
        kind = ("bool" if isinstance(value, bool) else "int64" if isinstance(value, int)
                else "float64" if isinstance(value, float) else "string")
        return {"key": key, "type": kind, "value": value if kind != "string" else str(value)}

    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    data = []
    for trace_id, members in traces.items():
        services = sorted({s.service_name or "unknown" for s in members})
        processes = {f"p{i}": {"serviceName": name, "tags": []}
                     for i, name in enumerate(services)}
        data.append({"traceID": trace_id, "processes": processes, "spans": [{
            "traceID": trace_id, "spanID": s.span_id, "operationName": s.name,
            "references": ([{"refType": "CHILD_OF", "traceID": trace_id,
                             "spanID": s.parent_span_id}] if s.parent_span_id else []),
            "startTime": (s.start_time_unix_nano or 0) // 1000,
            "duration": ((s.end_time_unix_nano or 0) - (s.start_time_unix_nano or 0)) // 1000,
            "tags": [tag(k, v) for k, v in s.attributes.items()]
            + [tag("span.kind", s.kind)]
            + ([tag("otel.status_code", s.status)] if s.status != "UNSET" else []),
            "processID": f"p{services.index(s.service_name or 'unknown')}"}
            for s in members]})
    return {"data": data}


def test_cli_generates_the_same_tests_from_otlp_jaeger_and_jsonl(tmp_path: Path) -> None:
    """Every input kind of issue 15: spans.jsonl, OTLP JSON and Jaeger JSON give the same
    request types and assertions, and the tests pass on the system's spans."""
    from clnrm.otel.encode import otlp_json_from_spans

    spans = shop_corpus(1)
    jsonl = write_jsonl(tmp_path / "spans.jsonl", spans)
    otlp = tmp_path / "otlp.json"
    otlp.write_text(json.dumps(otlp_json_from_spans(spans)), encoding="utf-8")
    jaeger = tmp_path / "jaeger.json"
    jaeger.write_text(json.dumps(jaeger_export(spans)), encoding="utf-8")
    written: dict[str, dict[str, str]] = {}
    for export in (jsonl, otlp, jaeger):
        out = tmp_path / export.stem
        res = runner.invoke(app, ["generate", "--traces", str(export), "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "200 traces" in res.output and "4 request types" in res.output, res.output
        written[export.stem] = {p.name: p.read_text(encoding="utf-8").split("\n", 1)[1]
                                for p in sorted(out.glob("*.clnrm.toml"))}
        judged = runner.invoke(app, ["run", str(out), "--traces", str(jsonl)])
        assert judged.exit_code == 0, judged.output
    assert written["otlp"] == written["spans"]  # the same bytes, bar the source line
    assert written["jaeger"].keys() == written["spans"].keys()
    count = re.compile(r"^\[\[expect\.span\]\]$", re.M)
    assert ([len(count.findall(t)) for t in written["jaeger"].values()]
            == [len(count.findall(t)) for t in written["spans"].values()])


def test_cli_flags_and_the_files_generation_keys(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's keys: [intelligence.generation] of a --from file, flags over them; and a
    run clnrm just made (--from, local backend: clnrm's own spans) as the input."""
    monkeypatch.chdir(tmp_path)  # the runs' artifacts stay out of the repository
    source = write_jsonl(tmp_path / "spans.jsonl", shop_corpus(1))
    out = tmp_path / "flags"
    res = runner.invoke(app, ["generate", "--traces", str(source), "--out", str(out),
                              "--min-pattern-frequency", "0.9", "--confidence-threshold",
                              "0.6", "--include-error-scenarios", "--no-counts", "--seed", "3"])
    assert res.exit_code == 0, res.output
    texts = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.clnrm.toml")}
    users = texts["frontend-get-users-id.clnrm.toml"]
    assert "seed 3,\n# min_pattern_frequency 0.9, confidence_threshold 0.6." in users
    assert 'name = "SELECT users"' not in users  # only cache misses read the db
    assert not any("[expect.counts" in t for t in texts.values())
    assert any("# error path:" in t for t in texts.values())  # 1 in 60 payments failed
    scenario = tmp_path / "two-steps.clnrm.toml"
    scenario.write_text(
        '[meta]\nname = "two_steps"\n\n[intelligence.generation]\nconfidence_threshold = 0.6'
        '\nmin_pattern_frequency = 0.5\n\n[[steps]]\nname = "hello"\n'
        'command = ["sh", "-c", "echo hello"]\nexpected_output_regex = "hello"\n\n'
        '[[steps]]\nname = "bye"\ncommand = ["sh", "-c", "echo bye"]\n', encoding="utf-8")
    for flags, threshold in (([], "0.6"), (["--confidence-threshold", "0.7"], "0.7")):
        out = tmp_path / f"from-{threshold}"
        res = runner.invoke(app, ["generate", "--from", str(scenario), "--runs", "2",
                                  "--backend", "local", "--out", str(out), *flags])
        assert res.exit_code == 0, res.output
        (test,) = out.glob("*.clnrm.toml")
        text = test.read_text(encoding="utf-8")
        assert f"min_pattern_frequency 0.5, confidence_threshold {threshold}." in text
        assert '[[steps]]\nname = "hello"' in text and "# seen in 2/2 traces" in text
        assert runner.invoke(app, ["run", str(test), "--backend", "local"]).exit_code == 0


def test_generated_order_is_universal_so_a_repeated_call_moved_late_fails() -> None:
    """Mined orders hold for every span of both names, so they are written with
    ``every = true``: a second ``GET inventory`` after ``POST charge`` breaks it, which
    upstream's existential rule (one ``GET inventory`` still precedes) lets pass."""
    test = next(t for t in generation().tests if t.request_type == "frontend POST /orders")
    assert "[expect.order]\nevery = true\nmust_precede = [" in test.text
    spans = shop_corpus(2)
    trace = next(s.trace_id for s in spans if s.name == "POST charge")
    inventory = next(s for s in spans if s.trace_id == trace and s.name == "GET inventory")
    charge = next(s for s in spans if s.trace_id == trace and s.name == "POST charge")
    end = charge.end_time_unix_nano
    assert end is not None
    late = dataclasses.replace(inventory, span_id="f" * 16, start_time_unix_nano=end,
                               end_time_unix_nano=end + 1_000_000)
    rule = "order must_precede GET inventory -> POST charge"

    def order_status(text: str) -> str:
        results = judge_spans(loads_scenario(text, source=test.filename), [*spans, late])
        return next(r.status.value for r in results if r.expectation == rule)

    assert order_status(test.text) == "fail"
    assert order_status(test.text.replace("every = true\n", "")) == "pass"


def test_a_self_time_bound_passes_fresh_runs_and_catches_a_slower_gateway() -> None:
    from tests.unit.test_intelligence_mining import gateway

    (made,) = generate_tests(gateway(20)).tests
    assert "self_ms = { max = " in made.text
    assert "# some span's own time must stay within it; seen in " in made.text
    scenario = loads_scenario(made.text, source=made.filename)

    def failures(spans: list[Span]) -> list[str]:
        return [v.message for v in judge_spans(scenario, spans)
                if v.status in (ValidationStatus.FAIL, ValidationStatus.ERROR)]

    assert failures(gateway(20)) == []
    assert failures(gateway(20, seed=6)) == []  # fresh: other callee times, same gateway
    slow = failures(gateway(20, own_ms=1.8, seed=6))  # +80 % of the gateway's own time
    assert slow and any("self time" in m for m in slow), slow
