"""``clnrm doctor``: can this machine run clnrm, and how to fix what is missing."""

from __future__ import annotations

import typer

from clnrm.cli_support import FormatOpt, OutputFormat, console, styled


def doctor(fmt: FormatOpt = OutputFormat.human) -> None:
    """Check this machine can run clnrm: engine, cgroups, fault tools, images, memory, Ray,
    disk; each problem with a fix (exit 0 when every required check passes, 1 otherwise)."""
    from clnrm.doctor import CheckStatus, diagnose

    report = diagnose()
    if fmt is OutputFormat.json:
        from clnrm.output import emit

        emit("doctor", report)  # the envelope's clnrm_version is the report's
        raise typer.Exit(report.exit_code)
    out = console()
    marks = {CheckStatus.OK: ("✓ ", "green"), CheckStatus.WARN: ("! ", "yellow"),
             CheckStatus.FAIL: ("✗ ", "red"), CheckStatus.SKIP: ("- ", "dim")}
    for c in report.checks:
        mark, style = marks[c.status]
        out.print(styled(mark, style, f"{c.name}: {c.summary}"), soft_wrap=True)
        if c.fix and c.status is not CheckStatus.OK:
            out.print(styled("    fix: ", "dim", c.fix), soft_wrap=True)
    failed = [c.name for c in report.checks if c.required and c.status is not CheckStatus.OK
              and c.status is not CheckStatus.WARN]
    out.print(f"clnrm {report.clnrm_version}: " + ("ready" if report.ok else
              f"not ready ({', '.join(failed)})"))
    raise typer.Exit(report.exit_code)
