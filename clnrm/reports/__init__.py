"""Reports: a run result rendered as JSON, JUnit XML or one self-contained HTML file.

Reports render a :class:`~clnrm.results.RunResult`; they never judge.  Every
verdict (test outcome, step outcome, validation status) is read from the
result, so the formats agree with each other and with ``clnrm run`` by
construction.  Each ``write_*`` creates the parent folder and writes UTF-8;
each ``render_*`` returns the text.

Only the standard library and jinja2 (HTML, imported on first render) are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clnrm.reports._graph import ServiceEdge, ServiceGraph, service_graph
    from clnrm.reports._html import render_html, write_html
    from clnrm.reports._json import render_json, run_error, write_json
    from clnrm.reports._junit import render_junit, write_junit
    from clnrm.reports._waterfall import SPAN_LIMIT, Waterfall, WaterfallRow, waterfall

_LAZY = {
    "ServiceEdge": "_graph", "ServiceGraph": "_graph", "service_graph": "_graph",
    "render_html": "_html", "write_html": "_html",
    "render_json": "_json", "run_error": "_json", "write_json": "_json",
    "render_junit": "_junit", "write_junit": "_junit",
    "SPAN_LIMIT": "_waterfall", "Waterfall": "_waterfall", "WaterfallRow": "_waterfall",
    "waterfall": "_waterfall",
}
"""Where each public name lives: a writer's module (the HTML one pulls in the waterfall,
the service graph and the perf page) loads when its name is first used, so ``clnrm run``
printing a human result, or writing only JSON, imports only what it uses."""


def __getattr__(name: str) -> Any:
    """PEP 562: import a public name's module on first access, then cache the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clnrm.reports' has no attribute {name!r}")
    value = getattr(import_module(f"clnrm.reports.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "SPAN_LIMIT",
    "ServiceEdge",
    "ServiceGraph",
    "Waterfall",
    "WaterfallRow",
    "render_html",
    "render_json",
    "render_junit",
    "run_error",
    "service_graph",
    "waterfall",
    "write_html",
    "write_json",
    "write_junit",
]
