"""``clnrm validate``: check test files without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clnrm.cli_support import (
    HOST_MOUNTS_HELP,
    STRICT_HELP,
    FormatOpt,
    OutputFormat,
    console,
    fail,
    styled,
)


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Test files or folders.")],
    strict: Annotated[bool, typer.Option(help=STRICT_HELP)] = False,
    fmt: FormatOpt = OutputFormat.human,
    allow_host_mounts: Annotated[bool, typer.Option(help=HOST_MOUNTS_HELP)] = False,
) -> None:
    """Check test files without running anything: exit 0 if all are valid, 2 otherwise."""
    from clnrm.api import no_files_error, refuse_special_files
    from clnrm.output import emit, expect_json
    from clnrm.scenario import validate_paths
    from clnrm.scenario.mounts import allowing_host_mounts

    expect_json("validate" if fmt is OutputFormat.json else None)
    try:
        refuse_special_files(paths)
        with allowing_host_mounts(allow_host_mounts):
            outcomes = validate_paths(paths, strict=strict)
    except Exception as exc:
        fail(exc)
    bad = [o for o in outcomes if not o.ok]
    if fmt is OutputFormat.json and outcomes:
        emit("validate", [_outcome_dict(o) for o in outcomes], error=_first_invalid(bad))
    elif fmt is not OutputFormat.json:
        out = console()
        for o in outcomes:
            for w in o.warnings:
                out.print(styled("warning: ", "yellow", w), soft_wrap=True)
            for e in o.errors:
                out.print(styled("✗ ", "red", e), soft_wrap=True)
            for note in o.notes:
                out.print(styled("note: ", "cyan", note), soft_wrap=True)
            if o.ok:
                out.print(styled("✓ ", "green", o.path), soft_wrap=True)
        out.print(f"{len(outcomes) - len(bad)} valid, {len(bad)} invalid")
    if not outcomes:
        fail(no_files_error(paths))
    raise typer.Exit(2 if bad else 0)


def _first_invalid(bad: list[Any]) -> dict[str, Any] | None:
    """The ``error`` of validate's JSON document: how many files are invalid, located at
    the first error of the first one."""
    if not bad:
        return None
    from clnrm.output import error_info

    first = bad[0].errors[0] if bad[0].errors else str(bad[0].path)
    info = error_info(first)
    info["message"] = f"{len(bad)} invalid test file{'s' if len(bad) != 1 else ''}: " + \
        info["message"]
    info["file"] = info["file"] or str(bad[0].path)
    return info


def _outcome_dict(o: Any) -> dict[str, Any]:
    def located(e: Any) -> dict[str, Any]:
        return {"file": str(getattr(e, "file", "") or o.path), "line": getattr(e, "line", None),
                "key": getattr(e, "key_path", None), "message": getattr(e, "message", str(e)),
                "hint": getattr(e, "hint", None)}

    return {"path": str(o.path), "kind": o.kind, "status": o.status,
            "errors": [located(e) for e in o.errors],
            "warnings": [located(w) for w in o.warnings], "notes": o.notes}
