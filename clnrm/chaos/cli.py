"""``clnrm chaos list|run``: the fault catalog, and running chaos experiments.

Mounted by :mod:`clnrm.cli` for every ``clnrm --help``, so only typer is imported at
module level (this package's ``__init__`` imports nothing); the catalog and the engine
load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clnrm.cli_support import STRICT_HELP, FormatOpt, OutputFormat, console, fail
from clnrm.commands.run import run_files

chaos_app = typer.Typer(help="Fault injection: the fault catalog, and running one experiment.",
                        no_args_is_help=True)


@chaos_app.command("list")
def chaos_list(
    fmt: FormatOpt = OutputFormat.human,
    category: Annotated[str | None, typer.Option(
        help="Only this category: network, container, resource, application.")] = None,
) -> None:
    """Show every fault type: name, category, what it does, its parameters."""
    from clnrm.errors import ClnrmError
    from clnrm.output import emit, expect_json

    expect_json("chaos list" if fmt is OutputFormat.json else None)
    try:
        from clnrm.chaos.catalog import fault_types

        entries = [cls.describe() for cls in fault_types().values()
                   if category is None or cls.category == category]
    except ClnrmError as exc:
        fail(exc)
    if category is not None and not entries:
        fail(ClnrmError(f"no fault category {category!r}",
                        hint="categories: network, container, resource, application"))
    if fmt is OutputFormat.json:
        emit("chaos list", entries)
        return
    from rich.table import Table

    table = Table(title=f"{len(entries)} fault types", show_lines=False)
    for col in ("type", "category", "what it does", "parameters"):
        table.add_column(col, overflow="fold")
    for e in entries:
        params = ", ".join(f"{k}*" if k in e["required"] else k for k in e["parameters"])
        table.add_row(e["type"], e["category"], e["summary"], params or "-")
    console().print(table)


@chaos_app.command("run")
def chaos_run(
    experiment: Annotated[list[Path], typer.Argument(
        help="Experiment files (test files with [[chaos.faults]]) or folders of them.")],
    seed: Annotated[int | None, typer.Option(
        help="Seed for fault schedules and toxics (overrides the files).")] = None,
    fmt: FormatOpt = OutputFormat.human,
    strict: Annotated[bool, typer.Option(help=STRICT_HELP)] = False,
    default_image: Annotated[str, typer.Option(
        help="Image for steps that name no service.")] = "clnrm/busybox:latest",
    artifacts: Annotated[Path, typer.Option(
        help="Folder for per-run artifacts.")] = Path(".clnrm/runs"),
    report_json: Annotated[Path | None, typer.Option(help="Write a JSON report.")] = None,
    report_junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report.")] = None,
    report_html: Annotated[Path | None, typer.Option(
        help="Write an HTML report with the fault timeline.")] = None,
) -> None:
    """Run chaos experiments: steady state, faults on schedule, rollback, resilience verdicts
    (exit 0 all held, 1 an expectation failed, 2 bad input)."""
    from clnrm.runner import RunOptions

    def require(scenarios: list[Any]) -> None:
        from clnrm.errors import ClnrmError

        plain = [sc.source or sc.name for sc in scenarios
                 if sc.chaos is None or not sc.chaos.faults]
        if plain:
            raise ClnrmError(f"not a chaos experiment (no [[chaos.faults]]): {', '.join(plain)}",
                             hint="add [[chaos.faults]] entries, or use `clnrm run`")

    options = RunOptions(seed=seed, default_image=default_image, artifacts_dir=artifacts)
    run_files(experiment, options, strict=strict, image_map=[], fmt=fmt,
              reports=(report_json, report_junit, report_html), require=require,
              command="chaos run")
