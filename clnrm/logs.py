"""structlog set-up shared by the CLI and tests.

Logs go to stderr so ``--format json`` output on stdout stays machine-readable;
WARNING is the default so a normal run prints only its results.  Every line
passes :func:`clnrm.redact.redacting`: secret values never reach the log.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType
from typing import Any


def _import_structlog() -> ModuleType:
    """``import structlog``, but without Rich unless something already loaded it.

    structlog's package imports ``structlog.dev`` and ``structlog.tracebacks``, which
    import ``rich.traceback`` and ``rich.pretty`` (and through them pygments) only to
    pretty-print an exception that a log line carries: about a third of ``clnrm run``'s
    client start-up.  Rich is hidden while structlog loads, so those modules record
    "no Rich"; :class:`_RichTraceback` hands Rich back to them on the first exception
    rendered, so a log line prints exactly what structlog prints with Rich installed.
    Colorama is hidden too off Windows: ``structlog.dev`` only reads its ANSI codes, and
    its own fallback codes are the same strings.
    """
    hidden = [name for name in ("rich", "colorama")
              if name not in sys.modules and (name == "rich" or sys.platform != "win32")]
    if "structlog" in sys.modules or "rich" not in hidden:
        import structlog

        return structlog
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes ``import name`` fail
    try:
        import structlog
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return structlog


structlog = _import_structlog()

from clnrm.redact import redacting  # noqa: E402


def add_trace_ids(logger: object, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Bind the current OTel trace and span id, so a log line leads to its span.

    Looks the API up in ``sys.modules`` instead of importing it: when nothing
    has started a span yet, logging must not pay for loading OpenTelemetry.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event.setdefault("trace_id", f"{ctx.trace_id:032x}")
            event.setdefault("span_id", f"{ctx.span_id:016x}")
    return event


class StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is when the line is logged.

    ``PrintLoggerFactory(file=sys.stderr)`` keeps the stream that was current when
    logging was configured; CLI runners (typer's ``CliRunner``, ``redirect_stderr`` in a
    user's code) swap in a stream and close it afterwards, and every later log line then
    raised ``ValueError: I/O operation on closed file`` in whatever code logged it.  A
    line that cannot be written to a closed stream is dropped, never raised.
    """

    def msg(self, message: str) -> None:
        stream = sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except ValueError:  # closed by whoever swapped it in
            pass

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger(*args: Any) -> StderrLogger:
    return StderrLogger()


class _RichTraceback(structlog.dev.RichTracebackFormatter):
    """structlog's Rich exception formatter, importing Rich on the first exception.

    Same arguments and output as the ``rich_traceback`` / ``rich_monochrome_traceback``
    that structlog picks by default when Rich was importable: the first call gives
    ``structlog.dev`` and ``structlog.tracebacks`` the Rich names they looked up at import.
    """

    def __call__(self, sio: Any, exc_info: Any) -> None:
        _give_structlog_rich()
        super().__call__(sio, exc_info)


def _give_structlog_rich() -> None:
    dev, tracebacks = structlog.dev, structlog.tracebacks
    if getattr(dev, "rich", None) is not None and getattr(tracebacks, "rich", None) is not None:
        return
    import rich
    import rich.pretty
    from rich.console import Console
    from rich.traceback import Traceback

    dev.rich, dev.Console, dev.Traceback = rich, Console, Traceback
    tracebacks.rich = rich


def _console_renderer(*, colors: bool) -> Any:
    """structlog's ConsoleRenderer as it is with Rich installed, Rich loaded lazily."""
    if getattr(structlog.dev, "rich", None) is not None:  # Rich was loaded before structlog
        return structlog.dev.ConsoleRenderer(colors=colors)
    return structlog.dev.ConsoleRenderer(
        colors=colors, exception_formatter=_RichTraceback(
            color_system="truecolor" if colors else None))


def configure(verbosity: int = 0, *, debug: bool = False) -> None:
    level = logging.DEBUG if debug or verbosity >= 2 else (
        logging.INFO if verbosity == 1 else logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_trace_ids,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redacting(_console_renderer(colors=sys.stderr.isatty())),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
