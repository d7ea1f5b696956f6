"""``clnrm run`` and ``clnrm self-test``, and :func:`run_files`, the load-run-report-exit
path ``clnrm chaos run`` shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from clnrm.cli_support import (
    HOST_MOUNTS_HELP,
    STRICT_HELP,
    BackendName,
    FormatOpt,
    OutputFormat,
    console,
    fail,
    load_all,
    parse_map,
    progress,
    signals_as_interrupts,
    styled,
)

if TYPE_CHECKING:
    from clnrm.results import RunResult


def run(
    paths: Annotated[list[Path], typer.Argument(help="Test files or folders.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64,
                                      help="Tests to run at once.")] = 1,
    backend: Annotated[BackendName, typer.Option(help="Where tests run.")] = BackendName.docker,
    seed: Annotated[int | None, typer.Option(help="Seed for every test (overrides files).")] = None,
    fmt: FormatOpt = OutputFormat.human,
    strict: Annotated[bool, typer.Option(help=STRICT_HELP)] = False,
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
    allow_host_mounts: Annotated[bool, typer.Option(help=HOST_MOUNTS_HELP)] = False,
    heal: Annotated[bool | None, typer.Option(
        "--heal/--no-heal", help="Classify each failed test, remediate its environment and "
        "rerun it (default: each file's [self_healing] table); exit 0 when every test "
        "passed or was healed.")] = None,
    max_attempts: Annotated[int | None, typer.Option(
        min=0, max=20, help="Remediations tried per failed test with --heal "
                            "[default: [self_healing] max_attempts, 3].")] = None,
) -> None:
    """Run test files (exit 0 all passed, 1 a test failed, 2 bad input or set-up)."""
    from clnrm.api import run_options  # the options clnrm.run builds too
    from clnrm.scenario.mounts import allowing_host_mounts

    options = run_options(backend=backend.value, jobs=jobs, seed=seed,
                          default_image=default_image, artifacts=artifacts, fail_fast=fail_fast)
    with allowing_host_mounts(allow_host_mounts):
        run_files(paths, options, strict=strict, image_map=image_map or [], traces=traces,
                  fmt=fmt, digest=digest, reports=(report_json, report_junit, report_html),
                  command="run", otel=(otel_endpoint, otel_protocol),
                  heal=(heal, max_attempts))


def run_files(paths: list[Path], options: Any, *, strict: bool, image_map: list[str],
              fmt: OutputFormat, reports: tuple[Path | None, Path | None, Path | None],
              traces: Path | None = None, digest: bool = False,
              require: Any = None, command: str = "run",
              otel: tuple[str | None, str | None] = (None, None),
              heal: tuple[bool | None, int | None] = (False, None)) -> NoReturn:
    """Load every file, run (or judge traces), write reports, print, exit with the verdict.
    ``require(scenarios)`` may refuse the set before anything runs.  Loading, image maps
    and reports are clnrm.api's, so ``clnrm.run()`` and the CLI agree."""
    from clnrm.errors import ClnrmError, InterruptedRun
    from clnrm.output import expect_json
    from clnrm.runner import Runner

    expect_json(command if fmt is OutputFormat.json else None)

    try:
        from clnrm.api import attach_load_warnings, otel_target, refuse_special_files, write_reports

        refuse_special_files(paths)  # a device or FIFO is refused before anything is read
        export_to = otel_target(*otel) if traces is None else None
        scenarios = load_all(paths, strict=strict)
        if heal[0] is not None:  # --heal/--no-heal become each file's self_healing switch
            from clnrm.healing.layer import with_heal_flag

            scenarios = [with_heal_flag(sc, heal[0]) for sc in scenarios]
        if require is not None:
            require(scenarios)
        options.image_map = parse_map(image_map)
        if traces is not None:
            from clnrm.otel.tracefile import load_trace_file

            spans = load_trace_file(traces, allow_stdin=True)
            result = Runner(options).judge_traces(scenarios, spans, str(traces))
        else:
            with signals_as_interrupts() as received, \
                    progress(fmt, len(scenarios)) as on_event:
                runner = Runner(options, on_event=on_event,
                                warm=_PRINTER_MODULES[fmt])  # imported while tests run
                try:
                    result = runner.run(scenarios)
                    from clnrm.healing.layer import healing_on  # light: loaded as a layer

                    if result.exit_code != 0 and any(healing_on(sc) for sc in scenarios):
                        from clnrm.healing.runs import heal_run

                        result = heal_run(result, scenarios, options, flag=heal[0],
                                          max_attempts=heal[1], seed=options.seed or 0,
                                          on_event=on_event)
                except KeyboardInterrupt:
                    raise InterruptedRun(received.get("name", "SIGINT")) from None
            if export_to is not None:
                _forward_spans(runner, result, export_to)
        attach_load_warnings(result, scenarios)
        write_reports(result, json_path=reports[0], junit_path=reports[1],
                      html_path=reports[2])
    except (ClnrmError, OSError) as exc:
        fail(exc)
    print_result(result, fmt, digest=digest, command=command)
    healed_run = any(t.healing is not None for t in result.tests)
    raise typer.Exit(min(result.exit_code, 1) if healed_run else result.exit_code)


def _forward_spans(runner: Any, result: RunResult, target: Any) -> None:
    """Export clnrm's spans and every test's received spans; a failure is one warning line
    (bounded by the target's timeout), never a changed verdict."""
    from clnrm.api import forward_run_spans

    report = forward_run_spans(runner, result, target)
    if not report.ok:
        console(stderr=True).print(styled("warning: ", "yellow", report.warning()),
                                   soft_wrap=True)


_PRINTER_MODULES = {
    OutputFormat.human: ("rich.console", "rich.markup", "rich.text", "clnrm.redact",
                         "clnrm.reports._human"),
    OutputFormat.json: ("rich.markup", "clnrm.redact", "clnrm.reports._json"),
}
"""What :func:`print_result` imports for each format (the Runner imports it while the tests
wait on the engine, so printing adds no import time after the run)."""


def print_result(result: RunResult, fmt: OutputFormat, *, digest: bool = False,
                 command: str = "run") -> None:
    """A run's verdicts: the JSON document (``--format json``) or one line per test with
    its failed expectations, chaos timeline and performance summary."""
    from rich.markup import escape

    from clnrm.redact import redacted
    from clnrm.results import Outcome

    result = redacted(result)
    if fmt is OutputFormat.json:
        from clnrm.output import emit
        from clnrm.reports import run_error

        emit(command, result, error=run_error(result))
        return
    out = console()
    for lim in result.limitations:
        out.print(styled(f"backend {result.backend} cannot isolate: ", "yellow", lim),
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
        if t.healing is not None:
            out.print(Text("    " + t.healing.human(),
                           style="green" if t.healing.healed else "yellow"), soft_wrap=True)
            if t.healing.patch:
                out.print("    proposed patch (clnrm heal propose --apply writes it):",
                          soft_wrap=True)
                for line in t.healing.patch.splitlines():
                    out.print("      " + line, markup=False, soft_wrap=True)
        if digest and t.digest:
            out.print(f"    digest {t.digest}", markup=False, soft_wrap=True)
    counts = ", ".join(f"{result.count(o)} {o.value}" for o in Outcome if result.count(o))
    out.print(f"run {result.run_id}: {counts} in {result.duration_s:.2f} s")


def self_test(
    suite: Annotated[Path | None, typer.Option(help="Suite folder (positive/, negative/).")]
    = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=16)] = 2,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Check clnrm's span validation on spans sent over real OTLP (exit 0 when sound)."""
    from clnrm.errors import ClnrmError, InterruptedRun
    from clnrm.output import emit, expect_json
    from clnrm.runner import Runner, RunOptions
    from clnrm.selftest import find_suite, judge

    expect_json("self-test" if fmt is OutputFormat.json else None)
    try:
        folder = find_suite(suite)
        scenarios = load_all([folder], strict=True)
        with signals_as_interrupts() as received, progress(fmt, len(scenarios)) as on_event:
            try:
                result = Runner(RunOptions(jobs=jobs), on_event=on_event).run(scenarios)
            except KeyboardInterrupt:
                raise InterruptedRun(received.get("name", "SIGINT")) from None
    except ClnrmError as exc:
        fail(exc)
    checks = judge(result, folder)
    if fmt is OutputFormat.json:
        emit("self-test", checks)
    else:
        out = console()
        for c in checks:
            out.print(styled("✓ " if c.ok else "✗ ", "green" if c.ok else "red",
                             f"{c.file}: expected {c.expected}; {c.detail}".rstrip("; ")),
                      soft_wrap=True)
        bad = sum(not c.ok for c in checks)
        out.print(f"self-test: {len(checks) - bad} of {len(checks)} behaved as expected")
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)
