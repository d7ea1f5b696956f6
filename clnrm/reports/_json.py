"""The JSON report: the run result exactly as the model dumps it.

Nothing is reshaped or dropped, so a JSON report can be loaded back with
``RunResult.model_validate_json`` and compared with another run.
"""

from __future__ import annotations

import json
from pathlib import Path

from clnrm.redact import redact_value
from clnrm.results import RunResult


def render_json(result: RunResult) -> str:
    """``result.model_dump(mode="json")``, indented, ending in a newline; secrets masked."""
    data = redact_value(result.model_dump(mode="json"))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(result: RunResult, path: str | Path) -> None:
    """Write :func:`render_json` to ``path`` (UTF-8), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a lone surrogate (undecodable output) becomes the JSON escape \udcXX, still valid JSON
    target.write_text(render_json(result), encoding="utf-8", errors="backslashreplace")
