"""``clnrm campaign``: long autonomous test campaigns (mounted by ``clnrm/cli.py``).

Only typer is imported at module level so mounting this app keeps ``clnrm --help`` fast;
Ray, the ledger and the agents load inside the commands.  ``start`` and ``resume`` run the
driver in the foreground until the campaign is done; Ctrl-C or SIGTERM stops it resumably.

Exit codes: 0 done (or stopped by ``campaign stop``), 1 failed (the memory stopped
answering, workers kept dying; resumable), 2 bad input, 130 interrupted (resumable).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clnrm.cli_support import OutputFormat

if TYPE_CHECKING:
    from clnrm.swarm.campaign.driver import CampaignView
    from clnrm.swarm.campaign.ledger import Ledger

campaign_app = typer.Typer(help="Long autonomous test campaigns on the swarm, recorded once "
                                "each in a durable ledger.",
                           no_args_is_help=True, add_completion=False)

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FmtOpt = Annotated[OutputFormat, typer.Option("--format", "-f")]


@campaign_app.callback()
def campaign() -> None:
    """Long autonomous test campaigns: start, status, resume, stop, list, report."""


@campaign_app.command("start")
def start(
    paths: Annotated[list[Path], typer.Argument(help="Test files or folders.")],
    budget: Annotated[int | None, typer.Option(
        "--budget", min=1, help="Units to run in all (each unit is one swarm run of a file).")
    ] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Running time in all, e.g. 8h, 90m, 30s (across resumes).")] = None,
    campaign_id: Annotated[str | None, typer.Option(
        "--id", help="Campaign id (letters, digits, . _ -); default: a new one.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                         help="Units run at the same time.")] = 1,
    address: Annotated[str | None, typer.Option(
        "--address", help="Join a Ray cluster (ray://HOST:10001, HOST:6379 or auto); default "
                          "$RAY_ADDRESS, else an embedded Ray.")] = None,
    memory: Annotated[str | None, typer.Option(
        "--memory", help="Memory directory or http://HOST:PORT of a Chroma server; default "
                         "$CLNRM_MEMORY, else ~/.clnrm/memory.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every choice.")] = 0,
    strict: Annotated[bool, typer.Option(help="Treat unknown keys as errors.")] = False,
) -> None:
    """Start a campaign and drive it in the foreground until it is done (Ctrl-C stops it
    resumably: `clnrm campaign resume ID`)."""
    from clnrm.cli_support import fail, load_all
    from clnrm.errors import ClnrmError

    try:
        if (budget is None) == (duration is None):
            raise ClnrmError("give exactly one of --budget N or --duration D",
                             hint="e.g. --budget 50 or --duration 8h")
        duration_s = _duration(duration) if duration is not None else None
        if campaign_id is not None and not ID_RE.match(campaign_id):
            raise ClnrmError(f"--id {campaign_id!r}: use letters, digits, '.', '_' and '-' "
                             "(at most 64, starting with a letter or digit)")
        from clnrm.extras import require

        require("swarm", feature="clnrm campaign")
        require("memory", feature="clnrm campaign")
        scenarios = load_all(paths, strict=strict)  # every file valid before anything starts
        if not scenarios:
            raise ClnrmError(f"no test files in {', '.join(map(str, paths))}")
        ledger = _create(scenarios, paths, campaign_id, budget, duration_s, workers, address,
                         memory, seed)
    except (ClnrmError, OSError) as exc:
        fail(exc)
    _drive(ledger)


@campaign_app.command("resume")
def resume(campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Continue a stopped (or failed, or driver-gone) campaign in the foreground: units
    planned and never recorded are redone first."""
    from clnrm.swarm.campaign.model import CampaignState

    from clnrm.cli_support import console, fail, styled
    from clnrm.errors import ClnrmError

    try:
        ledger = _open(campaign_id)
        if ledger.state() is CampaignState.running and ledger.owner_alive():
            owner = ledger.owner() or {}
            raise ClnrmError(f"campaign {campaign_id} is running (driver pid "
                             f"{owner.get('pid')} on {owner.get('host')})",
                             hint=f"`clnrm campaign stop {campaign_id}` stops it")
        if ledger.state() is CampaignState.done:
            console(stderr=True).print(styled("", "", f"campaign {campaign_id} is done "
                                              "already"), soft_wrap=True)
            raise typer.Exit(0)
    except (ClnrmError, OSError) as exc:
        fail(exc)
    _drive(ledger)


@campaign_app.command("status")
def status(campaign_id: Annotated[str, typer.Argument(metavar="ID")],
           fmt: FmtOpt = OutputFormat.human) -> None:
    """Units planned and done, results and findings; a running campaign whose driver is
    gone shows as 'stopped (driver gone)'."""
    from clnrm.cli_support import fail
    from clnrm.errors import ClnrmError

    _expect(fmt, "campaign status")
    try:
        with _open(campaign_id) as ledger:
            doc = ledger.status()
            shown = ledger.shown_state()
            reason = ledger.reason()
    except (ClnrmError, OSError) as exc:
        fail(exc)

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        out = Console(highlight=False)
        out.print(f"[bold]campaign {escape(doc.id)}[/] {escape(shown)}"
                  + (f" [dim]({escape(reason)})[/]" if reason else ""), soft_wrap=True)
        counts: dict[str, int] = {}
        for r in doc.results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        out.print(f"units: {doc.units_done} done of {doc.units_planned} planned  "
                  + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for f in doc.findings:
            repro = f" reproducer {f.reproducer}" if f.reproducer else ""
            if f.verified_runs:
                repro += f" (fails {f.verified_failures}/{f.verified_runs} reruns" + (
                    ")" if f.verified_failures == f.verified_runs else
                    ": intermittent)" if f.verified_failures else ": not reproduced)")
            out.print(f"  [red]finding[/] {f.key} {escape(f.failure_class)} on "
                      f"{escape(f.service)} under {escape(f.fault)}: {escape(f.expectation)} "
                      f"(x{f.occurrences}){escape(repro)}", soft_wrap=True)

    _emit_or_print(fmt, doc.model_dump(mode="json"), human, "campaign status")


@campaign_app.command("stop")
def stop(campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Ask the running driver to stop after the units it is running (it exits 'stopped')."""
    from clnrm.swarm.campaign.model import CampaignState

    from clnrm.cli_support import console, fail, styled
    from clnrm.errors import ClnrmError

    try:
        with _open(campaign_id) as ledger:
            if ledger.state() is not CampaignState.running:
                message = f"campaign {campaign_id} is {ledger.state().value}; nothing to stop"
            elif not ledger.owner_alive():
                ledger.set_state(CampaignState.stopped, "stopped while its driver was gone")
                message = f"campaign {campaign_id} stopped (its driver was gone)"
            else:
                ledger.request_stop()
                message = (f"campaign {campaign_id}: stop requested; the driver stops after "
                           "the units it is running")
    except (ClnrmError, OSError) as exc:
        fail(exc)
    console(stderr=True).print(styled("", "", message), soft_wrap=True)


@campaign_app.command("list")
def list_(fmt: FmtOpt = OutputFormat.human) -> None:
    """Every campaign under $CLNRM_CAMPAIGNS (else ~/.clnrm/campaigns)."""
    from clnrm.swarm.campaign.ledger import Ledger, campaign_home, list_campaigns

    from clnrm.cli_support import fail, table
    from clnrm.errors import ClnrmError

    _expect(fmt, "campaign list")
    rows: list[dict[str, Any]] = []
    try:
        for cid in list_campaigns():
            with Ledger.open(cid) as ledger:
                planned, done = ledger.counts()
                spec = ledger.spec
                rows.append({"id": cid, "state": ledger.shown_state(), "units_planned": planned,
                             "units_done": done, "budget_units": spec.budget_units,
                             "duration_s": spec.duration_s, "findings": len(ledger.findings()),
                             "created_at": spec.created_at})
    except (ClnrmError, OSError) as exc:
        fail(exc)
    _emit_or_print(fmt, {"home": str(campaign_home()), "campaigns": rows}, lambda: table(
        f"campaigns in {campaign_home()}", ["id", "state", "units", "findings", "created"],
        [[r["id"], r["state"], f"{r['units_done']}/{r['budget_units'] or r['units_planned']}",
          str(r["findings"]), r["created_at"]] for r in rows]), "campaign list")


@campaign_app.command("report")
def report(campaign_id: Annotated[str, typer.Argument(metavar="ID")],
           html: Annotated[Path, typer.Option("--html", help="Where to write the report.")]
           ) -> None:
    """A self-contained HTML report: findings, learned remediations, perf trend, fault x
    service map."""
    from clnrm.cli_support import console, fail, styled
    from clnrm.errors import ClnrmError

    try:
        try:
            from clnrm.swarm.campaign import report as report_module
        except ImportError:
            raise ClnrmError("campaign reports are not available in this build") from None
        with _open(campaign_id) as ledger:
            report_module.write_html(ledger, html)
    except (ClnrmError, OSError) as exc:
        fail(exc)
    console(stderr=True).print(styled("", "", f"report written to {html}"), soft_wrap=True)


# -- helpers -------------------------------------------------------------------------------


def _emit_or_print(fmt: OutputFormat, data: Any, human: Any, command: str) -> None:
    """As :func:`clnrm.cli_support.emit_or_print`, naming the command itself: the envelope's
    ``command`` is found from the defining module for the other groups, not this one."""
    if fmt is OutputFormat.json:
        from clnrm.output import emit

        emit(command, data, indent=None)
    else:
        human()


def _expect(fmt: OutputFormat, command: str) -> None:
    from clnrm.output import expect_json

    expect_json(command if fmt is OutputFormat.json else None)


def _duration(text: str) -> float:
    from clnrm.errors import ClnrmError
    from clnrm.scenario.durations import DURATION_HINT, parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ClnrmError(f"--duration {text!r}: {exc}", hint=DURATION_HINT) from None
    if seconds <= 0:
        raise ClnrmError(f"--duration {text!r}: must be longer than zero")
    return seconds


def _open(campaign_id: str) -> Ledger:
    from clnrm.swarm.campaign.ledger import Ledger

    from clnrm.errors import ClnrmError

    if not ID_RE.match(campaign_id):
        raise ClnrmError(f"campaign id {campaign_id!r} is not valid (letters, digits, . _ -)")
    return Ledger.open(campaign_id)


def _create(scenarios: list[Any], paths: list[Path], campaign_id: str | None,
            budget: int | None, duration_s: float | None, workers: int, address: str | None,
            memory: str | None, seed: int) -> Ledger:
    import secrets
    from datetime import UTC, datetime

    from clnrm.swarm.campaign.ledger import Ledger
    from clnrm.swarm.campaign.model import CampaignSpec
    from clnrm.swarm.launch import memory_location

    now = datetime.now(UTC)
    files = [(str(sc.source), Path(str(sc.source)).read_text(encoding="utf-8"))
             for sc in scenarios]
    spec = CampaignSpec(
        id=campaign_id or f"c-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}",
        paths=[str(p) for p in paths], files=files, budget_units=budget,
        duration_s=duration_s, workers=workers,
        address=None if address in (None, "") else address,
        memory=memory_location(memory), seed=seed,
        created_at=now.isoformat(timespec="seconds"))
    return Ledger.create(spec)


def _drive(ledger: Ledger) -> None:
    """Run the driver with live progress; map how it ended to an exit code."""
    from clnrm.swarm.campaign.driver import run_campaign
    from clnrm.swarm.campaign.model import CampaignState

    from clnrm.cli_support import console, fail, signals_as_interrupts, styled
    from clnrm.errors import ClnrmError, InterruptedRun

    cid = ledger.spec.id
    err = console(stderr=True)
    err.print(styled("campaign ", "bold", f"{cid}: {ledger.path.parent}"), soft_wrap=True)
    try:
        with signals_as_interrupts() as received, _Live(
                cid, ledger.spec.budget_units, ledger.counts()[1]) as on_progress:
            try:
                state = run_campaign(ledger, on_progress=on_progress)
            except KeyboardInterrupt:
                raise InterruptedRun(received.get("name", "SIGINT")) from None
    except InterruptedRun as exc:
        err.print(styled("stopped: ", "yellow", f"{exc.signal_name}; `clnrm campaign resume "
                                                f"{cid}` continues it"), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except (ClnrmError, OSError) as exc:
        fail(exc)
    finally:
        ledger.close()
    done = ledger_counts(cid)[1]
    err.print(styled(f"campaign {cid} ", "bold", f"{state.value}: {done} unit(s) recorded"),
              soft_wrap=True)
    raise typer.Exit(1 if state is CampaignState.failed else 0)


def ledger_counts(cid: str) -> tuple[int, int]:
    from clnrm.swarm.campaign.ledger import Ledger

    with Ledger.open(cid) as ledger:
        return ledger.counts()


class _Live:
    """A rich progress line on a terminal (silent otherwise): units done of the budget,
    findings, and what each worker runs."""

    def __init__(self, cid: str, total: int | None, done: int) -> None:
        import sys

        self.cid, self.total, self.done = cid, total, done
        self.enabled = sys.stderr.isatty()

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from clnrm.cli_support import console

        self.bar = Progress(TextColumn("[bold]{task.fields[cid]}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("findings {task.fields[found]}"),
                            TimeElapsedColumn(), TextColumn("[dim]{task.description}"),
                            console=console(stderr=True), transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("starting Ray and the workers", total=self.total,
                                      completed=self.done, cid=self.cid, found=0)

        def on_progress(view: CampaignView) -> None:
            busy = "; ".join(f"{w}: {u}" for w, u in sorted(view.busy.items()))
            self.bar.update(self.task, total=view.total, completed=view.done,
                            found=view.findings, description=busy or view.last)

        return on_progress

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(None, None, None)
