"""The public Python API: ``clnrm.run(paths, **options) -> RunResult``.

Why it exists: people who live in pytest (or a notebook, or a release script) want
clnrm's verdict as data, not as an exit code and a terminal.  :func:`run` does what
``clnrm run`` does -- load every file first (one bad file stops the run before any
container starts), check images, run on a backend, write the reports asked for --
and hands back the typed :class:`~clnrm.results.RunResult` the reports are rendered
from, so the API, the CLI and every report agree by construction.

The CLI builds on the helpers here (:func:`load_files`, :func:`parse_image_map`,
:func:`write_reports`, ...), so the two cannot drift apart.

Errors: a test that fails is a *result* (``outcome == "failed"``), never an
exception.  Input that cannot run raises a :class:`~clnrm.errors.ClnrmError`:
a bad file raises :class:`~clnrm.errors.ScenarioError` naming file, line and key;
a missing image or an engine that does not answer raises a
:class:`~clnrm.errors.BackendError`.  ``KeyboardInterrupt`` propagates after the
run's containers and networks are removed.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from clnrm.otel.forward import ExportTarget, ForwardReport
    from clnrm.results import RunResult
    from clnrm.runner import EventCallback, Runner, RunOptions
    from clnrm.scenario.model import Scenario

PathLike = str | os.PathLike[str]
"""A file or folder name, as ``str`` or :class:`pathlib.Path`."""

DEFAULT_IMAGE = "clnrm/busybox:latest"


def run(
    paths: PathLike | Iterable[PathLike],
    *,
    backend: Literal["docker", "local"] = "docker",
    jobs: int = 1,
    seed: int | None = None,
    image_map: Mapping[str, str] | None = None,
    default_image: str = DEFAULT_IMAGE,
    strict: bool = False,
    fail_fast: bool = False,
    traces: PathLike | None = None,
    artifacts: PathLike | None = None,
    report_json: PathLike | None = None,
    report_junit: PathLike | None = None,
    report_html: PathLike | None = None,
    allow_host_mounts: bool = False,
    otel_endpoint: str | None = None,
    otel_protocol: str | None = None,
    on_event: EventCallback | None = None,
) -> RunResult:
    """Run test files (or judge a trace export against them) and return the result.

    Same semantics as ``clnrm run``, option for option (``--image-map FROM=TO`` is a
    mapping here).  Differences, all because a library call should not surprise its
    caller: nothing is printed (load warnings land in ``TestResult.warnings``), the
    process's signal handlers are left alone, and no artifact files are written
    unless ``artifacts`` names a folder (the CLI defaults to ``.clnrm/runs``).

    Args:
        paths: a test file, a folder (walked as ``clnrm run`` walks it) or several.
        backend: ``"docker"`` (isolated network per test) or ``"local"`` (steps as
            processes on this machine; no containers).
        jobs: tests to run at once (1-64).
        seed: seed for every test, overriding the files' own.
        image_map: use a local image for one a file names, ``{"alpine:3": "clnrm/busybox:latest"}``.
        default_image: image for steps that name no service.
        strict: unknown keys are errors, not warnings.
        fail_fast: stop after the first test that does not pass (the rest are skipped).
        traces: judge this trace export (OTLP JSON, Jaeger JSON, spans.jsonl) against
            the files' expectations; no containers run.
        artifacts: folder for ``<run id>/<test>.spans.jsonl``; ``None`` writes nothing.
        report_json, report_junit, report_html: write these reports too.
        allow_host_mounts: load files as if each had ``allow_host_mounts = true``.
        otel_endpoint, otel_protocol: after the run, export its spans over OTLP
            (default ``$OTEL_EXPORTER_OTLP_ENDPOINT``); a failed export is a
            :class:`UserWarning`, never a changed verdict.
        on_event: ``(test name, message)`` progress callback; called from worker threads.

    Returns:
        The :class:`~clnrm.results.RunResult`: ``tests`` (one
        :class:`~clnrm.results.TestResult` per test, with ``outcome``, ``message``,
        ``steps``, ``validations``, ``spans``...) and ``exit_code`` (0/1/2 as the CLI).

    Raises:
        ScenarioError: a file does not load (the first one; ``.problems`` lists all of
            that file's errors).  With several bad files, a ClnrmError lists them and
            ``.causes`` holds each ScenarioError.
        ClnrmError: other unrunnable input (no test files, bad option, missing image).
    """
    from clnrm.errors import ClnrmError
    from clnrm.runner import Runner
    from clnrm.scenario.mounts import allowing_host_mounts

    _quiet_logs_unless_configured()
    options = run_options(backend=backend, jobs=jobs, seed=seed, image_map=image_map,
                          default_image=default_image, fail_fast=fail_fast,
                          artifacts=artifacts)
    files = as_paths(paths)
    refuse_special_files(files)
    export_to = otel_target(otel_endpoint, otel_protocol) if traces is None else None
    with allowing_host_mounts(allow_host_mounts):
        try:
            scenarios = load_files(files, strict=strict)
        except ClnrmError as exc:
            causes = getattr(exc, "causes", None)
            if causes and len(causes) == 1:  # one bad file: its own located error
                raise causes[0] from None
            raise
    runner = Runner(options, on_event=on_event)
    if traces is not None:
        from clnrm.otel.tracefile import load_trace_file

        spans = load_trace_file(Path(traces))
        result = runner.judge_traces(scenarios, spans, str(traces))
    else:
        result = runner.run(scenarios)
        if export_to is not None:
            report = forward_run_spans(runner, result, export_to)
            if not report.ok:
                warnings.warn(report.warning(), UserWarning, stacklevel=2)
    attach_load_warnings(result, scenarios)
    write_reports(result, json_path=_opt_path(report_json), junit_path=_opt_path(report_junit),
                  html_path=_opt_path(report_html))
    return result


# -- building blocks shared with the CLI -------------------------------------------------


def run_options(*, backend: str = "docker", jobs: int = 1, seed: int | None = None,
                image_map: Mapping[str, str] | None = None,
                default_image: str = DEFAULT_IMAGE, fail_fast: bool = False,
                artifacts: PathLike | None = None) -> RunOptions:
    """A checked :class:`~clnrm.runner.RunOptions`; the CLI's typer options check the same
    ranges, this does it for Python callers (a bad value is a ClnrmError, exit 2)."""
    from clnrm.errors import ClnrmError
    from clnrm.runner import RunOptions

    if backend not in ("docker", "local"):
        raise ClnrmError(f"backend {backend!r}: expected 'docker' or 'local'",
                         hint="backend='local' runs steps as processes, without containers")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise ClnrmError(f"jobs={jobs!r}: expected a whole number from 1 to 64")
    return RunOptions(backend=backend, jobs=jobs, seed=seed, default_image=default_image,
                      image_map=dict(image_map or {}), fail_fast=fail_fast,
                      artifacts_dir=_opt_path(artifacts))


def as_paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """One path or several; a bare string is one path, not an iterable of letters."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def refuse_special_files(paths: Iterable[Path]) -> None:
    """A path given on the command line must be a test file or a folder: a device or FIFO
    would be read forever or block, so it is refused before anything is read."""
    from clnrm.paths import PathError, kind_of

    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a missing path is reported by the loader, located
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise PathError(path, f"{kind_of(mode)}, not a test file or folder")


def no_files_error(paths: Iterable[Path]) -> Exception:
    from clnrm.errors import ClnrmError

    return ClnrmError("no test files found in " + ", ".join(map(str, paths)),
                      hint="test files end in .clnrm.toml or .toml")


def load_files(paths: list[Path], *, strict: bool = False,
               on_warning: Callable[[str], None] | None = None) -> list[Scenario]:
    """Load every file first: one bad file stops the run before any container starts.

    Every invalid file is reported, not just the first: the raised ClnrmError lists them
    and ``.causes`` holds each file's ScenarioError (JSON output locates the first)."""
    from clnrm.errors import ClnrmError
    from clnrm.scenario import discover_test_files, load_scenario

    files = discover_test_files(paths)
    if not files:
        raise no_files_error(paths)
    scenarios, errors, causes = [], [], []
    for f in files:
        try:
            sc = load_scenario(f, strict=strict)
        except ClnrmError as exc:
            errors.append(str(exc))
            causes.append(exc)
            continue
        if on_warning is not None:
            for w in getattr(sc, "warnings", []):
                on_warning(str(w))
        scenarios.append(sc)
    if errors:
        failure = ClnrmError(f"{len(errors)} of {len(files)} test files are invalid; nothing was "
                             "run:\n" + "\n".join(errors))
        failure.causes = causes  # type: ignore[attr-defined]  # located JSON error: the first
        raise failure
    return scenarios


def parse_image_map(items: Iterable[str]) -> dict[str, str]:
    """``FROM=TO`` strings (``--image-map``) as a mapping; a malformed one is a ClnrmError."""
    from clnrm.errors import ClnrmError

    mapping = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise ClnrmError(f"--image-map {item!r}: expected FROM=TO",
                             hint="e.g. --image-map alpine:latest=clnrm/busybox:latest")
        mapping[src] = dst
    return mapping


def attach_load_warnings(result: RunResult, scenarios: list[Scenario]) -> None:
    """A file's load warnings go on its test results too, so JSON output and reports
    carry them (on a terminal they were printed while loading)."""
    said = {sc.source: [str(w) for w in sc.warnings] for sc in scenarios}
    for test in result.tests:
        test.warnings[:0] = [w for w in said.get(test.file, []) if w not in test.warnings]


def write_reports(result: RunResult, *, json_path: Path | None = None,
                  junit_path: Path | None = None, html_path: Path | None = None) -> None:
    """Write the reports asked for (their folders are created)."""
    if not (json_path or junit_path or html_path):
        return
    from clnrm import reports

    for path, write in ((json_path, reports.write_json), (junit_path, reports.write_junit),
                        (html_path, reports.write_html)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(result, path)


def otel_target(endpoint: str | None, protocol: str | None) -> ExportTarget | None:
    """Where the run's spans go (``otel_endpoint`` or ``OTEL_EXPORTER_OTLP_*``), or None."""
    from clnrm.errors import ClnrmError
    from clnrm.otel.forward import resolve_target

    try:
        return resolve_target(endpoint, protocol)
    except ValueError as exc:
        raise ClnrmError(str(exc), hint="e.g. --otel-endpoint http://localhost:4318, or "
                         "--otel-protocol grpc with http://localhost:4317") from None


def forward_run_spans(runner: Runner, result: RunResult, target: ExportTarget) -> ForwardReport:
    """Export clnrm's own spans and every test's received spans; returns the export report
    (``.ok``, ``.warning()``) so the caller decides how to say a failure."""
    from clnrm.otel.forward import forward_spans

    spans = runner.tracer.finished_spans() + [s for t in result.tests for s in t.spans]
    return forward_spans(spans, target)


def _quiet_logs_unless_configured() -> None:
    """structlog's unconfigured default prints every debug line to stdout; a library call
    must not, so when the caller has not configured structlog, clnrm's own set-up applies
    (WARNING and up, to stderr, secrets redacted).  A caller's configuration is kept."""
    import structlog

    if not structlog.is_configured():
        from clnrm.logs import configure

        configure()


def _opt_path(p: PathLike | None) -> Path | None:
    return None if p is None else Path(p)
