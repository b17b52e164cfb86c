"""structlog, configured once, for our lines and for the standard library's.

`merge_contextvars` comes first so that whatever the interceptor bound for the current
RPC (method, tenant, request id) is on every line logged while serving it, and the
current span's trace and span ids are added to each. grpc's and asyncpg's own log
records (the standard `logging` module) pass through the same processors and renderer,
so every line is one JSON object, or a readable line on a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger


def add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Adds the trace and span ids of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Sets up logging for the process.

    Args:
        level: the lowest level written (DEBUG, INFO, WARNING, ERROR).
        fmt: "json", "console", or "auto" (console on a terminal, JSON otherwise).
        stream: where lines go; standard output by default.
    """
    out = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Not cached: a process (or a test) that reconfigures logging must see it everywhere.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # asyncpg and grpc log through the standard library; their records reach `root`.
    for noisy in ("opentelemetry",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
