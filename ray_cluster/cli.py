"""``clnrm swarm``: the agent swarm from the command line (mounted by ``clnrm/cli.py``).

Only typer is imported here at module level, so mounting this app keeps
``clnrm --help`` fast; Ray, memory and the agents load inside the command.
Exit codes are those of ``clnrm run``: 0 passed, 1 a test failed, 2 bad input
or nothing could be judged, 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clnrm.cli_support import BackendName, OutputFormat

if TYPE_CHECKING:
    from clnrm.agents.negotiation import SwarmReport


swarm_app = typer.Typer(help="Run test files through the agent swarm on Ray.",
                        no_args_is_help=True,
                        add_completion=False)  # `clnrm --install-completion` covers swarm


@swarm_app.callback()
def swarm() -> None:
    """Run test files through the agent swarm on Ray; every decision is kept in memory."""


@swarm_app.command("run")
def run(
    paths: Annotated[list[Path], typer.Argument(help="Test files or folders.")],
    address: Annotated[str | None, typer.Option(
        "--address", help="Join a Ray cluster (ray://HOST:10001 or HOST:6379); default "
                          "$RAY_ADDRESS, else an embedded Ray is started and stopped.")] = None,
    memory: Annotated[str | None, typer.Option(
        "--memory", help="Memory directory or http://HOST:PORT of a Chroma server; default "
                         "$CLNRM_MEMORY, else ~/.clnrm/memory.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
    backend: Annotated[BackendName, typer.Option(help="Where tests run.")] = BackendName.docker,
    seed: Annotated[int | None, typer.Option(help="Seed for every test (overrides files).")] = None,
    strict: Annotated[bool, typer.Option(help="Treat unknown keys as errors.")] = False,
    image_map: Annotated[list[str] | None, typer.Option(
        "--image-map", help="Use a local image for one a file names: FROM=TO, repeatable.")] = None,
    default_image: Annotated[str, typer.Option(
        help="Image for steps that name no service.")] = "clnrm/busybox:latest",
    max_restarts: Annotated[int, typer.Option(
        min=0, help="Restarts of a dead agent actor before its task counts as lost.")] = 3,
    artifacts: Annotated[Path, typer.Option(
        help="Folder for the agents' per-run artifacts (spans.jsonl per test), as `clnrm run` "
             "keeps them; the intelligence agent mines the orchestration run's spans from it "
             "(agents on other hosts need it on a shared path).")] = Path(".clnrm/runs"),
) -> None:
    """Plan, negotiate and run test files through the agents; exit codes as `clnrm run`."""
    from clnrm.agents.base import RunSettings
    from clnrm.swarm.launch import SwarmOptions, run_swarm

    from clnrm.cli_support import (
        console,
        fail,
        load_all,
        parse_map,
        progress,
        signals_as_interrupts,
        styled,
    )
    from clnrm.errors import ClnrmError, InterruptedRun
    from clnrm.extras import require

    try:
        require("swarm", feature="clnrm swarm")  # one line, exit 2, before Ray is imported
        require("memory", feature="clnrm swarm")  # the agents share a Chroma memory
        scenarios = load_all(paths, strict=strict)  # every file valid before Ray starts
        files = [(str(sc.source), Path(str(sc.source)).read_text(encoding="utf-8"))
                 for sc in scenarios]
        options = SwarmOptions(
            address=address, memory=memory, max_restarts=max_restarts,
            max_task_retries=max_restarts,
            settings=RunSettings(backend=backend.value, seed=seed, default_image=default_image,
                                 image_map=parse_map(image_map or []),
                                 artifacts_dir=str(artifacts.resolve())))
        if address and memory is not None and not memory.startswith(("http://", "https://")):
            console(stderr=True).print(styled(
                "warning: ", "yellow", "agents on other hosts cannot reach an embedded memory "
                "directory; use --memory http://HOST:PORT of a Chroma server"), soft_wrap=True)
        with signals_as_interrupts() as received, progress(fmt, len(files)) as on_event:
            try:
                report = run_swarm(files, options, on_event=on_event)
            except KeyboardInterrupt:
                raise InterruptedRun(received.get("name", "SIGINT")) from None
    except (ClnrmError, OSError) as exc:
        fail(exc)
    _print_report(report, fmt)
    raise typer.Exit(report.exit_code)


cluster_app = typer.Typer(help="A local multi-node Ray cluster on this machine (head + workers).",
                          no_args_is_help=True, add_completion=False)
swarm_app.add_typer(cluster_app, name="cluster")

ClusterDirOpt = Annotated[Path | None, typer.Option(
    "--dir", help="Folder of the cluster's state, node temp dirs and logs (short: Ray's unix "
                  "sockets live below it); default $CLNRM_CLUSTER_DIR, else ~/.clnrm/cluster.")]


@cluster_app.command("up")
def cluster_up_cmd(
    workers: Annotated[int, typer.Option(min=1, max=16, help="Worker nodes with an engine.")] = 2,
    port: Annotated[int | None, typer.Option(help="The head's GCS port (default: a free one).")
                    ] = None,
    client_port: Annotated[int | None, typer.Option(
        help="The Ray Client port (ray://...) (default: a free one).")] = None,
    worker_cpus: Annotated[int, typer.Option(min=1, help="CPUs each worker declares.")] = 1,
    root: ClusterDirOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
) -> None:
    """Start a head and WORKERS worker nodes (each `ray start` with its own resources)."""
    from clnrm.cli_support import emit_or_print, fail
    from clnrm.errors import ClnrmError
    from clnrm.extras import require

    try:
        require("swarm", feature="clnrm swarm cluster")
        from clnrm.swarm.cluster import cluster_up

        state = cluster_up(root, workers=workers, port=port, client_port=client_port,
                           worker_cpus=worker_cpus)
    except (ClnrmError, OSError) as exc:
        fail(exc)

    def human() -> None:
        typer.echo(f"cluster up in {state.root}: head + {len(state.nodes) - 1} worker(s)\n"
                   f"  clnrm swarm run PATHS --address {state.address} --memory URL\n"
                   f"  (or --address {state.client_address}); stop it with "
                   f"`clnrm swarm cluster down{_dir_arg(root)}`")

    emit_or_print(fmt, state, human, command="swarm cluster up")


@cluster_app.command("status")
def cluster_status_cmd(
    root: ClusterDirOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.human,
) -> None:
    """Where the cluster is and which nodes still run; exit 1 when it is not (fully) up."""
    from clnrm.cli_support import emit_or_print, fail, table
    from clnrm.errors import ClnrmError

    try:
        from clnrm.swarm.cluster import cluster_status

        status = cluster_status(root)
    except (ClnrmError, OSError) as exc:
        fail(exc)

    def human() -> None:
        if not status.nodes:
            typer.echo(f"no cluster in {status.root}")
            return
        typer.echo(f"cluster in {status.root}: {'up' if status.up else 'NOT up'}, address "
                   f"{status.address} ({status.client_address})")
        table("nodes", ["node", "pid", "alive", "processes", "resources"],
              [[n.name, str(n.pid), "yes" if n.alive else "no", str(n.processes),
                ", ".join(f"{k}={v:g}" for k, v in n.resources.items())]
               for n in status.nodes])

    emit_or_print(fmt, status, human, command="swarm cluster status")
    raise typer.Exit(0 if status.up else 1)


@cluster_app.command("down")
def cluster_down_cmd(root: ClusterDirOpt = None) -> None:
    """Stop every node and any process left of the cluster (never `ray stop`: other Rays live)."""
    from clnrm.cli_support import fail
    from clnrm.errors import ClnrmError

    try:
        from clnrm.swarm.cluster import cluster_dir, cluster_down

        stopped = cluster_down(root)
    except (ClnrmError, OSError) as exc:
        fail(exc)
    typer.echo(f"cluster in {cluster_dir(root)} down ({stopped} node(s) or process(es) stopped)")


def _dir_arg(root: Path | None) -> str:
    return f" --dir {root}" if root else ""


def _print_report(report: SwarmReport, fmt: OutputFormat) -> None:
    from clnrm.agents.base import TaskStatus
    from rich.console import Console
    from rich.markup import escape

    if fmt is OutputFormat.json:
        from clnrm.output import emit

        emit("swarm run", report.model_dump(mode="json",
                                            exclude={"tasks": {"__all__": {"text"}}}))
        return
    out = Console(highlight=False)
    out.print(f"[bold]swarm run {report.run_id}[/] [dim](ray {escape(report.ray)}, memory "
              f"{escape(report.memory)})[/]", soft_wrap=True)
    marks = {TaskStatus.done: "[green]✓[/]", TaskStatus.failed: "[red]✗[/]",
             TaskStatus.declined: "[yellow]-[/]", TaskStatus.lost: "[red]![/]",
             TaskStatus.waiting: "[yellow]…[/]"}
    for o in report.outcomes:
        _, scenario, layer = o.task_id.split("/")
        retry = f" [dim](attempt {o.attempt})[/]" if o.attempt > 1 else ""
        out.print(f"{marks[o.status]} {escape(scenario)} [bold]{layer}[/] "
                  f"{o.status.value}{retry}: {escape(o.reason)}", soft_wrap=True)
    out.print("[bold]decisions[/] (also in memory: clnrm memory query "
              f"\"{escape(report.run_id)}\")")
    for d in report.decisions:
        bid = "" if d.action != "bid" else (" declines" if d.bid is None else f" {d.bid:.2f}")
        out.print(f"  [dim]{d.agent.value:<13} {d.action:<8}{bid}[/] {escape(d.reason)}",
                  soft_wrap=True)
    out.print(escape(report.summary), soft_wrap=True)
