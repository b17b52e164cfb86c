"""structlog, configured once: JSON lines (or a readable console) with context first.

`merge_contextvars` comes first so that whatever the interceptor bound for the current
RPC (method, tenant, request id, trace id) is on every line logged while serving it.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Sets up structlog for the process.

    Args:
        level: the lowest level written (DEBUG, INFO, WARNING, ERROR).
        fmt: "json", "console", or "auto" (console on a terminal, JSON otherwise).
        stream: where lines go; standard output by default.
    """
    out = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
