"""The JSON report: the run result exactly as the model dumps it, in the output envelope.

Nothing is reshaped or dropped: the envelope (``schema_version``,
``clnrm_version``, ``command``, ``error``; see :mod:`clnrm.output`) is added at
the top level next to the result's own fields, so a JSON report can still be
loaded back with ``RunResult.model_validate_json`` (extra fields are ignored)
and compared with another run.  ``clnrm run --format json`` prints the same
document, so a saved stdout and a ``--report-json`` file are interchangeable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clnrm.results import Outcome, RunResult


def run_error(result: RunResult) -> dict[str, Any] | None:
    """The envelope's ``error`` for a run that exits 2 (a test could not be run), else
    ``None``: how many tests errored, and the first one's message and file."""
    errored = [t for t in result.tests if t.outcome is Outcome.ERROR]
    if not errored:
        return None
    first = errored[0]
    message = (first.message or "could not be run").strip()
    many = len(errored)
    return {"message": f"{many} test{'s' if many != 1 else ''} could not be run; "
                       f"{first.name}: {message}",
            "file": first.file or None, "line": None, "key": None,
            "hint": "see the test's message and its steps' output"}


def render_json(result: RunResult, command: str = "run") -> str:
    """The envelope around ``result.model_dump(mode="json")``, indented, ending in a newline;
    secrets masked."""
    from clnrm.output import render

    return render(command, result.model_dump(mode="json"), error=run_error(result)) + "\n"


def write_json(result: RunResult, path: str | Path) -> None:
    """Write :func:`render_json` to ``path`` (UTF-8), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a lone surrogate (undecodable output) becomes the JSON escape \udcXX, still valid JSON
    target.write_text(render_json(result), encoding="utf-8", errors="backslashreplace")
