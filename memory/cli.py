"""``clnrm memory ...``: look into and maintain the swarm's shared memory.

Only typer is imported here; the store (pydantic, Chroma, scikit-learn) is
imported inside each command so ``clnrm --help`` stays fast.  Every
``ClnrmError`` becomes one message on stderr and exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clnrm.cli_support import OutputFormat, emit_or_print, fail, table

if TYPE_CHECKING:
    from clnrm.memory.types import MemoryStore

memory_app = typer.Typer(help="Query and maintain the agents' shared memory.",
                         no_args_is_help=True, add_completion=False,
                         pretty_exceptions_enable=False)


MemoryOpt = Annotated[str | None, typer.Option(
    "--memory", "-m", metavar="PATH_OR_URL",
    help="Store directory, or http://HOST:PORT of a Chroma server "
         "[default: $CLNRM_MEMORY or ~/.clnrm/memory]")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="human or json")]


@contextmanager
def open_store(location: str | None) -> Iterator[MemoryStore]:
    """The memory at ``location`` for one command; a ClnrmError, ValueError or OSError
    while opening or using it becomes :func:`fail` (``--memory /dev/null``, a file, a
    path that cannot be created are one line, exit 2)."""
    from clnrm.errors import ClnrmError
    from clnrm.extras import require

    try:
        require("memory", feature="clnrm memory")  # one line, exit 2, before Chroma loads
        from clnrm.memory import open_memory

        with open_memory(location) as store:
            yield store
    except (ClnrmError, ValueError) as exc:
        fail(exc)
    except OSError as exc:
        fail(f"memory store {location or 'default'}: {exc.strerror or exc}"
             + (f": {exc.filename}" if exc.filename else ""))


# --format json: one line in the envelope (scripts read the last line)
_emit = partial(emit_or_print, command="memory")


@memory_app.command("query")
def query(
    text: Annotated[str, typer.Argument(help="What to look for, in plain words")],
    kind: Annotated[str | None, typer.Option(help="Only this record kind, e.g. failure")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent, e.g. chaos")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many hits")] = 10,
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Records most similar to TEXT, best first."""
    with open_store(memory) as store:
        try:
            hits = store.query(text, kind=kind, agent=agent, k=k)
        except ValueError as exc:
            fail(exc)

    def human() -> None:
        table(f"{len(hits)} hit(s) for {text!r}", ["score", "kind", "agent", "created", "id",
                                                     "text"],
              [[f"{h.score:.3f}", h.record.kind.value, h.record.agent.value,
                h.record.created_at.strftime("%Y-%m-%d %H:%M"), h.record.id,
                h.record.embedding_text()[:120]] for h in hits])

    _emit(fmt, [{"score": h.score, "record": h.record} for h in hits], human)


@memory_app.command("stats")
def stats(memory: MemoryOpt = None, fmt: FormatOpt = OutputFormat.human) -> None:
    """How many records each kind and agent has, and what the store is."""
    with open_store(memory) as store:
        result = store.stats()

    def human() -> None:
        typer.echo(f"{result.location} ({result.mode}, schema v{result.schema_version}, "
                   f"embedding {result.embedding}): {result.total} records")
        table("by kind", ["kind", "records"], [[k, str(v)] for k, v in result.by_kind.items()])
        table("by agent", ["namespace", "records"],
              [[f"swarm/{a}", str(v)] for a, v in result.by_agent.items()])

    _emit(fmt, result, human)


@memory_app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="JSONL file to write (one record a line)")],
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Write every record to FILE as JSON lines (FILE must be new or a regular file)."""
    from clnrm.paths import PathError, check_output_file, os_error

    try:
        check_output_file(file, what="export file")  # never os.replace a device or folder
    except PathError as exc:
        fail(exc)
    with open_store(memory) as store:
        try:
            count = store.export_jsonl(file)
        except OSError as exc:  # ENOSPC, EFBIG, EACCES...: an error, not a partial success
            fail(os_error(file, exc, "write the export"))
    _emit(fmt, {"exported": count, "file": str(file)},
          lambda: typer.echo(f"exported {count} record(s) to {file}"))


@memory_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSONL file from `clnrm memory export`",
                                         exists=True, dir_okay=False, readable=True)],
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Validate every line of FILE, then store them all (records with known ids are replaced)."""
    import os
    import stat

    from clnrm.paths import PathError, kind_of, os_error

    try:
        mode = os.stat(file).st_mode
    except OSError as exc:
        fail(os_error(file, exc, "read the import file"))
    if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
        fail(PathError(file, f"{kind_of(mode)}, not a regular file"))
    with open_store(memory) as store:
        try:
            count = store.import_jsonl(file)
        except OSError as exc:
            fail(os_error(file, exc, "read the import file"))
    _emit(fmt, {"imported": count, "file": str(file)},
          lambda: typer.echo(f"imported {count} record(s) from {file}"))


@memory_app.command("check")
def check(memory: MemoryOpt = None, fmt: FormatOpt = OutputFormat.human) -> None:
    """Whether the store's index applies its log, and its records per kind and namespace.

    Exit 0 when healthy, 1 when not (run `clnrm memory repair`), 2 on an error.
    """
    from clnrm.memory import open_memory
    from clnrm.memory._open import resolve_location
    from clnrm.memory.errors import StoreWedged

    from clnrm.errors import ClnrmError
    from clnrm.extras import require

    try:
        require("memory", feature="clnrm memory")
        try:
            with open_memory(memory, repair=False) as store:
                result = store.check()  # type: ignore[attr-defined]
        except StoreWedged as exc:  # no writer could open it: describe it from SQLite
            from clnrm.memory._repair import health

            where = resolve_location(memory)
            assert not isinstance(where, str)  # a server store never raises this at open
            result = health(where, error=exc)
    except (ClnrmError, ValueError) as exc:
        fail(exc)

    def human() -> None:
        state = "healthy" if result.healthy else "WEDGED" if result.wedged else "NOT HEALTHY"
        typer.echo(f"{result.location} ({result.mode}): {state}, {result.total} records"
                   + (f", {result.repairs} repair(s) logged" if result.repairs else ""))
        if result.probe_error:
            typer.echo(f"  {result.probe_error}\n  Hint: run `clnrm memory repair` (no record is "
                       "lost: they are all in chroma/chroma.sqlite3)")
        if result.collections:
            table("collections", ["collection", "records (sqlite)", "indexed (on disk)",
                                  "pending log"],
                  [[c.name, str(c.records), "-" if c.indexed_on_disk is None
                    else str(c.indexed_on_disk), str(c.pending_log)]
                   for c in result.collections])
        table("by namespace", ["namespace", "records"],
              [[n, str(v)] for n, v in sorted(result.by_namespace.items())])
        for backup in result.backups:
            typer.echo(f"backup kept: {backup}")

    _emit(fmt, result, human)
    raise typer.Exit(0 if result.healthy else 1)


@memory_app.command("repair")
def repair(memory: MemoryOpt = None, fmt: FormatOpt = OutputFormat.human) -> None:
    """Rebuild the store's index from the records in its SQLite file (embedded stores).

    Safe while other processes use the store: the elected writer does it.  Exit 0
    when the store is healthy afterwards, 1 if not, 2 on an error.
    """
    from clnrm.memory.errors import MemoryStoreError

    with open_store(memory) as store:
        if not hasattr(store, "repair"):
            fail(MemoryStoreError(
                f"{memory}: `clnrm memory repair` rebuilds an embedded store; a Chroma "
                "server's index is repaired on its host", location=str(memory),
                hint="stop the server, move its --path directory to DIR/chroma, run "
                     "`clnrm memory repair --memory DIR`, then serve DIR/chroma again"))
        report = store.repair()
        result = store.check()  # type: ignore[attr-defined]

    def human() -> None:
        typer.echo(f"rebuilt {report.records} record(s) in {report.seconds:.1f}s "
                   f"({report.reason})"
                   + (f"; {report.unreadable} unreadable document(s) skipped"
                      if report.unreadable else ""))
        typer.echo(f"{result.location}: {'healthy' if result.healthy else 'NOT HEALTHY'}, "
                   f"{result.total} records")

    _emit(fmt, {"repair": report, "health": result}, human)
    raise typer.Exit(0 if result.healthy else 1)


def _parse_when(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date like 2024-05-01 or "
                                 "2024-05-01T12:00:00+00:00") from None


@memory_app.command("forget")
def forget(
    before: Annotated[str, typer.Option(help="Forget records created before this ISO date "
                                             "(UTC midnight for a bare date)")],
    kind: Annotated[str | None, typer.Option(help="Only this record kind")] = None,
    memory: MemoryOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Delete records older than --before."""
    when = _parse_when(before)
    with open_store(memory) as store:
        count = store.forget(when, kind=kind)
    _emit(fmt, {"forgotten": count, "before": when.isoformat()},
          lambda: typer.echo(f"forgot {count} record(s) created before {when.isoformat()}"))


if __name__ == "__main__":
    memory_app()


ServePathOpt = Annotated[Path, typer.Option(
    "--path", help="Folder of the server's data and its pid file (chroma-server.pid); not an "
                   "embedded memory directory (--memory DIR): a server keeps its own layout.")]


@memory_app.command("serve")
def serve(
    path: ServePathOpt = Path("~/.clnrm/memory-server"),
    host: Annotated[str, typer.Option(
        help="Address to bind; 0.0.0.0 so agents on other hosts reach it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    detach: Annotated[bool, typer.Option(
        "--detach", help="Return once it answers; `clnrm memory stop` stops it.")] = False,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Run a Chroma server for the swarm's memory on a cluster (--memory http://HOST:PORT).

    In the foreground until Ctrl-C or SIGTERM, or detached; one server per --path.
    """
    from clnrm.errors import ClnrmError
    from clnrm.extras import require

    try:
        require("memory", feature="clnrm memory serve")
        from clnrm.memory.chroma_server import serve_foreground, start_server

        if detach:
            _, record = start_server(path, host=host, port=port)
        else:
            code = serve_foreground(path, host=host, port=port, on_ready=lambda r: typer.echo(
                f"memory server ready at {r.url} (data {r.path}); Ctrl-C stops it",
                err=fmt is OutputFormat.json))
            raise typer.Exit(code)
    except (ClnrmError, OSError) as exc:
        fail(exc)
    _emit(fmt, record, lambda: typer.echo(
        f"memory server at {record.url} (pid {record.pid}, data {record.path}); "
        f"stop it with `clnrm memory stop --path {path}`"))


@memory_app.command("stop")
def stop(path: ServePathOpt = Path("~/.clnrm/memory-server"),
         fmt: FormatOpt = OutputFormat.human) -> None:
    """Stop the memory server of --path (started with `clnrm memory serve --detach`)."""
    from clnrm.errors import ClnrmError

    try:
        from clnrm.memory.chroma_server import stop_server

        record = stop_server(path)
    except (ClnrmError, OSError) as exc:
        fail(exc)
    _emit(fmt, {"stopped": record}, lambda: typer.echo(
        f"memory server at {record.url} stopped" if record else
        f"no memory server runs for {path}"))
