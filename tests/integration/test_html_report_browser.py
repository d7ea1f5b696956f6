"""The HTML report in a real browser: it renders, runs its script under its CSP, logs no errors.

Uses Debian's headless Chromium at /usr/bin/chromium (``CLNRM_CHROMIUM`` overrides);
with ``CLNRM_ARTIFACTS=DIR`` the screenshot and the report are copied to DIR.
A missing browser fails these tests, it never skips them: run
``bash .ci/ensure-chromium.sh`` to install it.  Console errors are collected over
the DevTools protocol on a pipe (``--remote-debugging-pipe``), so no port is
opened; two broken pages check that the collector does see errors.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm import results
from clnrm.reports import write_html
from clnrm.reports.example import example_run, span
from clnrm.results import Outcome, RunResult, StepResult

CHROMIUM = Path(os.environ.get("CLNRM_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio"]
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: the HTML report test needs Debian's chromium. "
                    "Install it with `bash .ci/ensure-chromium.sh` (apt-get install chromium).")
    return CHROMIUM


def report_run() -> RunResult:
    """The example run plus a test whose spans and output try to break out of the page."""
    run = example_run()
    run.tests.append(results.TestResult(
        name="hostile_input", file="tests/hostile.clnrm.toml", outcome=Outcome.FAILED,
        message=HOSTILE,
        steps=[StepResult(name="inject", command=["sh", "-c", HOSTILE], outcome=Outcome.FAILED,
                          exit_code=1, stdout="</pre>" + HOSTILE, message=HOSTILE)],
        spans=[span(HOSTILE, "evil\"><img src=x onerror=alert(2)>", "1", start_ms=0, end_ms=4,
                    attrs={"x": "\"><svg onload=alert(3)>"}),
               span("child", "web", "2", "1", start_ms=1, end_ms=2, status="ERROR")]))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html-report") / "report.html"
    write_html(report_run(), path)
    return path


def run_chromium(binary: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the image data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_report_screenshot_is_a_real_image(chromium: Path, report: Path,
                                           tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    res = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}",
                       "--window-size=1280,2000", report.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    width, height, distinct = png_facts(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    assert shot.stat().st_size > 50_000 and distinct > 100, "screenshot looks blank"
    keep = os.environ.get("CLNRM_ARTIFACTS")  # CI or a person who wants to look at it
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "html-report.png")
        shutil.copy(report, Path(keep) / "html-report.html")
    print(f"screenshot of the HTML report: {shot}")


def test_dump_dom_has_the_rendered_tests_and_no_injected_elements(chromium: Path, report: Path,
                                                                  tmp_path: Path) -> None:
    res = run_chromium(chromium, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    for name in ("checkout_flow", "payment_declined", "inventory_sync", "nightly_load",
                 "hostile_input"):
        assert f"<strong>{name}</strong>" in dom
    assert dom.count("<script") == 1 and "<img" not in dom and "onload=" not in dom.replace(
        "onload=alert(3)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


# -- DevTools protocol over a pipe ----------------------------------------------------


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: fd 3 carries commands, fd 4 replies."""

    def __init__(self, binary: Path, profile: Path) -> None:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # copies at free fds >= 10 (inheritable), so the dup2 to 3 and 4 in the child
        # cannot overwrite one end with the other
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
                               for fd in (to_chrome_r, from_chrome_w))

        def wire() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [str(binary), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"], preexec_fn=wire, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_chrome_r, from_chrome_w, child_in, child_out):
            os.close(fd)
        self._out, self._in = to_chrome_w, from_chrome_r
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, timeout: float = 30,
             **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline - time.monotonic()):
                if reply.get("id") == self._next_id:
                    assert "error" not in reply, f"{method}: {reply['error']}"
                    return reply.get("result", {})
            assert time.monotonic() < deadline, f"no reply to {method} in {timeout} s"

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} event in {timeout} s"
            list(self._read(deadline - time.monotonic()))
        return next(e for e in self.events if e.get("method") == method)

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            list(self._read(deadline - time.monotonic()))

    def _read(self, timeout: float) -> Iterator[dict[str, Any]]:
        ready, _, _ = select.select([self._in], [], [], max(timeout, 0))
        if ready:
            chunk = os.read(self._in, 1 << 20)
            assert chunk, "chromium closed the DevTools pipe"
            self._buffer += chunk
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "method" in message:
                self.events.append(message)
            yield message

    def close(self) -> None:
        os.close(self._out)
        os.close(self._in)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def open_page(binary: Path, profile: Path, url: str) -> tuple[DevTools, str]:
    """A browser with one tab that has loaded ``url``, recording console, log and network."""
    browser = DevTools(binary, profile)
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.send(f"{domain}.enable", session)
    browser.send("Page.navigate", session, url=url)
    browser.wait_for("Page.loadEventFired")
    browser.settle(0.5)  # late errors (timers, deferred script) still count
    return browser, session


def problems(events: list[dict[str, Any]]) -> list[str]:
    """Everything the DevTools console would show in red or yellow for the page."""
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"uncaught: {params['exceptionDetails'].get('text')} "
                         f"{params['exceptionDetails'].get('exception', {}).get('description')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert",
                                                                         "warning"):
            found.append(f"console.{params['type']}: "
                         + " ".join(str(a.get("value")) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            found.append(f"log {params['entry']['source']}: {params['entry']['text']}")
    return found


def requested_urls(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events
            if e.get("method") == "Network.requestWillBeSent"]


def test_report_opens_with_no_console_errors_and_loads_nothing_else(
        chromium: Path, report: Path, tmp_path: Path) -> None:
    browser, session = open_page(chromium, tmp_path / "profile", report.as_uri())
    try:
        assert problems(browser.events) == []
        assert requested_urls(browser.events) == [report.as_uri()]

        def evaluate(expression: str) -> Any:
            reply = browser.send("Runtime.evaluate", session, expression=expression,
                                 returnByValue=True)
            return reply["result"].get("value")

        text = evaluate("document.body.innerText")
        for name in ("checkout_flow", "payment_declined", "hostile_input", HOSTILE):
            assert name in text
        assert evaluate("document.querySelectorAll('.wf-row .bar').length") >= 17
        assert evaluate("document.querySelectorAll('svg.graph .node').length") >= 10
        assert evaluate("document.querySelectorAll('script').length") == 1
        # the inline script runs under the page's CSP: "collapse all" closes every <details>
        evaluate("document.querySelector('button[data-details=close]').click()")
        assert evaluate("document.querySelectorAll('details[open]').length") == 0
        evaluate("document.querySelector('button[data-details=open]').click()")
        assert evaluate("document.querySelectorAll('details:not([open])').length") == 0
        assert problems(browser.events) == []
    finally:
        browser.close()


BROKEN_PAGES = {
    "uncaught": "<!DOCTYPE html><title>x</title><script>missingFunction()</script>",
    "csp": ("<!DOCTYPE html><meta http-equiv='Content-Security-Policy' "
            "content=\"default-src 'none'\"><title>x</title><script>1</script>"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_PAGES))
def test_the_error_collector_sees_errors_on_a_broken_page(chromium: Path, tmp_path: Path,
                                                          kind: str) -> None:
    page = tmp_path / f"{kind}.html"
    page.write_text(BROKEN_PAGES[kind], encoding="utf-8")
    browser, _ = open_page(chromium, tmp_path / "profile", page.as_uri())
    try:
        found = problems(browser.events)
    finally:
        browser.close()
    assert found, f"a {kind} page produced no console error: the check would be vacuous"
