"""``clnrm init`` and ``clnrm import compose``: write a first test file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clnrm.cli_support import console, fail, styled


def init(
    directory: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a first test, tests/basic.clnrm.toml, that runs on the local images."""
    from clnrm.errors import ClnrmError
    from clnrm.paths import check_folder, check_output_file, os_error
    from clnrm.templates import BASIC_TEST

    target = directory / "tests" / "basic.clnrm.toml"
    try:
        check_folder(directory, what="project folder")
        check_folder(target.parent, what="tests folder")
        if target.exists():
            if not force:
                raise ClnrmError(f"{target} exists (use --force to overwrite)")
            check_output_file(target, what="test file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(BASIC_TEST, encoding="utf-8")
    except OSError as exc:
        fail(os_error(target, exc, "write the first test"))
    except ClnrmError as exc:
        fail(exc)
    console().print(f"wrote {target}; run it with: clnrm run {target}")


import_app = typer.Typer(help="Start a test from another tool's file (docker-compose).",
                         no_args_is_help=True)


@import_app.command("compose")
def import_compose_file(
    compose_file: Annotated[Path, typer.Argument(help="A docker-compose YAML file.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The .clnrm.toml to write (default: print it).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write an equivalent .clnrm.toml (services, env, depends_on, healthchecks, commands,
    build); keys with no clnrm meaning become comments and warnings. Exit 2 if the written
    file does not validate (e.g. a host mount clnrm refuses)."""
    from clnrm.compose_import import import_compose
    from clnrm.errors import ClnrmError
    from clnrm.paths import check_output_file, os_error
    from clnrm.scenario import load_scenario

    try:
        result = import_compose(compose_file, output=output)
    except OSError as exc:
        fail(os_error(compose_file, exc, "read the compose file"))
    except ClnrmError as exc:
        fail(exc)
    err = console(stderr=True)
    for warning in result.warnings:
        err.print(styled("warning: ", "yellow", warning), soft_wrap=True)
    if output is None:
        typer.echo(result.text, nl=False)
        return
    try:
        if output.exists() and not force:
            raise ClnrmError(f"{output} exists (use --force to overwrite)")
        check_output_file(output, what="test file")
        output.write_text(result.text, encoding="utf-8")
        load_scenario(output)
    except OSError as exc:
        fail(os_error(output, exc, "write the imported test"))
    except ClnrmError as exc:
        err.print(f"wrote {output}, but it does not validate yet:", markup=False)
        fail(exc)
    console().print(f"wrote {output}; run it with: clnrm run {output}", markup=False,
                    soft_wrap=True)
