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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
