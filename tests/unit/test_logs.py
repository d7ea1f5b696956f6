"""Logging set-up stays cheap to import and prints what structlog prints with Rich.

``clnrm.logs`` loads structlog with Rich and colorama hidden (they cost about a third of
``clnrm run``'s client start-up); these tests hold that the hiding changes no output.
Each case runs in a fresh interpreter, since the point is what an import loads.
"""

from __future__ import annotations

import json
import subprocess
import sys

_LOG_AN_EXCEPTION = """
import re, sys
{preload}
from clnrm.logs import configure, structlog
configure()
log = structlog.get_logger("clnrm.test")
log.warning("plain.line", detail="x", count=3)

def boom():
    return 1 / 0

try:
    boom()
except ZeroDivisionError:
    log.error("with.exception", exc_info=True)
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)


def _without_timestamps(text: str) -> str:
    return "\n".join(line.split("Z ", 1)[-1] if line[:2] == "20" else line
                     for line in text.splitlines())


def test_importing_logs_loads_neither_rich_nor_colorama() -> None:
    out = _python("import sys, clnrm.logs as logs\nlogs.configure(2)\n"
                  "print(__import__('json').dumps(sorted(m for m in sys.modules "
                  "if m.split('.')[0] in ('rich', 'pygments', 'colorama'))))").stdout
    assert json.loads(out) == []


def test_log_lines_and_exceptions_render_as_with_rich_loaded_first() -> None:
    lazy = _python(_LOG_AN_EXCEPTION.format(preload=""))
    eager = _python(_LOG_AN_EXCEPTION.format(preload="__import__('rich.traceback')"))
    assert "ZeroDivisionError" in lazy.stderr and "Traceback" in lazy.stderr
    assert "detail=x" in lazy.stderr
    assert _without_timestamps(lazy.stderr) == _without_timestamps(eager.stderr)


def test_rich_loaded_before_logs_is_left_alone() -> None:
    out = _python("import rich, structlog.dev as dev\nimport clnrm.logs\n"
                  "print(dev.rich is not None)").stdout
    assert out.strip() == "True"


def test_printing_a_human_result_imports_no_other_writer() -> None:
    out = _python("import sys, clnrm.reports._human\n"
                  "print(__import__('json').dumps(sorted(m for m in sys.modules "
                  "if m.startswith('clnrm.reports.'))))").stdout
    assert json.loads(out) == ["clnrm.reports._human"]
