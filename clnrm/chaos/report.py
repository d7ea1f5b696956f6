"""The chaos timeline as people read it: lines for the terminal, an SVG for the HTML report.

One picture answers the questions a failed resilience expectation raises: which
fault was applied when, for how long, and what the probes saw meanwhile (a dot per
sample, red when it failed), on one time axis.
"""

from __future__ import annotations

from html import escape

from clnrm.results import ChaosReport

_W, _LABEL, _ROW = 760, 170, 18


def timeline_lines(report: ChaosReport) -> list[str]:
    """Terminal summary: the hypothesis, each fault occurrence, each probe's pass rate."""
    lines = [f"chaos (seed {report.seed}, {report.duration_s:.2f} s):"]
    if report.aborted:
        lines.append(f"  aborted: {report.aborted}")
    for check in report.steady_state:
        mark = "ok" if check.ok else "FAILED"
        lines.append(f"  steady state {check.phase}: {mark} - {check.detail}")
    for e in report.timeline:
        head = f"  {e.fault}#{e.occurrence} ({e.type}"
        head += f" on {e.target})" if e.target else ")"
        if e.skipped:
            lines.append(f"{head}: skipped, {e.skipped}")
            continue
        when = (f" {e.injected_s:.2f}s" if e.injected_s is not None else " never applied")
        if e.rolled_back_s is not None:
            when += f" -> {e.rolled_back_s:.2f}s"
        text = f"{head}:{when}"
        if e.detail:
            text += f" {e.detail}"
        if e.error:
            text += f" [ERROR: {e.error}]"
        lines.append(text)
    for p in report.probes:
        n = len(p.samples)
        ok = sum(s.ok for s in p.samples)
        lines.append(f"  probe {p.name} ({p.target}): {ok}/{n} passed")
    return lines


def timeline_svg(report: ChaosReport) -> str:
    """Faults as bars and probe samples as dots on one axis (seconds from the start)."""
    times = [0.0, report.duration_s]
    for e in report.timeline:
        times += [t for t in (e.planned_s, e.injected_s, e.rolled_back_s) if t is not None]
    for p in report.probes:
        times += [s.t for s in p.samples]
    lo, hi = min(times), max(times)
    span = (hi - lo) or 1.0
    track = _W - _LABEL - 10

    def x(t: float) -> float:
        return round(_LABEL + (t - lo) / span * track, 1)

    rows = [e for e in report.timeline if e.injected_s is not None or e.skipped]
    height = (len(rows) + len(report.probes)) * _ROW + 30
    out = [f'<svg class="chaos-timeline" xmlns="http://www.w3.org/2000/svg" width="{_W}" '
           f'height="{height}" viewBox="0 0 {_W} {height}" role="img" '
           f'aria-label="chaos timeline">']
    y = 4
    for e in rows:
        label = escape(f"{e.fault}#{e.occurrence}")
        out.append(f'<text x="4" y="{y + 12}" font-size="11">{label}</text>')
        if e.injected_s is not None:
            end = e.rolled_back_s if e.rolled_back_s is not None else report.duration_s
            colour = "#e15759" if e.error else "#f28e2b"
            title = escape(f"{e.type} on {e.target or '-'}: {e.injected_s:.2f}s to {end:.2f}s "
                           f"{e.detail} {e.error or ''}".strip())
            out.append(f'<rect class="fault" x="{x(e.injected_s)}" y="{y + 2}" '
                       f'width="{max(1.5, x(end) - x(e.injected_s))}" height="{_ROW - 6}" '
                       f'fill="{colour}"><title>{title}</title></rect>')
        else:
            out.append(f'<text x="{x(e.planned_s)}" y="{y + 12}" font-size="10" '
                       f'fill="#888">skipped</text>')
        y += _ROW
    for p in report.probes:
        out.append(f'<text x="4" y="{y + 12}" font-size="11">{escape(p.name)}</text>')
        for s in p.samples:
            colour = "#59a14f" if s.ok else "#e15759"
            out.append(f'<circle class="{"ok" if s.ok else "fail"}" cx="{x(s.t)}" '
                       f'cy="{y + 9}" r="2.5" fill="{colour}"><title>{s.t:.2f}s '
                       f'{s.ms:.0f} ms {escape(s.detail)}</title></circle>')
        y += _ROW
    axis_y = y + 8
    out.append(f'<line x1="{_LABEL}" y1="{axis_y}" x2="{_LABEL + track}" y2="{axis_y}" '
               f'stroke="#999"/>')
    for i in range(6):
        t = lo + span * i / 5
        out.append(f'<text x="{x(t)}" y="{axis_y + 12}" font-size="10" text-anchor="middle">'
                   f'{t:.1f}s</text>')
    out.append("</svg>")
    return "".join(out)
