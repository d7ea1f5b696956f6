"""What every clnrm command line shares: ``clnrm`` and the ``memory``, ``perf`` and ``swarm``
groups, wherever their commands live (``clnrm/commands/``, ``clnrm/chaos/cli.py``,
``memory/cli.py``, ``clnrm/perf/cli.py``, ``ray_cluster/cli.py``).

One place for how an error is printed and which exit code it gets (:func:`fail`), how text
is styled without reading user text as rich markup (:func:`styled`), ``--format json``
through :mod:`clnrm.output` (:func:`emit_or_print`), loading test files with warnings on
stderr, SIGTERM as Ctrl-C, and progress bars.  A command group only imports from here, so
a new one (``clnrm heal``, ``clnrm generate``) prints and exits like the others.

Only typer and ``enum`` are imported at module level: every CLI imports this module for
``clnrm --help``, which must stay fast; rich and the rest load when a command uses them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from clnrm.cli_types import BackendName, OutputFormat
from clnrm.interrupts import signals_as_interrupts

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "HOST_MOUNTS_HELP",
    "PASS_THROUGH",
    "STRICT_HELP",
    "BackendName",
    "FormatOpt",
    "OutputFormat",
    "console",
    "emit_or_print",
    "fail",
    "help_as_written",
    "load_all",
    "parse_map",
    "progress",
    "signals_as_interrupts",
    "state",
    "styled",
    "table",
]

# The top-level options (``clnrm --debug -v ...``), set by clnrm.cli's callback; the
# delegated groups (memory, perf, swarm) run after it, so they see them too.
state: dict[str, Any] = {"debug": False, "verbose": 0}

FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f")]
STRICT_HELP = "Treat warnings (unknown keys, keys that have no effect) as errors."
HOST_MOUNTS_HELP = ("Let files bind-mount sensitive host paths (the engine socket, /, /etc, "
                    "/proc, /sys, /var/run, the home); refused by default.")
# A command that hands its arguments to another typer app (clnrm memory/perf/swarm).
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
                "help_option_names": []}


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def styled(prefix: str, style: str, body: object) -> Any:
    """A coloured prefix before user text that must never be read as rich markup.
    Secret values (clnrm.redact) are masked: errors may quote what a file rendered to."""
    from rich.text import Text

    from clnrm.redact import redact_text

    return Text.assemble((prefix, style), redact_text(str(body)))


def fail(exc: BaseException | str) -> NoReturn:
    """One clear message on stderr, exit 2 (a ClnrmError's own code, 130 for interrupts);
    the traceback only with ``--debug``.  With ``--format json`` the JSON document (with its
    ``error``) is printed on stdout first."""
    from clnrm.errors import ClnrmError

    if state["debug"] and isinstance(exc, BaseException):
        import traceback

        traceback.print_exception(exc)
    code = exc.exit_code if isinstance(exc, ClnrmError) else 2
    from clnrm.output import emit_error

    emit_error(exc)
    console(stderr=True).print(styled("error: ", "bold red", exc), soft_wrap=True)
    raise typer.Exit(code)


def emit_or_print(fmt: OutputFormat, data: Any, human: Callable[[], None], *,
                  command: str) -> None:
    """``--format json``: ``data`` as one line in the JSON envelope, named after the running
    command (``command`` when none was set); otherwise ``human()`` prints it."""
    if fmt is OutputFormat.json:
        from clnrm.output import current_command, emit

        emit(current_command() or command, data, indent=None)
    else:
        human()


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table on stdout whose cells wrap instead of being cut."""
    from rich.table import Table

    tab = Table(title=title)
    for column in columns:
        tab.add_column(column, overflow="fold")
    for row in rows:
        tab.add_row(*row)
    console().print(tab)


def load_all(paths: list[Path], *, strict: bool) -> list[Any]:
    """Load every file first (clnrm.api.load_files); warnings go to stderr as they come."""
    from clnrm.api import load_files

    err = console(stderr=True)
    return load_files(paths, strict=strict, on_warning=lambda w: err.print(
        styled("warning: ", "yellow", w), soft_wrap=True))


def parse_map(items: list[str]) -> dict[str, str]:
    """``--image-map FROM=TO`` items as a dict (a bad item is a ClnrmError)."""
    from clnrm.api import parse_image_map

    return parse_image_map(items)


class progress:  # noqa: N801
    """Rich progress bars on a terminal; silent otherwise (CI logs stay clean).  Entering
    gives the ``on_event(test, message)`` callback a runner takes, or None."""

    def __init__(self, fmt: OutputFormat, total: int) -> None:
        self._enabled = fmt is OutputFormat.human and sys.stderr.isatty()
        self._total = total

    def __enter__(self) -> Any:
        if not self._enabled:
            return None
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(SpinnerColumn(), TextColumn("{task.fields[test]}"),
                             TextColumn("[dim]{task.description}"), TimeElapsedColumn(),
                             console=console(stderr=True), transient=True)
        self._bar.__enter__()
        self._tasks: dict[str, Any] = {}

        def on_event(test: str, message: str) -> None:
            if test not in self._tasks:
                self._tasks[test] = self._bar.add_task(message, test=test, total=None)
            self._bar.update(self._tasks[test], description=message)

        return on_event

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._bar.__exit__(None, None, None)


def help_as_written() -> None:
    """Three fixes to how typer renders help (idempotent; skipped if typer's internals moved):

    - a flag (``--debug``, ``--help``, ``-v``) shows no value type: typer printed
      ``<bool>``/``<int>`` as if it took one;
    - help text is literal: typer parses it as rich markup, so ``[[chaos.faults]]`` or
      ``[default: $CLNRM_MEMORY]`` vanished (clnrm's help never uses markup);
    - a docstring's first paragraph is one line in the command list, as typer does for
      plain help (it kept the source's line breaks).

    The last two need ``typer.rich_utils``, which costs more to import than the whole
    CLI, so they are applied when help is first rendered, not at import."""
    from typer.core import TyperCommand, TyperGroup, TyperOption

    if getattr(TyperOption.display_type_rich, "_clnrm", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.metavar is None and (self.is_flag or self.count):
            return None
        return shown(self, ctx)

    display_type_rich._clnrm = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]

    def literal_text() -> None:
        from typer import rich_utils

        make_text = getattr(rich_utils, "_make_rich_text", None)
        command_help = getattr(rich_utils, "_make_command_help", None)
        if make_text is None or command_help is None or getattr(make_text, "_clnrm", False):
            return  # another typer: its help as it is (tests/unit/test_cli_polish.py says so)
        from rich.markup import escape

        def _make_rich_text(*, text: str, style: str = "", markup_mode: Any) -> Any:
            if markup_mode == "rich":
                text = escape(text)
            return make_text(text=text, style=style, markup_mode=markup_mode)

        def _make_command_help(*, help_text: str, markup_mode: Any) -> Any:
            first, sep, rest = help_text.strip().partition("\n\n")
            if not first.startswith("\b"):
                help_text = " ".join(first.split()) + sep + rest
            return command_help(help_text=help_text, markup_mode=markup_mode)

        _make_rich_text._clnrm = True  # type: ignore[attr-defined]
        rich_utils._make_rich_text = _make_rich_text
        rich_utils._make_command_help = _make_command_help

    for cls in (TyperCommand, TyperGroup):
        def format_help(self: Any, ctx: Any, formatter: Any, _format: Any = cls.format_help,
                        ) -> None:
            literal_text()
            _format(self, ctx, formatter)

        cls.format_help = format_help  # type: ignore[method-assign]
