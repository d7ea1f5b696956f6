"""The performance section of the HTML report: layouts for its inline SVG pictures.

Three pictures, all laid out here as plain numbers and drawn by the partial
template ``perf.html.j2`` (autoescaped like the main one, so span names in
titles stay text):

- a latency histogram per span operation, this run's samples as bars and the
  baseline's as an outline on the same bins, each normalised to its own count
  (runs of different length compare by shape), with both p95s marked; bins are
  logarithmic when the samples span more than a factor of 20, as latencies
  usually do;
- each metric's history over past runs as a line, change points as dashed
  verticals labelled with the step, each segment's mean as a flat line, this
  run's point ringed;
- the critical path, which is drawn on the existing waterfall (its rows get
  ``critical``); here only the shares table and the recommendations.

Nothing is computed about the run itself: verdicts, change points, paths and
advice come from :class:`~clnrm.perf.result.PerformanceResult`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

from clnrm.perf.metrics import LatencySummary, percentile
from clnrm.perf.result import MetricHistory, PerformanceResult
from clnrm.perf.verdict import Verdict
from clnrm.results import TestResult

if TYPE_CHECKING:
    from jinja2 import Template
    from markupsafe import Markup

TEMPLATE: Final = "perf.html.j2"
HISTOGRAMS: Final = 6
"""Histograms per test at most: ``focus`` if given, else verdicts first, then the busiest
operations seen at least three times."""

_W: Final = 560.0
_H: Final = 170.0
_LEFT: Final = 46.0
_RIGHT: Final = 12.0
_TOP: Final = 14.0
_BOTTOM: Final = 24.0
_BINS: Final = 30
_LOG_RATIO: Final = 20.0
_FRAME: Final = (_LEFT, _TOP, _W - _RIGHT, _H - _BOTTOM)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    title: str


@dataclass(frozen=True, slots=True)
class Marker:
    x: float
    label: str
    baseline: bool


@dataclass(frozen=True, slots=True)
class Histogram:
    """One operation's latency distribution against its baseline, in SVG coordinates."""

    name: str
    width: float
    height: float
    frame: tuple[float, float, float, float]  # plot area: left, top, right, bottom
    bars: list[Bar]
    baseline_path: str  # SVG path of the baseline's outline, "" without a baseline
    markers: list[Marker]
    x_ticks: list[tuple[float, str]]
    y_label: str  # the tallest bin's share, at the top of the axis
    log_scale: bool
    caption: str
    verdict: Verdict | None


@dataclass(frozen=True, slots=True)
class ChangeMark:
    x: float
    label: str
    title: str


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    x: float
    y: float
    title: str
    current: bool


@dataclass(frozen=True, slots=True)
class HistoryChart:
    metric: str
    width: float
    height: float
    frame: tuple[float, float, float, float]  # plot area: left, top, right, bottom
    line: str  # polyline points
    points: list[HistoryPoint]
    changes: list[ChangeMark]
    means: list[tuple[float, float, float]]  # x1, x2, y of each segment's mean
    y_ticks: list[tuple[float, str]]


@dataclass(frozen=True, slots=True)
class VerdictRow:
    metric: str
    state: str  # fail, regressed, improved, ok, unknown: the badge
    effect: str
    ci: str
    p: str
    message: str


@dataclass(slots=True)
class PerfView:
    """Everything the partial draws for one test."""

    perf: PerformanceResult
    histograms: list[Histogram] = field(default_factory=list)
    histories: list[HistoryChart] = field(default_factory=list)
    verdicts: list[VerdictRow] = field(default_factory=list)


def critical_keys(test: TestResult) -> Set[tuple[str, str]]:
    """``(trace_id, span_id)`` of the spans on the test's kept critical paths."""
    perf = test.performance
    if perf is None or perf.critical_path is None:
        return frozenset()
    return perf.critical_path.keys()


def render_perf(test: TestResult) -> Markup | None:
    """The test's performance section as markup, or None when it has no performance data."""
    if test.performance is None:
        return None
    from markupsafe import Markup

    view = perf_view(test.performance)
    return Markup(_template().render(v=view))


def perf_view(perf: PerformanceResult) -> PerfView:
    verdicts = {v.metric: v for v in perf.verdicts}
    view = PerfView(perf=perf, verdicts=[_verdict_row(v) for v in perf.verdicts])
    current = perf.measurements.latency if perf.measurements else {}
    base = perf.baseline.latency if perf.baseline else {}
    for name in _focus(perf, verdicts):
        if name not in current and name not in base:
            continue
        view.histograms.append(histogram(name, current.get(name), base.get(name),
                                         verdict=_verdict_for(name, verdicts)))
    view.histories = [history_chart(h) for h in perf.history if h.values]
    return view


def histogram(name: str, current: LatencySummary | None, baseline: LatencySummary | None,
              *, verdict: Verdict | None = None, bins: int = _BINS) -> Histogram:
    """Bars for ``current`` and an outline for ``baseline`` on shared bins."""
    cur = current.samples_ms if current else []
    base = baseline.samples_ms if baseline else []
    both = cur + base
    lo, hi = (min(both), max(both)) if both else (0.0, 1.0)
    log_scale = lo > 0 and hi / lo >= _LOG_RATIO
    if hi <= lo:
        lo, hi = (lo * 0.9, lo * 1.1) if lo > 0 else (0.0, 1.0)
    n_bins = max(5, min(bins, int(math.sqrt(max(len(cur), len(base), 1))) * 2))
    edges = _edges(lo, hi, n_bins, log_scale)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x_of(value: float) -> float:
        if log_scale:
            frac = math.log(value / lo) / math.log(hi / lo) if value > 0 else 0.0
        else:
            frac = (value - lo) / (hi - lo)
        return round(_LEFT + min(max(frac, 0.0), 1.0) * plot_w, 2)

    cur_share, base_share = _shares(cur, edges), _shares(base, edges)
    top = max(cur_share + base_share + [1e-9])

    def y_of(share: float) -> float:
        return round(_TOP + plot_h - share / top * plot_h, 2)

    bars = []
    for i, share in enumerate(cur_share):
        if share <= 0:
            continue
        x0, x1 = x_of(edges[i]), x_of(edges[i + 1])
        bars.append(Bar(x=x0, y=y_of(share), w=round(max(x1 - x0 - 1, 1.0), 2),
                        h=round(share / top * plot_h, 2),
                        title=f"{_ms(edges[i])}–{_ms(edges[i + 1])}: {share * 100:.1f}% "
                              f"of this run"))
    path = ""
    if base:
        points = [f"M{x_of(edges[0])},{y_of(0)}"]
        for i, share in enumerate(base_share):
            points.append(f"L{x_of(edges[i])},{y_of(share)} L{x_of(edges[i + 1])},{y_of(share)}")
        points.append(f"L{x_of(edges[-1])},{y_of(0)}")
        path = " ".join(points)
    markers = []
    if cur:
        markers.append(Marker(x_of(percentile(cur, 95)), f"p95 {_ms(percentile(cur, 95))}",
                              baseline=False))
    if base:
        markers.append(Marker(x_of(percentile(base, 95)),
                              f"baseline p95 {_ms(percentile(base, 95))}", baseline=True))
    ticks = [(x_of(v), _ms(v)) for v in _edges(lo, hi, 4, log_scale)]
    return Histogram(name=name, width=_W, height=_H, frame=_FRAME, bars=bars,
                     baseline_path=path,
                     markers=markers, x_ticks=ticks, y_label=f"{top * 100:.0f}%",
                     log_scale=log_scale, caption=_caption(current, baseline),
                     verdict=verdict)


def history_chart(history: MetricHistory) -> HistoryChart:
    """The metric's values as a line, change points as dashed verticals with their step."""
    values = history.values
    n = len(values)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x_of(i: float) -> float:
        return round(_LEFT + (i / (n - 1) if n > 1 else 0.5) * plot_w, 2)

    def y_of(v: float) -> float:
        return round(_TOP + plot_h - (v - lo) / (hi - lo) * plot_h, 2)

    run_ids = history.run_ids if len(history.run_ids) == n else [f"#{i + 1}" for i in range(n)]
    points = [HistoryPoint(x_of(i), y_of(v), f"{run_ids[i]}: {_value(v, history.unit)}",
                           current=i == n - 1) for i, v in enumerate(values)]
    changes = []
    cuts = [0]
    for cp in sorted(history.change_points, key=lambda c: c.index):
        k = cp.index
        if not 0 < k < n:
            continue
        cuts.append(k)
        title = (f"change point before run {cp.run_id or run_ids[k]}: "
                 f"{_value(cp.before_mean, history.unit)} → "
                 f"{_value(cp.after_mean, history.unit)} (p = {cp.p_value:.3g})")
        changes.append(ChangeMark(x=x_of(k - 0.5), label=f"{cp.change_pct:+.0f}%",
                                  title=title))
    cuts.append(n)
    means = []
    for a, b in pairwise(cuts):
        if b > a:
            mean = sum(values[a:b]) / (b - a)
            means.append((x_of(a), x_of(b - 1), y_of(mean)))
    ticks = [(y_of(v), _value(v, history.unit)) for v in (lo + pad, (lo + hi) / 2, hi - pad)]
    return HistoryChart(metric=history.metric, width=_W, height=_H, frame=_FRAME,
                        line=" ".join(f"{p.x},{p.y}" for p in points), points=points,
                        changes=changes, means=means, y_ticks=ticks)


def _focus(perf: PerformanceResult, verdicts: dict[str, Verdict]) -> list[str]:
    names = list(perf.focus)
    current = perf.measurements.latency if perf.measurements else {}
    known = set(current) | set(perf.baseline.latency if perf.baseline else {})
    if not names:
        names = [n for n in known if _verdict_for(n, verdicts) is not None]
        names.sort(key=lambda n: (not _regressed(_verdict_for(n, verdicts)), n))
        # a distribution needs a few samples: one-off spans (the test, a start-up) are skipped
        busiest = sorted((n for n in current if current[n].count >= 3),
                         key=lambda n: (-current[n].count * current[n].mean_ms, n))
        names += [n for n in busiest if n not in names]
    return names[:HISTOGRAMS]


def _regressed(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.regressed


def _verdict_for(name: str, verdicts: dict[str, Verdict]) -> Verdict | None:
    """The verdict about span ``name``: metric ``name`` itself or ``<kind>:<name>``."""
    if name in verdicts:
        return verdicts[name]
    return next((v for m, v in verdicts.items() if m.partition(":")[2] == name), None)


def _verdict_row(v: Verdict) -> VerdictRow:
    if v.fails:
        state = "fail"
    elif v.regressed:
        state = "regressed"
    elif v.significant and (v.effect_pct < 0) == (v.direction == "higher_is_worse"):
        state = "improved"
    else:
        state = "ok"
    return VerdictRow(
        metric=v.metric, state=state, effect=f"{v.effect_pct:+.1f}%",
        ci=f"{v.ci_low_pct:+.1f}% … {v.ci_high_pct:+.1f}%", p=f"{v.p_adjusted:.3g}",
        message=v.message)


def _edges(lo: float, hi: float, n: int, log_scale: bool) -> list[float]:
    if log_scale:
        ratio = (hi / lo) ** (1 / n)
        return [lo * ratio ** i for i in range(n)] + [hi]
    step = (hi - lo) / n
    return [lo + step * i for i in range(n)] + [hi]


def _shares(values: Sequence[float], edges: list[float]) -> list[float]:
    counts = [0] * (len(edges) - 1)
    last = len(counts) - 1
    for v in values:
        counts[min(max(bisect_right(edges, v) - 1, 0), last)] += 1
    total = len(values) or 1
    return [c / total for c in counts]


def _caption(current: LatencySummary | None, baseline: LatencySummary | None) -> str:
    def one(s: LatencySummary) -> str:
        return (f"n={s.count}, p50 {_ms(s.p50_ms)}, p95 {_ms(s.p95_ms)}, "
                f"p99 {_ms(s.p99_ms)}, max {_ms(s.max_ms)}")

    parts = []
    if current:
        parts.append(f"this run: {one(current)}")
    if baseline:
        parts.append(f"baseline: {one(baseline)}")
    return "; ".join(parts)


def _ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def _value(v: Any, unit: str) -> str:
    if not isinstance(v, int | float):
        return "?"
    if unit == "ms":
        return _ms(float(v))
    return f"{v:.4g} {unit}".rstrip()


def _bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0f}%" if x >= 10 else f"{x:.1f}%"


@cache
def _template() -> Template:
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(ms=_ms, bytes=_bytes, pct=_pct)
    source = files("clnrm.reports").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(source)
