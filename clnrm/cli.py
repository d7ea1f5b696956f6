"""The ``clnrm`` command line: the app, its top-level options, and where each command lives.

Commands live beside what they drive (``clnrm/commands/``, ``clnrm/chaos/cli.py``) and
share :mod:`clnrm.cli_support` for errors, output and loading; this module only mounts
them.  One line mounts a command (``app.command()(fn)``), a group
(``app.add_typer(group_app, name=...)``) or a delegated group whose module stays
unimported until it runs (:func:`delegate`).  Every mounted module imports only typer at
module level: ``clnrm --help`` must start in well under half a second.  Every
:class:`~clnrm.errors.ClnrmError` becomes one message and exit code 2; a traceback is
shown only with ``--debug``.  The help cache (:mod:`clnrm._entry`) keys on every loaded
file, so a command mounted here changes the cached help.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from clnrm import __version__
from clnrm.chaos.cli import chaos_app
from clnrm.cli_support import PASS_THROUGH, help_as_written, state
from clnrm.commands.doctor import doctor
from clnrm.commands.gc import gc
from clnrm.commands.images import images_app
from clnrm.commands.plugins import plugins
from clnrm.commands.run import run, self_test
from clnrm.commands.scaffold import import_app, init
from clnrm.commands.validate import validate
from clnrm.intelligence.cli import generate

help_as_written()


class _Group(typer.core.TyperGroup):
    """The top-level group.  ``memory``, ``perf`` and ``swarm`` are delegated commands (their
    modules stay unimported for ``clnrm --help``); shell completion walks the real groups
    instead, so ``clnrm memory <TAB>`` offers ``query``, ``stats``...  Completion parses with
    ``resilient_parsing``, which a normal invocation never sets."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if ctx.resilient_parsing and cmd_name in _DELEGATED:
            module, attr = _DELEGATED[cmd_name]
            from importlib import import_module

            command = typer.main.get_command(getattr(import_module(module), attr))
            command.name = cmd_name
            return command
        return super().get_command(ctx, cmd_name)


# name -> (module, typer app attribute) of each delegated group; filled by delegate().
_DELEGATED: dict[str, tuple[str, str]] = {}

app = typer.Typer(
    name="clnrm",
    cls=_Group,
    help="Hermetic integration tests from TOML, run in real Docker, judged on spans.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clnrm {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="More log output (-vv for debug).")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    state["debug"] = debug
    state["verbose"] = verbose
    from clnrm.output import expect_json

    expect_json(None)
    from clnrm.logs import configure

    configure(verbose, debug=debug)


def delegate(name: str, module: str, attr: str, help_text: str) -> None:
    """Mount ``module.attr`` (a typer app) as ``clnrm NAME`` without importing it: the
    command hands its arguments over when it runs, so ``clnrm --help`` never pays for the
    group's imports (the memory's pydantic models, numpy, Ray); completion walks the real
    group (:class:`_Group`)."""

    def group(ctx: typer.Context) -> None:
        from importlib import import_module

        getattr(import_module(module), attr)(args=ctx.args, prog_name=f"clnrm {name}")

    group.__doc__ = help_text
    _DELEGATED[name] = (module, attr)
    app.command(name, context_settings=PASS_THROUGH, add_help_option=False)(group)


# -- the commands, in the order `clnrm --help` lists them (commands, then groups) ----------

app.command()(validate)
app.command()(run)
app.command("self-test")(self_test)
app.command()(doctor)
app.command()(gc)
app.command()(plugins)
app.command()(init)
app.command()(generate)
delegate("memory", "clnrm.memory.cli", "memory_app",
         "Query and maintain the agents' shared memory (query, stats, export, import, forget, "
         "serve).")
delegate("perf", "clnrm.perf.cli", "perf_app",
         "Performance baselines in the shared memory (perf baseline save, show, list, diff).")
delegate("swarm", "clnrm.swarm.cli", "swarm_app",
         "Run test files through the agent swarm on Ray (embedded, or --address; "
         "swarm cluster up: a local multi-node one).")
delegate("heal", "clnrm.healing.cli", "heal_app",
         "Self-healing: the remediation catalog, what was learned, proposed file fixes.")
delegate("campaign", "clnrm.swarm.campaign.cli", "campaign_app",
         "Long autonomous test campaigns on the swarm (start, status, resume, stop, list, "
         "report).")
app.add_typer(images_app, name="images")
app.add_typer(chaos_app, name="chaos")
app.add_typer(import_app, name="import")


def main() -> None:
    """Console-script entry point."""
    try:
        # One program name however clnrm was started (`python -m clnrm` too): the usage
        # lines, the completion variable _CLNRM_COMPLETE and the help cache depend on it.
        app(prog_name="clnrm")
    except KeyboardInterrupt:  # outside a run: nothing to clean, just exit quietly
        raise SystemExit(130) from None
