"""Reports: a run result rendered as JSON, JUnit XML or one self-contained HTML file.

Reports render a :class:`~clnrm.results.RunResult`; they never judge.  Every
verdict (test outcome, step outcome, validation status) is read from the
result, so the formats agree with each other and with ``clnrm run`` by
construction.  Each ``write_*`` creates the parent folder and writes UTF-8;
each ``render_*`` returns the text.

Only the standard library and jinja2 (HTML, imported on first render) are used.
"""

from __future__ import annotations

from clnrm.reports._graph import ServiceEdge, ServiceGraph, service_graph
from clnrm.reports._html import render_html, write_html
from clnrm.reports._json import render_json, run_error, write_json
from clnrm.reports._junit import render_junit, write_junit
from clnrm.reports._waterfall import SPAN_LIMIT, Waterfall, WaterfallRow, waterfall

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
