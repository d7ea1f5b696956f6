"""structlog set-up shared by the CLI and tests.

Logs go to stderr so ``--format json`` output on stdout stays machine-readable;
WARNING is the default so a normal run prints only its results.  Every line
passes :func:`clnrm.redact.redacting`: secret values never reach the log.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from clnrm.redact import redacting


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


def configure(verbosity: int = 0, *, debug: bool = False) -> None:
    level = logging.DEBUG if debug or verbosity >= 2 else (
        logging.INFO if verbosity == 1 else logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_trace_ids,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redacting(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
