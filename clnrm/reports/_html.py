"""The HTML report: one self-contained file a browser opens from disk.

Everything is inline (CSS, SVG, a few lines of script for "expand all"), so
the file can be attached to a CI job or mailed and still work, and nothing in
it reaches the network.  Span names, attributes and step output are untrusted:
the template autoescapes every value, and the page carries a Content Security
Policy that allows only its own script (by hash) and no fetches at all, so
even an escaping mistake could not run injected script or leak data.

The layout work (waterfall rows, service graph) lives in ``_waterfall`` and
``_graph``; this module only assembles the view and renders the template.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from clnrm.reports._graph import (
    UNKNOWN_SERVICE,
    GraphLayout,
    ServiceGraph,
    layout,
    merge_graphs,
    service_graph,
)
from clnrm.reports._perf import critical_keys, render_perf
from clnrm.reports._text import clip
from clnrm.reports._waterfall import SPAN_LIMIT, Waterfall, waterfall
from clnrm.results import Outcome, RunResult, TestResult, ValidationStatus

if TYPE_CHECKING:
    from jinja2 import Template

TEMPLATE: Final = "report.html.j2"

# Tableau-like colours that stay apart from the red used for ERROR spans.
_PALETTE: Final = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948",
                   "#ff9da7", "#9c755f", "#86bcb6", "#8cd17d", "#b6992d", "#d4a6c8")
_UNKNOWN_COLOUR: Final = "#9aa0a6"

# Kept out of the template so its CSP hash is computed from the exact bytes served.
_SCRIPT: Final = """
document.querySelectorAll("button[data-details]").forEach(function (button) {
  button.addEventListener("click", function () {
    var open = button.getAttribute("data-details") === "open";
    document.querySelectorAll("details").forEach(function (d) { d.open = open; });
  });
});
"""


@dataclass(frozen=True, slots=True)
class TestView:
    """One test with its layouts; the template reads fields, it computes nothing."""

    anchor: str
    test: TestResult
    open: bool
    waterfall: Waterfall
    graph: ServiceGraph
    layout: GraphLayout
    perf: str | None = None  # the rendered performance section (markup), if any


def render_html(result: RunResult, *, span_limit: int = SPAN_LIMIT) -> str:
    """The report as one HTML document; ``span_limit`` caps waterfall rows per test."""
    from markupsafe import Markup

    from clnrm.redact import redacted

    result = redacted(result)
    graphs = [service_graph(t.spans) for t in result.tests]
    run_graph = merge_graphs(graphs)
    colours = _colours(run_graph.services)
    many = len(result.tests) > 10
    views = [TestView(anchor=f"test-{i}", test=t,
                      open=not (many and t.outcome in (Outcome.PASSED, Outcome.SKIPPED)),
                      waterfall=waterfall(t.spans, limit=span_limit, critical=critical_keys(t)),
                      graph=g, layout=layout(g), perf=render_perf(t))
             for i, (t, g) in enumerate(zip(result.tests, graphs, strict=True))]
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    counts = [(o.value, result.count(o)) for o in Outcome]
    return _template().render(
        run=result, tests=views, counts=counts, run_graph=run_graph,
        run_layout=layout(run_graph), colours=colours, span_limit=span_limit,
        script=Markup(_SCRIPT), script_hash=f"sha256-{digest}", chaos_svg=_chaos_svg,
        spans_total=sum(len(t.spans) for t in result.tests))


def _chaos_svg(report: Any) -> Any:
    """The chaos timeline picture (built from escaped values, so it is safe markup)."""
    from markupsafe import Markup

    from clnrm.chaos.report import timeline_svg

    return Markup(timeline_svg(report))  # noqa: S704 - every value inside is escaped


def write_html(result: RunResult, path: str | Path) -> None:
    """Write :func:`render_html` to ``path`` (UTF-8), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(result), encoding="utf-8", errors="backslashreplace")


def _colours(services: list[str]) -> dict[str, str]:
    """One colour per service for the whole report, so a service looks the same everywhere."""
    named = [s for s in services if s != UNKNOWN_SERVICE]
    colours = {UNKNOWN_SERVICE: _UNKNOWN_COLOUR}
    for i, service in enumerate(named):
        if i < len(_PALETTE):
            colours[service] = _PALETTE[i]
        else:  # golden-angle hues keep many services apart
            colours[service] = f"hsl({(i * 137.508) % 360:.1f}, 55%, 55%)"
    return colours


@cache
def _template() -> Template:
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(shell=shlex.join, clip=clip, seconds=_seconds, lines=_line_count)
    env.globals.update(Outcome=Outcome, ValidationStatus=ValidationStatus,
                       UNKNOWN_SERVICE=UNKNOWN_SERVICE)
    source = files("clnrm.reports").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(source)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def _line_count(text: str) -> str:
    n = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    return f"{n} line" if n == 1 else f"{n} lines"
