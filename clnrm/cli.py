"""The ``clnrm`` command line.

Only typer is imported at module level: ``clnrm --help`` must start in well
under half a second, so pydantic models, docker, networkx, structlog and every
heavy layer are imported inside the command that needs them.  Every
:class:`~clnrm.errors.ClnrmError` becomes one message and exit code 2; a
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from clnrm import __version__
from clnrm.cli_types import BackendName, OutputFormat

if TYPE_CHECKING:
    from rich.console import Console

    from clnrm.results import RunResult


def _help_as_written() -> None:
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


_help_as_written()


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


_DELEGATED = {"memory": ("clnrm.memory.cli", "memory_app"), "perf": ("clnrm.perf.cli", "perf_app"),
              "swarm": ("clnrm.swarm.cli", "swarm_app")}

app = typer.Typer(
    name="clnrm",
    cls=_Group,
    help="Hermetic integration tests from TOML, run in real Docker, judged on spans.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Build and list the local base images (nothing is ever pulled).",
                         no_args_is_help=True)
app.add_typer(images_app, name="images")
chaos_app = typer.Typer(help="Fault injection: the fault catalog, and running one experiment.",
                        no_args_is_help=True)
app.add_typer(chaos_app, name="chaos")


_state: dict[str, Any] = {"debug": False, "verbose": 0}


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _styled(prefix: str, style: str, body: object) -> Any:
    """A coloured prefix before user text that must never be read as rich markup.
    Secret values (clnrm.redact) are masked: errors may quote what a file rendered to."""
    from rich.text import Text

    from clnrm.redact import redact_text

    return Text.assemble((prefix, style), redact_text(str(body)))


def _fail(exc: BaseException) -> NoReturn:
    """One clear message, exit 2 (130 for interrupts); the traceback only with --debug."""
    from clnrm.errors import ClnrmError

    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    code = exc.exit_code if isinstance(exc, ClnrmError) else 2
    from clnrm.output import emit_error

    emit_error(exc)  # --format json: the document is printed even on exit 2
    _console(stderr=True).print(_styled("error: ", "bold red", exc), soft_wrap=True)
    raise typer.Exit(code)


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
    _state["debug"] = debug
    _state["verbose"] = verbose
    from clnrm.output import expect_json

    expect_json(None)
    from clnrm.logs import configure

    configure(verbose, debug=debug)


# -- validate ----------------------------------------------------------------

_STRICT_HELP = "Treat warnings (unknown keys, keys that have no effect) as errors."
_HOST_MOUNTS_HELP = ("Let files bind-mount sensitive host paths (the engine socket, /, /etc, "
                     "/proc, /sys, /var/run, the home); refused by default.")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Test files or folders.")],
    strict: Annotated[bool, typer.Option(help=_STRICT_HELP)] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
    allow_host_mounts: Annotated[bool, typer.Option(help=_HOST_MOUNTS_HELP)] = False,
) -> None:
    """Check test files without running anything: exit 0 if all are valid, 2 otherwise."""
    from clnrm.output import emit, expect_json
    from clnrm.scenario import validate_paths
    from clnrm.scenario.mounts import allowing_host_mounts

    expect_json("validate" if fmt is OutputFormat.json else None)
    try:
        _refuse_special_files(paths)
        with allowing_host_mounts(allow_host_mounts):
            outcomes = validate_paths(paths, strict=strict)
    except Exception as exc:
        _fail(exc)
    bad = [o for o in outcomes if not o.ok]
    if fmt is OutputFormat.json and outcomes:
        emit("validate", [_outcome_dict(o) for o in outcomes], error=_first_invalid(bad))
    elif fmt is not OutputFormat.json:
        out = _console()
        for o in outcomes:
            for w in o.warnings:
                out.print(_styled("warning: ", "yellow", w), soft_wrap=True)
            for e in o.errors:
                out.print(_styled("✗ ", "red", e), soft_wrap=True)
            for note in o.notes:
                out.print(_styled("note: ", "cyan", note), soft_wrap=True)
            if o.ok:
                out.print(_styled("✓ ", "green", o.path), soft_wrap=True)
        out.print(f"{len(outcomes) - len(bad)} valid, {len(bad)} invalid")
    if not outcomes:
        _fail(_no_files(paths))
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


def _refuse_special_files(paths: list[Path]) -> None:
    """A device or FIFO is refused before anything is read (shared with clnrm.run)."""
    from clnrm.api import refuse_special_files

    refuse_special_files(paths)


def _no_files(paths: list[Path]) -> Exception:
    from clnrm.api import no_files_error

    return no_files_error(paths)


# -- run ---------------------------------------------------------------------


@app.command()
def run(
    paths: Annotated[list[Path], typer.Argument(help="Test files or folders.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64,
                                      help="Tests to run at once.")] = 1,
    backend: Annotated[BackendName, typer.Option(help="Where tests run.")] = BackendName.docker,
    seed: Annotated[int | None, typer.Option(help="Seed for every test (overrides files).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
    strict: Annotated[bool, typer.Option(help=_STRICT_HELP)] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop after a failure.")] = False,
    image_map: Annotated[list[str] | None, typer.Option(
        "--image-map", help="Use a local image for one a file names: FROM=TO, repeatable.")] = None,
    default_image: Annotated[str, typer.Option(
        help="Image for steps that name no service.")] = "clnrm/busybox:latest",
    traces: Annotated[Path | None, typer.Option(
        help="Judge an existing trace export (OTLP JSON, Jaeger JSON, spans.jsonl; a regular "
             "file, or - for stdin) against the files' expectations; no containers run.")]
    = None,
    digest: Annotated[bool, typer.Option(
        "--digest", help="Print each test's span digest (ids and times normalised).")] = False,
    otel_endpoint: Annotated[str | None, typer.Option(
        help="After the run, export its spans (clnrm's own and the services') to this OTLP "
             "endpoint, e.g. Jaeger [default: $OTEL_EXPORTER_OTLP_ENDPOINT].")] = None,
    otel_protocol: Annotated[str | None, typer.Option(
        help="http/protobuf or grpc [default: $OTEL_EXPORTER_OTLP_PROTOCOL or "
             "http/protobuf].")] = None,
    artifacts: Annotated[Path, typer.Option(
        help="Folder for per-run artifacts (spans.jsonl per test).")] = Path(".clnrm/runs"),
    report_json: Annotated[Path | None, typer.Option(help="Write a JSON report.")] = None,
    report_junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report.")] = None,
    report_html: Annotated[Path | None, typer.Option(
        help="Write a self-contained HTML report (waterfall, service graph).")] = None,
    allow_host_mounts: Annotated[bool, typer.Option(help=_HOST_MOUNTS_HELP)] = False,
) -> None:
    """Run test files (exit 0 all passed, 1 a test failed, 2 bad input or set-up)."""
    from clnrm.api import run_options  # the options clnrm.run builds too
    from clnrm.scenario.mounts import allowing_host_mounts

    options = run_options(backend=backend.value, jobs=jobs, seed=seed,
                          default_image=default_image, artifacts=artifacts, fail_fast=fail_fast)
    with allowing_host_mounts(allow_host_mounts):
        _run_files(paths, options, strict=strict, image_map=image_map or [], traces=traces,
                   fmt=fmt, digest=digest, reports=(report_json, report_junit, report_html),
                   command="run", otel=(otel_endpoint, otel_protocol))


def _run_files(paths: list[Path], options: Any, *, strict: bool, image_map: list[str],
               fmt: OutputFormat, reports: tuple[Path | None, Path | None, Path | None],
               traces: Path | None = None, digest: bool = False,
               require: Any = None, command: str = "run",
               otel: tuple[str | None, str | None] = (None, None)) -> NoReturn:
    """Load every file, run (or judge traces), write reports, print, exit with the verdict.
    ``require(scenarios)`` may refuse the set before anything runs."""
    from clnrm.errors import ClnrmError, InterruptedRun
    from clnrm.output import expect_json
    from clnrm.runner import Runner

    expect_json(command if fmt is OutputFormat.json else None)

    try:
        _refuse_special_files(paths)
        export_to = _otel_target(*otel) if traces is None else None
        scenarios = _load_all(paths, strict=strict)
        if require is not None:
            require(scenarios)
        options.image_map = _parse_map(image_map)
        if traces is not None:
            from clnrm.otel.tracefile import load_trace_file

            spans = load_trace_file(traces, allow_stdin=True)
            result = Runner(options).judge_traces(scenarios, spans, str(traces))
        else:
            with _signals_as_interrupts() as received, \
                    _progress(fmt, len(scenarios)) as on_event:
                runner = Runner(options, on_event=on_event)
                try:
                    result = runner.run(scenarios)
                except KeyboardInterrupt:
                    raise InterruptedRun(received.get("name", "SIGINT")) from None
            if export_to is not None:
                _forward_spans(runner, result, export_to)
        _attach_load_warnings(result, scenarios)
        _write_reports(result, json_path=reports[0], junit_path=reports[1],
                       html_path=reports[2])
    except (ClnrmError, OSError) as exc:
        _fail(exc)
    _print_result(result, fmt, digest=digest, command=command)
    raise typer.Exit(result.exit_code)


def _otel_target(endpoint: str | None, protocol: str | None) -> Any:
    """Where the run's spans go (``--otel-endpoint`` or ``OTEL_EXPORTER_OTLP_*``), or None."""
    from clnrm.api import otel_target

    return otel_target(endpoint, protocol)


def _forward_spans(runner: Any, result: RunResult, target: Any) -> None:
    """Export clnrm's spans and every test's received spans; a failure is one warning line
    (bounded by the target's timeout), never a changed verdict."""
    from clnrm.api import forward_run_spans

    report = forward_run_spans(runner, result, target)
    if not report.ok:
        _console(stderr=True).print(_styled("warning: ", "yellow", report.warning()),
                                    soft_wrap=True)


# Loading, image maps and reports live in clnrm.api so clnrm.run() and the CLI agree.


def _attach_load_warnings(result: RunResult, scenarios: list[Any]) -> None:
    from clnrm.api import attach_load_warnings

    attach_load_warnings(result, scenarios)


def _write_reports(result: RunResult, *, json_path: Path | None, junit_path: Path | None,
                   html_path: Path | None) -> None:
    from clnrm.api import write_reports

    write_reports(result, json_path=json_path, junit_path=junit_path, html_path=html_path)


def _load_all(paths: list[Path], *, strict: bool) -> list[Any]:
    """Load every file first (clnrm.api.load_files); warnings go to stderr as they come."""
    from clnrm.api import load_files

    err = _console(stderr=True)
    return load_files(paths, strict=strict, on_warning=lambda w: err.print(
        _styled("warning: ", "yellow", w), soft_wrap=True))


def _parse_map(items: list[str]) -> dict[str, str]:
    from clnrm.api import parse_image_map

    return parse_image_map(items)


class _signals_as_interrupts:  # noqa: N801 - used as a context manager, reads like one
    """SIGTERM behaves like Ctrl-C inside the block, so both take the cleanup path."""

    def __enter__(self) -> dict[str, str]:
        self.received: dict[str, str] = {}

        def handler(signum: int, frame: object) -> None:
            self.received["name"] = signal.Signals(signum).name
            # ignore further signals while cleanup runs: a second Ctrl-C must not leak
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise KeyboardInterrupt

        self._old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self.received

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class _progress:  # noqa: N801
    """Rich progress bars on a terminal; silent otherwise (CI logs stay clean)."""

    def __init__(self, fmt: OutputFormat, total: int) -> None:
        self._enabled = fmt is OutputFormat.human and sys.stderr.isatty()
        self._total = total

    def __enter__(self) -> Any:
        if not self._enabled:
            return None
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(SpinnerColumn(), TextColumn("{task.fields[test]}"),
                             TextColumn("[dim]{task.description}"), TimeElapsedColumn(),
                             console=_console(stderr=True), transient=True)
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


def _print_result(result: RunResult, fmt: OutputFormat, *, digest: bool = False,
                  command: str = "run") -> None:
    from rich.markup import escape

    from clnrm.redact import redacted
    from clnrm.results import Outcome

    result = redacted(result)
    if fmt is OutputFormat.json:
        from clnrm.output import emit
        from clnrm.reports import run_error

        emit(command, result, error=run_error(result))
        return
    out = _console()
    for lim in result.limitations:
        out.print(_styled(f"backend {result.backend} cannot isolate: ", "yellow", lim),
                  soft_wrap=True)
    marks = {Outcome.PASSED: "[green]✓ PASS[/]", Outcome.FAILED: "[red]✗ FAIL[/]",
             Outcome.ERROR: "[red]! ERROR[/]", Outcome.SKIPPED: "[yellow]- SKIP[/]"}
    from rich.text import Text

    from clnrm.reports._human import (
        expectations_summary,
        failed_expectation_lines,
        message_lines,
        plural,
    )

    for t in result.tests:
        out.print(f"{marks[t.outcome]} {escape(t.name)} [dim]({escape(t.file)}, "
                  f"{t.duration_s:.2f} s, {plural(len(t.steps), 'step')})[/]", soft_wrap=True)
        for line in message_lines(t):
            out.print("    " + line, soft_wrap=True, markup=False)
        for line in failed_expectation_lines(t):  # each failed expectation and why
            out.print(Text("    " + line, style="red"), soft_wrap=True)
        if t.validations:
            out.print(Text("    " + expectations_summary(t), style="dim"), soft_wrap=True)
        if t.chaos is not None:
            from clnrm.chaos.report import timeline_lines

            for line in timeline_lines(t.chaos):
                out.print("    " + line, markup=False, soft_wrap=True)
        if t.performance is not None:
            from clnrm.perf.text import summary_lines

            for line in summary_lines(t):
                out.print("    " + line, markup=False, soft_wrap=True)
        if digest and t.digest:
            out.print(f"    digest {t.digest}", markup=False, soft_wrap=True)
    counts = ", ".join(f"{result.count(o)} {o.value}" for o in Outcome if result.count(o))
    out.print(f"run {result.run_id}: {counts} in {result.duration_s:.2f} s")


@app.command("self-test")
def self_test(
    suite: Annotated[Path | None, typer.Option(help="Suite folder (positive/, negative/).")]
    = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=16)] = 2,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
) -> None:
    """Check clnrm's span validation on spans sent over real OTLP (exit 0 when sound)."""
    from clnrm.errors import ClnrmError, InterruptedRun
    from clnrm.output import emit, expect_json
    from clnrm.runner import Runner, RunOptions
    from clnrm.selftest import find_suite, judge

    expect_json("self-test" if fmt is OutputFormat.json else None)
    try:
        folder = find_suite(suite)
        scenarios = _load_all([folder], strict=True)
        with _signals_as_interrupts() as received, _progress(fmt, len(scenarios)) as on_event:
            try:
                result = Runner(RunOptions(jobs=jobs), on_event=on_event).run(scenarios)
            except KeyboardInterrupt:
                raise InterruptedRun(received.get("name", "SIGINT")) from None
    except ClnrmError as exc:
        _fail(exc)
    checks = judge(result, folder)
    if fmt is OutputFormat.json:
        emit("self-test", checks)
    else:
        out = _console()
        for c in checks:
            out.print(_styled("✓ " if c.ok else "✗ ", "green" if c.ok else "red",
                              f"{c.file}: expected {c.expected}; {c.detail}".rstrip("; ")),
                      soft_wrap=True)
        bad = sum(not c.ok for c in checks)
        out.print(f"self-test: {len(checks) - bad} of {len(checks)} behaved as expected")
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


# -- doctor --------------------------------------------------------------------


@app.command()
def doctor(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
) -> None:
    """Check this machine can run clnrm: engine, cgroups, fault tools, images, memory, Ray,
    disk; each problem with a fix (exit 0 when every required check passes, 1 otherwise)."""
    from clnrm.doctor import CheckStatus, diagnose

    report = diagnose()
    if fmt is OutputFormat.json:
        from clnrm.output import emit

        emit("doctor", report)  # the envelope's clnrm_version is the report's
        raise typer.Exit(report.exit_code)
    out = _console()
    marks = {CheckStatus.OK: ("✓ ", "green"), CheckStatus.WARN: ("! ", "yellow"),
             CheckStatus.FAIL: ("✗ ", "red"), CheckStatus.SKIP: ("- ", "dim")}
    for c in report.checks:
        mark, style = marks[c.status]
        out.print(_styled(mark, style, f"{c.name}: {c.summary}"), soft_wrap=True)
        if c.fix and c.status is not CheckStatus.OK:
            out.print(_styled("    fix: ", "dim", c.fix), soft_wrap=True)
    failed = [c.name for c in report.checks if c.required and c.status is not CheckStatus.OK
              and c.status is not CheckStatus.WARN]
    out.print(f"clnrm {report.clnrm_version}: " + ("ready" if report.ok else
              f"not ready ({', '.join(failed)})"))
    raise typer.Exit(report.exit_code)


# -- images, gc, plugins, init -------------------------------------------------


@images_app.command("build")
def images_build(
    names: Annotated[list[str] | None, typer.Argument(
        help="busybox, debian, python-otel, demo-redis, demo-postgres, demo-app "
             "(default: all).")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when cached.")] = False,
    pull: Annotated[bool, typer.Option(
        "--pull", help="Opt-in, for users with a registry: take the Debian base from "
                       "debian:bookworm-slim instead of debootstrapping it (no root or Linux "
                       "host needed); later builds keep it until --force.")] = False,
) -> None:
    """Build the local base images and cache them by content hash (nothing pulled unless
    --pull)."""
    from clnrm.backends.docker import docker_client
    from clnrm.errors import ClnrmError
    from clnrm.images import KNOWN_IMAGES, build_images

    try:
        unknown = [n for n in names or [] if n not in KNOWN_IMAGES]
        if unknown:
            raise ClnrmError(f"unknown image {unknown[0]!r}",
                             hint="known images: " + ", ".join(KNOWN_IMAGES))
        client = docker_client()
        out = _console(stderr=True)
        with out.status("building images") as status:
            results = build_images(client, names or None, force=force, pull=pull,
                                   on_event=lambda n, m: status.update(f"{n}: {m[:100]}"))
    except ClnrmError as exc:
        _fail(exc)
    for r in results:
        how = "cached" if r.cached else f"built in {r.seconds:.1f} s"
        _console().print(f"[green]✓[/] {r.tag} ({how})")


@images_app.command("list")
def images_list() -> None:
    """Show the known local images and whether each is present."""
    from clnrm.backends.docker import docker_client
    from clnrm.errors import ClnrmError
    from clnrm.images import KNOWN_IMAGES

    try:
        client = docker_client()
    except ClnrmError as exc:
        _fail(exc)
    from clnrm.images._user import BUILD_CONTEXT_LABEL, user_built_images

    rows = []
    for short, spec in KNOWN_IMAGES.items():
        present = bool(client.api.images(name=spec.tag))
        rows.append(("present" if present else "missing", short, spec.tag))
    for image in user_built_images(client):  # services' `build = {...}` images
        rows.append(("built", image.labels.get("clnrm.image.name", "build"),
                     f"{', '.join(image.tags) or image.id} "
                     f"(context {image.labels.get(BUILD_CONTEXT_LABEL, '?')})"))
    out = _console()
    styles = {"present": "green", "built": "green", "missing": "red"}
    for (status, *_), line in zip(rows, _aligned(rows), strict=True):
        out.print(_styled(line[:len(status)], styles[status], line[len(status):]), soft_wrap=True)


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as lines whose columns start at the same offsets (two spaces between columns;
    the last column is not padded)."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False))
            + "  " + row[-1] for row in rows]


@app.command()
def gc(
    everything: Annotated[bool, typer.Option("--all", help="Also remove live runs' resources.")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
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
        _fail(exc)
    if fmt is OutputFormat.json:
        emit("gc", {"dry_run": dry_run, "runs": found})
        return
    out = _console()
    verb = "would remove" if dry_run else "removed"
    for r in found:
        out.print(f"{verb} run {r.run_id}: {len(r.containers)} containers, "
                  f"{len(r.networks)} networks, {len(r.volumes)} volumes", soft_wrap=True)
        for line in r.undone:
            out.print(f"  undid {line}", markup=False, soft_wrap=True)
    if not found:
        out.print("nothing to collect")


@app.command()
def plugins(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
) -> None:
    """List the installed service plugins."""
    from clnrm.errors import ClnrmError
    from clnrm.output import emit, expect_json
    from clnrm.plugins import service_types

    expect_json("plugins" if fmt is OutputFormat.json else None)
    try:
        types = service_types()
    except ClnrmError as exc:
        _fail(exc)
    if fmt is OutputFormat.json:
        emit("plugins", [{"name": name, "description": st.description,
                          "module": type(st).__module__}
                         for name, st in sorted(types.items())])
        return
    for name, st in sorted(types.items()):
        _console().print(f"{name:20} {st.description}")


@app.command()
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
        _fail(os_error(target, exc, "write the first test"))
    except ClnrmError as exc:
        _fail(exc)
    _console().print(f"wrote {target}; run it with: clnrm run {target}")


import_app = typer.Typer(help="Start a test from another tool's file (docker-compose).",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


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
        _fail(os_error(compose_file, exc, "read the compose file"))
    except ClnrmError as exc:
        _fail(exc)
    err = _console(stderr=True)
    for warning in result.warnings:
        err.print(_styled("warning: ", "yellow", warning), soft_wrap=True)
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
        _fail(os_error(output, exc, "write the imported test"))
    except ClnrmError as exc:
        err.print(f"wrote {output}, but it does not validate yet:", markup=False)
        _fail(exc)
    _console().print(f"wrote {output}; run it with: clnrm run {output}", markup=False,
                     soft_wrap=True)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
                 "help_option_names": []}


@chaos_app.command("list")
def chaos_list(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
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
        _fail(exc)
    if category is not None and not entries:
        _fail(ClnrmError(f"no fault category {category!r}",
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
    _console().print(table)


@chaos_app.command("run")
def chaos_run(
    experiment: Annotated[list[Path], typer.Argument(
        help="Experiment files (test files with [[chaos.faults]]) or folders of them.")],
    seed: Annotated[int | None, typer.Option(
        help="Seed for fault schedules and toxics (overrides the files).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
    strict: Annotated[bool, typer.Option(help=_STRICT_HELP)] = False,
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
    _run_files(experiment, options, strict=strict, image_map=[], fmt=fmt,
               reports=(report_json, report_junit, report_html), require=require,
               command="chaos run")


@app.command("memory", context_settings=_PASS_THROUGH, add_help_option=False)
def memory_group(ctx: typer.Context) -> None:
    """Query and maintain the agents' shared memory (query, stats, export, import, forget)."""
    # Delegated, not mounted: importing the memory package loads pydantic models,
    # which `clnrm --help` must not pay for.
    from clnrm.memory.cli import memory_app

    memory_app(args=ctx.args, prog_name="clnrm memory")


@app.command("perf", context_settings=_PASS_THROUGH, add_help_option=False)
def perf_group(ctx: typer.Context) -> None:
    """Performance baselines in the shared memory (perf baseline save, show, list, diff)."""
    from clnrm.perf.cli import perf_app

    perf_app(args=ctx.args, prog_name="clnrm perf")


@app.command("swarm", context_settings=_PASS_THROUGH, add_help_option=False)
def swarm_group(ctx: typer.Context) -> None:
    """Run test files through the agent swarm on Ray (embedded, or --address)."""
    from clnrm.swarm.cli import swarm_app

    swarm_app(args=ctx.args, prog_name="clnrm swarm")


def main() -> None:
    """Console-script entry point."""
    try:
        # One program name however clnrm was started (`python -m clnrm` too): the usage
        # lines, the completion variable _CLNRM_COMPLETE and the help cache depend on it.
        app(prog_name="clnrm")
    except KeyboardInterrupt:  # outside a run: nothing to clean, just exit quietly
        raise SystemExit(130) from None
