"""structlog set-up shared by the CLI and tests.

Logs go to stderr so ``--format json`` output on stdout stays machine-readable;
WARNING is the default so a normal run prints only its results.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(verbosity: int = 0, *, debug: bool = False) -> None:
    level = logging.DEBUG if debug or verbosity >= 2 else (
        logging.INFO if verbosity == 1 else logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
