"""The performance section of the HTML report: histograms, history, critical path."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

from clnrm import results
from clnrm.otel.span import Span
from clnrm.perf.critical_path import critical_paths
from clnrm.perf.metrics import measure, summarize_ms
from clnrm.perf.result import MetricHistory, PerformanceResult
from clnrm.perf.sampler import ContainerStatsSummary
from clnrm.perf.verdict import ChangePoint, Verdict
from clnrm.reports import render_html, render_json, waterfall
from clnrm.reports._perf import histogram, history_chart
from clnrm.reports.example import example_run, span
from clnrm.results import Outcome, RunResult

HOSTILE = "<script>alert(1)</script>"


def requests(n: int, slow: float, seed: int) -> list[Span]:
    rng = random.Random(seed)
    out: list[Span] = []
    for i in range(n):
        t, base = f"{i + 1:x}", i * 100.0
        out += [span("GET /items", "gateway", "a", start_ms=base, end_ms=base + 30 * slow,
                     kind="server", trace=t),
                span("SELECT items", "db", "b", "a", start_ms=base + 2,
                     end_ms=base + 2 + rng.uniform(10, 20) * slow, kind="client", trace=t),
                span(HOSTILE, "gateway", "c", "a", start_ms=base + 3, end_ms=base + 4,
                     trace=t)]  # runs alongside the query: off the path
    return out


def perf_test(**extra: object) -> results.TestResult:
    current, baseline = requests(40, 1.3, 1), requests(40, 1.0, 2)
    perf = PerformanceResult(
        measurements=measure(current), baseline=measure(baseline),
        verdicts=[Verdict(metric="SELECT items", direction="higher_is_worse", regressed=True,
                          fails=True, significant=True, effect_pct=31.0, ci_low_pct=22.0,
                          ci_high_pct=40.5, shift_pct=28.0, p_value=0.0001, p_adjusted=0.0002,
                          confidence=0.9998, statistic="p95", test="run-level t",
                          n_baseline=40, n_current=40, runs_baseline=3, runs_current=1,
                          message=f"p95 rose 31% {HOSTILE}")],
        history=[MetricHistory(metric="SELECT items p95", run_ids=[f"r{i}" for i in range(8)],
                               values=[15, 15.2, 14.9, 15.1, 19.8, 20.1, 19.9, 20.3],
                               change_points=[ChangePoint(index=4, run_id="r4", before_mean=15.05,
                                                          after_mean=20.0, change_pct=32.9,
                                                          p_value=0.004)])],
        critical_path=critical_paths(current),
        containers={"db": ContainerStatsSummary(service="db", container_id="c", samples=4,
                                                cpu_pct_mean=40, cpu_pct_peak=91.5,
                                                mem_bytes_mean=3e7, mem_bytes_peak=31_457_280)},
        **extra)  # type: ignore[arg-type]
    return results.TestResult(name="load", file="perf.clnrm.toml", outcome=Outcome.FAILED,
                      spans=current, performance=perf)


@pytest.fixture(scope="module")
def page() -> str:
    run = example_run()
    run.tests.append(perf_test())
    return render_html(run)


def section(page: str) -> str:
    start = page.index('<div class="perf">')
    return page[start: page.index("</div>\n", page.index("perf-containers", start))]


def test_histogram_is_inline_svg_with_the_baseline_overlaid(page: str) -> None:
    perf = section(page)
    assert 'aria-label="latency histogram of SELECT items"' in perf
    svg = perf[perf.index('aria-label="latency histogram of SELECT items"'):]
    svg = svg[: svg.index("</svg>")]
    assert svg.count('<rect class="cur"') >= 5
    assert re.search(r'<path class="base" d="M[\d.]+,[\d.]+ L', svg)
    assert '<line class="marker"' in svg and '<line class="marker base"' in svg
    assert "baseline p95" in svg


def test_the_verdict_is_shown_as_a_row_and_on_its_histogram(page: str) -> None:
    perf = section(page)
    assert '<span class="badge fail">fail</span>' in perf
    assert "+31.0%" in perf and "+22.0% … +40.5%" in perf and "0.0002" in perf
    assert '<span class="badge fail">regressed</span>' in perf


def test_history_marks_its_change_points(page: str) -> None:
    perf = section(page)
    assert 'aria-label="history of SELECT items p95"' in perf
    assert perf.count('<g class="change">') == 1
    assert ">+33%</text>" in perf
    assert "change point before run r4: 15 ms → 20 ms (p = 0.004)" in perf
    assert perf.count('<circle class="now"') == 1 and perf.count('<circle class="pt"') == 7


def test_critical_path_rows_are_marked_on_the_waterfall(page: str) -> None:
    start = page.index("<strong>load</strong>")
    rows = re.findall(r'<div class="wf-row([^"]*)" title="([^\n]*)', page[start:])
    crit = [title.split("\n")[0] for cls, title in rows if "crit" in cls.split()]
    assert crit and {"GET /items", "SELECT items"} >= {c.split("&#10;")[0] for c in crit}
    off = [title.split("&#10;")[0] for cls, title in rows if "crit" not in cls.split()]
    assert off and set(off) == {"&lt;script&gt;alert(1)&lt;/script&gt;"}
    assert '<span class="crit-mark">path</span>' in page[start:]


def test_shares_recommendations_and_containers_are_listed(page: str) -> None:
    perf = section(page)
    assert "<h4>Critical path</h4>" in perf and "40 requests" in perf
    assert re.search(r"`SELECT items` \(db\) is \d+% of the critical path", perf)
    assert "31% / 92%" not in perf and "40% / 92%" in perf
    assert "28.6 MiB / 30.0 MiB" in perf


def test_untrusted_names_stay_text_in_the_perf_section(page: str) -> None:
    perf = section(page)
    assert HOSTILE not in perf
    assert "p95 rose 31% &lt;script&gt;" in perf


def test_a_report_without_performance_data_has_no_perf_section() -> None:
    body = render_html(example_run()).split("</style>")[1]
    assert 'class="perf"' not in body and "perf-chart" not in body
    assert "crit" not in body and "<h3>Performance</h3>" not in body


def test_partial_performance_data_renders_what_there_is() -> None:
    only_load = PerformanceResult(history=[MetricHistory(metric="rps", unit="req/s",
                                                         values=[10.0])])
    run = RunResult(run_id="r", backend="docker", started_at="now", tests=[
        results.TestResult(name="t", file="f", outcome=Outcome.PASSED, performance=only_load)])
    page = render_html(run)
    assert "<h3>Performance</h3>" in page and 'aria-label="history of rps"' in page
    assert "latency histogram" not in page and "<h4>Critical path</h4>" not in page


def test_json_report_carries_performance_and_loads_back() -> None:
    run = RunResult(run_id="r", backend="docker", started_at="now", tests=[perf_test()])
    data = json.loads(render_json(run))
    perf = data["tests"][0]["performance"]
    assert perf["verdicts"][0]["metric"] == "SELECT items"
    assert perf["critical_path"]["path_count"] == 40
    assert len(perf["measurements"]["latency"]["SELECT items"]["samples_ms"]) == 40
    assert RunResult.model_validate(data) == run


def test_verdicts_are_typed_and_dump_as_the_dicts_they_replaced() -> None:
    """The JSON of a typed verdict is what ``Verdict.model_dump()`` stored before: every
    field in order, a non-finite figure as ``null`` (valid JSON), and ``null`` loads back."""
    test = perf_test()
    perf = test.performance
    assert perf is not None
    nan = perf.verdicts[0].model_copy(update={"effect_pct": math.nan, "ci_high_pct": math.inf})
    perf.verdicts = [nan]
    run = RunResult(run_id="r", backend="docker", started_at="now", tests=[test])
    text = render_json(run)
    [dumped] = json.loads(text)["tests"][0]["performance"]["verdicts"]
    assert list(dumped) == list(Verdict.model_fields)
    assert dumped["effect_pct"] is None and dumped["ci_high_pct"] is None
    assert dumped["ci_low_pct"] == 22.0 and dumped["message"].startswith("p95 rose 31%")
    assert "NaN" not in text and "Infinity" not in text
    [back] = RunResult.model_validate_json(text).tests[0].performance.verdicts  # type: ignore[union-attr]
    assert isinstance(back, Verdict) and math.isnan(back.effect_pct) and back.fails
    [point] = json.loads(text)["tests"][0]["performance"]["history"][0]["change_points"]
    assert point == {"index": 4, "run_id": "r4", "before_mean": 15.05, "after_mean": 20.0,
                     "change_pct": 32.9, "p_value": 0.004}


def test_histogram_bins_are_logarithmic_for_long_tails() -> None:
    wide = summarize_ms([1, 2, 3, 5, 8, 400])
    h = histogram("x", wide, None)
    assert h.log_scale and h.baseline_path == ""
    narrow = histogram("x", summarize_ms([10, 11, 12]), summarize_ms([10, 13]))
    assert not narrow.log_scale and narrow.baseline_path.startswith("M")
    left, top, right, bottom = narrow.frame
    assert all(left <= b.x <= right and top <= b.y <= bottom for b in narrow.bars)


def test_history_change_mark_sits_between_the_runs_it_separates() -> None:
    chart = history_chart(MetricHistory(metric="m", values=[1, 1, 5, 5],
                                        change_points=[ChangePoint(
                                            index=2, run_id=None, before_mean=1.0,
                                            after_mean=5.0, change_pct=400.0, p_value=0.01)]))
    xs = [p.x for p in chart.points]
    assert xs[1] < chart.changes[0].x < xs[2]
    assert chart.changes[0].label == "+400%"
    assert len(chart.means) == 2 and chart.means[0][2] > chart.means[1][2]  # y grows down


def test_waterfall_marks_critical_keys_only_in_their_trace() -> None:
    spans = [span("a", "s", "1", start_ms=0, end_ms=1, trace="x"),
             span("a", "s", "1", start_ms=0, end_ms=1, trace="y")]
    wf = waterfall(spans, critical={("0" * 31 + "x", "0" * 15 + "1")})
    marks = {lane.trace_id[-1]: lane.rows[0].critical for lane in wf.lanes}
    assert marks == {"x": True, "y": False}
