"""``clnrm perf baseline save|show|list|diff|forget``: the baselines in the shared memory.

Delegated from :mod:`clnrm.cli` (like ``clnrm memory``) so ``clnrm --help`` never
imports it; here only typer is imported at module level, and each command imports
the runner, numpy or the memory when it runs.  ``save`` and ``diff`` either run test
files (with the performance layer on, whether or not the files have
``[performance]``) or read a JSON report (``--from-report``).  Every
:class:`~clnrm.errors.ClnrmError` is one message on stderr and exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clnrm.cli_support import OutputFormat, emit_or_print, fail, table
from clnrm.memory.cli import FormatOpt, MemoryOpt, open_store

if TYPE_CHECKING:
    from clnrm.perf.baseline import BaselineStore, RunMeasurement
    from clnrm.perf.fingerprint import Fingerprint
    from clnrm.results import RunResult
    from clnrm.scenario.layers import Performance

perf_app = typer.Typer(help="Performance baselines: save, show, list, diff, forget.",
                       no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False)
baseline_app = typer.Typer(help="Baselines kept in the shared memory (swarm/performance), "
                                "per scenario and environment fingerprint.",
                           no_args_is_help=True)
perf_app.add_typer(baseline_app, name="baseline")


FingerprintOpt = Annotated[str | None, typer.Option(
    "--fingerprint", help="Environment key as `perf baseline list` shows it "
                          "[default: this machine's]")]
PathsArg = Annotated[list[Path] | None, typer.Argument(
    help="Test files or folders to run (or give --from-report).")]
ReportOpt = Annotated[Path | None, typer.Option(
    "--from-report", exists=True, dir_okay=False,
    help="Take the measurements from a JSON report (clnrm run --report-json) instead.")]
BackendOpt = Annotated[str, typer.Option(help="docker or local (for running files).")]
ImageMapOpt = Annotated[list[str] | None, typer.Option(
    "--image-map", help="Use a local image for one a file names: FROM=TO, repeatable.")]


@contextmanager
def _baselines(location: str | None) -> Iterator[BaselineStore]:
    from clnrm.perf.baseline import BaselineStore

    with open_store(location) as store:
        yield BaselineStore(store)


_emit = partial(emit_or_print, command="perf")  # --format json: one line, in the envelope


def _fingerprint(key: str | None, backend: str = "docker") -> Fingerprint:
    from clnrm.perf.fingerprint import current_fingerprint, parse_key

    return parse_key(key) if key else current_fingerprint(backend)


def _scenario_name(name_or_file: str) -> str:
    """A scenario name as given, or the ``[meta] name`` of a test file."""
    path = Path(name_or_file)
    if path.is_file():
        from clnrm.scenario import load_scenario

        return load_scenario(path).name
    return name_or_file


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# -- list / show / forget ----------------------------------------------------------------


@baseline_app.command("list")
def list_(memory: MemoryOpt = None, fmt: FormatOpt = OutputFormat.human) -> None:
    """Every scenario and fingerprint with stored measurements."""
    with _baselines(memory) as store:
        rows = store.summaries()
    _emit(fmt, rows, lambda: table(
        f"{len(rows)} baseline(s)", ["scenario", "fingerprint", "baseline runs", "history runs",
                                     "metrics", "last run"],
        [[r.scenario, r.fingerprint, str(r.baseline_runs), str(r.history_runs), str(r.metrics),
          r.last_at.strftime("%Y-%m-%d %H:%M") if r.last_at else "-"] for r in rows]))


@baseline_app.command("show")
def show(
    scenario: Annotated[str, typer.Argument(help="Scenario name, or a test file")],
    fingerprint: FingerprintOpt = None,
    runs: Annotated[int, typer.Option(min=1, max=100, help="Baseline runs to use")] = 5,
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """The baseline's metrics (p50/p95/p99/max/count), fingerprint and runs; --format json
    prints it as a baseline file for the performance table's baseline key."""
    from clnrm.errors import ClnrmError

    try:
        name = _scenario_name(scenario)
        fp = _fingerprint(fingerprint)
        with _baselines(memory) as store:
            baseline = store.baseline(name, fp.key, runs=runs)
            if baseline is None:
                raise _no_baseline(store, name, fp.key)
    except ClnrmError as exc:
        fail(exc)

    def human() -> None:
        first, last = baseline.runs[0].at, baseline.runs[-1].at
        typer.echo(f"baseline of {name} on {fp.key}: {len(baseline.runs)} run(s), "
                   f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC "
                   f"({', '.join(r.run_id for r in baseline.runs)})")
        rows = []
        for metric in baseline.metric_names():
            pooled = sorted(baseline.pooled(metric))
            if not pooled:
                continue
            unit = next(r.metrics[metric].unit for r in baseline.runs if metric in r.metrics)
            from clnrm.perf.metrics import percentile

            rows.append([metric, unit, str(len(baseline.samples(metric))), str(len(pooled)),
                         *(_fmt(percentile(pooled, q)) for q in (50, 95, 99)),
                         _fmt(pooled[-1]), _fmt(sum(pooled) / len(pooled))])
        table(f"{name} baseline", ["metric", "unit", "runs", "n", "p50", "p95", "p99", "max",
                                   "mean"], rows)

    _emit(fmt, baseline, human)


@baseline_app.command("forget")
def forget(
    scenario: Annotated[str, typer.Argument(help="Scenario name, or a test file")],
    fingerprint: FingerprintOpt = None,
    every_fingerprint: Annotated[bool, typer.Option(
        "--all-fingerprints", help="Forget it on every environment")] = False,
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Delete a scenario's stored runs (its baseline and history)."""
    from clnrm.errors import ClnrmError

    try:
        name = _scenario_name(scenario)
        key = None if every_fingerprint else _fingerprint(fingerprint).key
        with _baselines(memory) as store:
            count = store.forget(name, key)
    except ClnrmError as exc:
        fail(exc)
    _emit(fmt, {"scenario": name, "fingerprint": key, "forgotten_runs": count},
          lambda: typer.echo(f"forgot {count} run(s) of {name} on {key or 'every fingerprint'}"))


def _no_baseline(store: BaselineStore, name: str, key: str) -> Exception:
    from clnrm.errors import PerformanceError

    here = store.fingerprints(name)
    if here:
        other = ", ".join(f"{k} ({n} baseline run{'s' if n != 1 else ''})"
                          for k, n in sorted(here.items()))
        hint = f"{name} has measurements on: {other}; pass --fingerprint KEY"
    else:
        known = sorted({s.scenario for s in store.summaries()})
        hint = ("scenarios with baselines: " + ", ".join(known) if known
                else "the memory has no baselines yet") + \
            "; record one with `clnrm perf baseline save FILE`"
    return PerformanceError(f"no baseline for {name} on {key}", scenario=name,
                            fingerprint=key, hint=hint)


# -- save / diff -----------------------------------------------------------------------


@baseline_app.command("save")
def save(
    paths: PathsArg = None,
    from_report: ReportOpt = None,
    replace: Annotated[bool, typer.Option(
        help="Start a new baseline: earlier baseline runs become history only.")] = False,
    fingerprint: FingerprintOpt = None,
    backend: BackendOpt = "docker",
    image_map: ImageMapOpt = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every test.")] = None,
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Run test files (or read a report) and store their measurements as baseline runs."""
    from clnrm.errors import ClnrmError, PerformanceError

    saved: list[dict[str, Any]] = []
    try:
        with _baselines(memory) as store:
            if from_report is not None:
                runs = _runs_from_report(from_report, _fingerprint(fingerprint, backend))
                for run in runs:
                    store.record(run.model_copy(update={"baseline": True}))
            else:
                result = _run(paths, memory=store.store, record=True, save=True,
                              backend=backend, seed=seed, image_map=image_map)
                runs = _recorded(store, result)
                if not runs:
                    raise PerformanceError("nothing was saved: " + _why_not_saved(result),
                                           hint="a baseline is taken only from a run whose "
                                                "steps passed, without chaos faults")
            for run in runs:
                if replace:
                    older = [r for r in store.runs(run.scenario, run.fingerprint.key)
                             if r.baseline and r.run_id != run.run_id]
                    store.mark_baseline(older, value=False)
                base = store.baseline(run.scenario, run.fingerprint.key)
                saved.append({"scenario": run.scenario, "run_id": run.run_id,
                              "fingerprint": run.fingerprint.key, "metrics": len(run.metrics),
                              "baseline_runs": len(base.runs) if base else 0})
    except ClnrmError as exc:
        fail(exc)

    def human() -> None:
        for s in saved:
            typer.echo(f"saved run {s['run_id']} of {s['scenario']} as a baseline run on "
                       f"{s['fingerprint']} ({s['metrics']} metrics; the baseline now has "
                       f"{s['baseline_runs']} run(s))")

    _emit(fmt, saved, human)


@baseline_app.command("diff")
def diff(
    paths: PathsArg = None,
    from_report: ReportOpt = None,
    fingerprint: FingerprintOpt = None,
    backend: BackendOpt = "docker",
    image_map: ImageMapOpt = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every test.")] = None,
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Compare a run (or a report) with the baseline, storing nothing (exit 1: a regression
    fails; 2: no baseline)."""
    from clnrm.errors import ClnrmError

    out: list[dict[str, Any]] = []
    try:
        with _baselines(memory) as store:
            if from_report is not None:
                runs = _runs_from_report(from_report, _fingerprint(fingerprint, backend))
                out = [_diff_one(store, run, _settings_of(run.file)) for run in runs]
            else:
                result = _run(paths, memory=store.store, record=False, save=False,
                              backend=backend, seed=seed, image_map=image_map)
                out = _diffs_of(store, result, _fingerprint(fingerprint, backend))
    except ClnrmError as exc:
        fail(exc)

    def human() -> None:
        for d in out:
            typer.echo(f"{d['scenario']} vs its baseline on {d['fingerprint']} "
                       f"({d['baseline_runs']} run(s)):")
            for v in d["verdicts"]:
                mark = "✗" if v["fails"] else ("!" if v["regressed"] else "✓")
                typer.echo(f"  {mark} {v['message']}; confidence it got worse "
                           f"{v['confidence']:.1%}")

    _emit(fmt, out, human)
    raise typer.Exit(1 if any(v["fails"] for d in out for v in d["verdicts"]) else 0)


def _settings_of(file: str) -> Performance | None:
    """The ``[performance]`` table of a report's test file, when the file is still there:
    its thresholds and span list judge the report as they would have judged the run."""
    from clnrm.errors import ClnrmError
    from clnrm.scenario import load_scenario

    if not file or not Path(file).is_file():
        return None
    try:
        return load_scenario(Path(file)).performance
    except ClnrmError:
        return None


def _diff_one(store: BaselineStore, run: RunMeasurement,
              perf: Performance | None = None) -> dict[str, Any]:
    from clnrm.perf.judge import compare_runs

    baseline = store.baseline(run.scenario, run.fingerprint.key)
    if baseline is not None:  # a report of a baseline run is not compared with itself
        kept = [r for r in baseline.runs if r.run_id != run.run_id]
        baseline = baseline.model_copy(update={"runs": kept}) if kept else None
    if baseline is None:
        raise _no_baseline(store, run.scenario, run.fingerprint.key)
    verdicts = compare_runs(baseline, run, perf)
    return {"scenario": run.scenario, "run_id": run.run_id,
            "fingerprint": run.fingerprint.key, "baseline_runs": len(baseline.runs),
            "verdicts": [v.model_dump() for v in verdicts]}


def _diffs_of(store: BaselineStore, result: RunResult,
              fingerprint: Fingerprint) -> list[dict[str, Any]]:
    """The verdicts each test's performance layer reached (it compared, never stored)."""
    from clnrm.errors import PerformanceError

    out = []
    for t in result.tests:
        perf = t.performance
        baseline = store.baseline(t.name, fingerprint.key)
        if baseline is None:
            raise _no_baseline(store, t.name, fingerprint.key)
        if perf is None:
            raise PerformanceError(f"{t.name} was not measured: {t.message or t.outcome.value}",
                                   scenario=t.name, fingerprint=fingerprint.key)
        out.append({"scenario": t.name, "run_id": result.run_id,
                    "fingerprint": fingerprint.key, "baseline_runs": len(baseline.runs),
                    "verdicts": [v.model_dump() for v in perf.verdicts]})
    return out


def _run(paths: list[Path] | None, *, memory: Any, record: bool, save: bool, backend: str,
         seed: int | None, image_map: list[str] | None = None) -> RunResult:
    """Run the files with the performance layer on, as ``clnrm run`` would."""
    from clnrm.cli_support import load_all, parse_map, signals_as_interrupts
    from clnrm.errors import ClnrmError, InterruptedRun
    from clnrm.perf.options import PerfOptions
    from clnrm.runner import Runner, RunOptions
    from clnrm.scenario.layers import Performance

    if not paths:
        raise ClnrmError("give test files to run, or --from-report REPORT.json")
    scenarios = [sc if sc.performance is not None and sc.performance.enabled
                 else sc.model_copy(update={"performance": Performance()})
                 for sc in load_all(list(paths), strict=False)]
    options = RunOptions(backend=backend, seed=seed, image_map=parse_map(image_map or []),
                         perf=PerfOptions(memory=memory, record=record, save_baseline=save))
    with signals_as_interrupts() as received:
        try:
            return Runner(options).run(scenarios)
        except KeyboardInterrupt:
            raise InterruptedRun(received.get("name", "SIGINT")) from None


def _recorded(store: BaselineStore, result: RunResult) -> list[RunMeasurement]:
    out = []
    for t in result.tests:
        out += [r for r in store.runs(t.name) if r.run_id == result.run_id]
    return out


def _why_not_saved(result: RunResult) -> str:
    """What each test's performance layer said about not recording it."""
    reasons = []
    for t in result.tests:
        said = [w.removeprefix("performance: ") for w in t.warnings
                if w.startswith(("performance: this run was not recorded",
                                 "no baseline for"))]
        if t.outcome.value == "error" or not said:
            said = [(t.message or t.outcome.value).splitlines()[0]]
        reasons.append(f"{t.name}: {'; '.join(said)}")
    return "; ".join(reasons) or "no tests ran"


_MAX_REPORT_BYTES = 256 << 20  # a report carries every span: twice the trace file limit


def _runs_from_report(path: Path, fingerprint: Fingerprint) -> list[RunMeasurement]:
    """Each test of a JSON report as a run measured on ``fingerprint``."""
    from pydantic import ValidationError

    from clnrm.errors import ClnrmError
    from clnrm.paths import read_regular_file
    from clnrm.perf.replay import run_from_test
    from clnrm.results import RunResult

    # a regular file under a bound: a FIFO or /dev/zero must not block or fill memory
    raw = read_regular_file(path, limit=_MAX_REPORT_BYTES, what="JSON report")
    try:
        result = RunResult.model_validate_json(raw)
    except (OSError, ValidationError) as exc:
        raise ClnrmError(f"{path}: not a JSON report of `clnrm run --report-json` ({exc})"
                         .splitlines()[0]) from exc
    runs = [run_from_test(t, run_id=result.run_id, fingerprint=fingerprint)
            for t in result.tests if t.spans or t.performance is not None]
    if not runs:
        raise ClnrmError(f"{path}: no test in it has spans or performance measurements")
    return runs


if __name__ == "__main__":
    perf_app()
