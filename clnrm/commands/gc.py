"""``clnrm gc``: reap what killed runs left behind."""

from __future__ import annotations

from typing import Annotated

import typer

from clnrm.cli_support import FormatOpt, OutputFormat, console, fail


def gc(
    everything: Annotated[bool, typer.Option("--all", help="Also remove live runs' resources.")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Remove containers, networks and volumes left by killed runs (undoing chaos faults
    they left applied first)."""
    from clnrm.backends.docker import docker_client
    from clnrm.errors import ClnrmError
    from clnrm.gc import collect_dead_runs
    from clnrm.output import emit, expect_json

    expect_json("gc" if fmt is OutputFormat.json else None)
    try:
        found = collect_dead_runs(docker_client(), everything=everything, dry_run=dry_run)
    except ClnrmError as exc:
        fail(exc)
    if fmt is OutputFormat.json:
        emit("gc", {"dry_run": dry_run, "runs": found})
        return
    out = console()
    verb = "would remove" if dry_run else "removed"
    for r in found:
        out.print(f"{verb} run {r.run_id}: {len(r.containers)} containers, "
                  f"{len(r.networks)} networks, {len(r.volumes)} volumes", soft_wrap=True)
        for line in r.undone:
            out.print(f"  undid {line}", markup=False, soft_wrap=True)
    if not found:
        out.print("nothing to collect")
