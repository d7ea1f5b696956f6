"""The HTML report: self-contained, complete, and safe with hostile span data."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clnrm import results
from clnrm.reports import render_html, write_html
from clnrm.reports.example import example_run, span
from clnrm.results import Outcome, RunResult, StepResult, ValidationResult, ValidationStatus

HOSTILE = "<script>alert(1)</script>"
BREAKOUT = "\"><img src=x onerror=alert(2)>"


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(example_run())


def hostile_run() -> RunResult:
    run = example_run()
    bad = span(HOSTILE, f"<b>svc</b>{BREAKOUT}", "1", start_ms=0, end_ms=5,
               attrs={"note": BREAKOUT, HOSTILE: "</pre></div>" + HOSTILE})
    child = span("child", "web", "2", "1", start_ms=1, end_ms=3)
    run.tests.append(results.TestResult(
        name=f"hostile {HOSTILE}", file=f"x{BREAKOUT}.clnrm.toml", outcome=Outcome.FAILED,
        message=HOSTILE, warnings=[HOSTILE],
        steps=[StepResult(name=HOSTILE, service=BREAKOUT, command=["sh", "-c", HOSTILE],
                          outcome=Outcome.FAILED, exit_code=1, stdout="</pre>" + HOSTILE,
                          stderr=BREAKOUT, message=HOSTILE)],
        validations=[ValidationResult(validator=HOSTILE, expectation=BREAKOUT,
                                      status=ValidationStatus.FAIL, expected=HOSTILE,
                                      seen=BREAKOUT, declared_at=HOSTILE, message=HOSTILE)],
        spans=[bad, child]))
    return run


def test_report_shows_the_run_header(page: str) -> None:
    assert "<title>clnrm run 5e1f0c2a9b7d</title>" in page
    for text in ("docker", "2024-05-01T12:00:00+00:00", "64.10 s", "1 passed", "1 failed",
                 "1 error", "1 skipped"):
        assert text in page


def test_each_test_shows_badge_steps_output_and_validations(page: str) -> None:
    for name in ("checkout_flow", "payment_declined", "inventory_sync", "nightly_load"):
        assert f"<strong>{name}</strong>" in page
    assert '<span class="badge failed">failed</span>' in page
    assert "sh -c &#39;pay --card 4000-0000-0000-0002&#39;" in page  # command, shell-quoted
    assert "<summary>stderr (1 line)</summary><pre>payment failed: card declined\n</pre>" in page
    assert "tests/payments.clnrm.toml:31 [expect.status]" in page
    assert "status ERROR (card declined)" in page


def test_waterfall_rows_are_indented_positioned_and_marked(page: str) -> None:
    assert 'style="padding-left:18px"' in page  # depth 1
    assert re.search(r'class="bar" style="left:\d+(\.\d+)?%;width:\d+(\.\d+)?%;background:#', page)
    assert '<span class="err-mark">ERROR</span>' in page
    assert "no timestamps" in page and "orphan: parent" in page


def test_service_graph_is_inline_svg_with_call_counts(page: str) -> None:
    assert page.count("<svg") == 3  # the run's graph and one per test with calls
    assert "frontend → orders-api: 1 call" in page
    assert ">1×</text>" in page


def test_the_page_needs_nothing_outside_itself(page: str) -> None:
    # URLs may appear as text (a step's wget command) but nothing may load one
    refs = re.findall(r"url\(([^)]*)\)", page)
    assert refs and all(ref.startswith("#arrow-") for ref in refs), refs
    assert "@import" not in page
    for tag, attrs in Elements(page).tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            assert value is None or value.startswith(("#", "data:")), (tag, attr, value)
        assert tag not in ("iframe", "img", "object", "embed")
        if tag == "link":
            assert attrs.get("rel") == "icon"


def test_csp_allows_only_the_inline_script_by_hash(page: str) -> None:
    [script] = Elements(page).scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp and f"script-src 'sha256-{digest}'" in csp


def test_hostile_strings_from_spans_and_output_come_out_escaped() -> None:
    text = render_html(hostile_run())
    assert HOSTILE not in text and BREAKOUT not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    parsed = Elements(text)
    assert len(parsed.scripts) == 1 and "alert" not in parsed.scripts[0]
    for tag, attrs in parsed.tags:
        assert tag != "img"
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
    # attribute values from spans land in hover titles, still escaped
    assert "note = &#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in text


def test_waterfall_is_capped_with_a_note() -> None:
    run = example_run()
    run.tests[0].spans = [span(f"s{i}", "a", str(i + 1), start_ms=i, end_ms=i + 2)
                          for i in range(620)]
    text = render_html(run, span_limit=500)
    assert "showing the first 500 of 620 spans" in text
    assert text.count('class="bar"') == 500 + 4  # + the failed test's 4 spans with both times


def test_tests_without_steps_validations_or_spans_say_so_once() -> None:
    text = render_html(example_run())
    assert text.count("No step ran; no expectation was judged; no spans were recorded.") == 2
    run = example_run()
    run.tests[0].spans = [span("lonely", "solo", "1", start_ms=0, end_ms=1)]
    assert "Spans came from solo; no span has a parent in another service." in render_html(run)


def test_an_empty_run_renders() -> None:
    text = render_html(RunResult(run_id="r", backend="local", started_at="now"))
    assert "This run has no tests." in text and "<svg" not in text


def test_long_output_is_clipped() -> None:
    run = example_run()
    run.tests[0].steps[0].stdout = "x" * 200_000
    text = render_html(run)
    assert "characters cut here (the JSON report has all of them)" in text
    assert len(text) < 150_000


def test_write_html_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.html"
    write_html(example_run(), target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
