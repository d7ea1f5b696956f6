"""The HTML report with a performance section, in headless Chromium: clean console, no fetches."""

from __future__ import annotations

from pathlib import Path

import pytest

from clnrm.reports import write_html
from clnrm.reports.example import example_run
from tests.integration.test_html_report_browser import (
    CHROMIUM,
    open_page,
    problems,
    requested_urls,
    run_chromium,
)
from tests.unit.test_reports_perf import perf_test


@pytest.fixture(scope="module")
def perf_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install it with `bash .ci/ensure-chromium.sh`")
    run = example_run()
    run.tests.append(perf_test())
    path = tmp_path_factory.mktemp("perf-report") / "report.html"
    write_html(run, path)
    return path


def test_perf_report_opens_without_console_errors(perf_report: Path, tmp_path: Path) -> None:
    browser, _ = open_page(CHROMIUM, tmp_path / "profile", perf_report.as_uri())
    try:
        assert problems(browser.events) == []
        assert requested_urls(browser.events) == [perf_report.as_uri()]
    finally:
        browser.close()


def test_perf_pictures_are_in_the_rendered_dom(perf_report: Path, tmp_path: Path) -> None:
    res = run_chromium(CHROMIUM, tmp_path / "profile", "--dump-dom", perf_report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert 'aria-label="latency histogram of SELECT items"' in dom
    assert 'aria-label="history of SELECT items p95"' in dom
    assert '<g class="change">' in dom and 'class="wf-row crit"' in dom
    assert dom.count("<script") == 1 and "<img" not in dom
