"""structlog, configured once, for our lines and for the standard library's.

`merge_contextvars` comes first so that whatever the interceptor bound for the current
RPC (method, tenant, request id, trace id) is on every line logged while serving it, and
the current span's trace and span ids are added to each. Our lines are written straight
to the stream; grpc's and asyncpg's own log records (the standard `logging` module) pass
through the same processors and renderer, so every line is one JSON object, or a
readable line on a terminal.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from dataclasses import dataclass, field
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


@dataclass
class _Output:
    """Where and how our lines go now. Loggers are cached on first use (resolving the
    configuration on every call cost more than rendering the line), so what a later
    configure_logging changes (a test capturing lines, say) is read from here."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    render: Processor = field(default_factory=structlog.processors.JSONRenderer)
    level: int = logging.INFO
    tracebacks: bool = True
    pending: list[str] = field(default_factory=list)  # lines not written yet
    flush_scheduled: bool = False


_output = _Output()


def flush_lines() -> None:
    """Writes the lines logged so far (the event loop calls this once per turn)."""
    _output.flush_scheduled = False
    if not _output.pending:
        return
    text = "\n".join(_output.pending) + "\n"
    _output.pending.clear()
    _output.stream.write(text)
    _output.stream.flush()


_LEVEL_OF_METHOD = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _drop_below_level(_: WrappedLogger, method: str, event: EventDict) -> EventDict:
    if _LEVEL_OF_METHOD.get(method, logging.INFO) < _output.level:
        raise structlog.DropEvent
    return event


def _render(logger: WrappedLogger, method: str, event: EventDict) -> str | bytes:
    if _output.tracebacks:
        event = structlog.processors.format_exc_info(logger, method, event)
    rendered = _output.render(logger, method, event)
    assert isinstance(rendered, str | bytes)
    return rendered


class _NamedWriter:
    """Writes rendered lines to the current stream, and knows its logger's name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        _output.pending.append(message)
        if _output.flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving: at once
            flush_lines()
            return
        # Every line logged during this turn of the event loop goes out in one write at
        # its end: one system call instead of one per line (~6 % of a server's CPU).
        loop.call_soon(flush_lines)
        _output.flush_scheduled = True

    log = debug = info = warn = warning = error = critical = exception = failure = fatal = msg


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Sets up logging for the process (again, for a test that captures lines).

    Args:
        level: the lowest level written (DEBUG, INFO, WARNING, ERROR).
        fmt: "json", "console", or "auto" (console on a terminal, JSON otherwise).
        stream: where lines go; standard output by default.
    """
    flush_lines()  # what was logged so far goes where it was meant to
    out = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    _output.stream, _output.render = out, renderer
    _output.level = logging.getLevelNamesMapping()[level.upper()]
    _output.tracebacks = not use_console  # the console renderer draws its own
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    # Our own lines are rendered and written directly: through the standard library's
    # records and handlers, the canonical line cost several times more.
    structlog.configure(
        processors=[_drop_below_level, *shared, _render],
        logger_factory=lambda *args: _NamedWriter(args[0] if args else ""),
        cache_logger_on_first_use=True,
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


atexit.register(flush_lines)


_RESET_IN_TRANSACTION = "Resetting connection with an active transaction"


def quiet_connection_resets(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The event loop's exception handler: asyncpg's error-level "Resetting connection
    with an active transaction" is what a handler cancelled inside a read transaction
    leaves when its connection goes back to the pool, which rolls it back. Seen end to
    end (tests/e2e/test_cancelled_requests.py): the caller's deadline passes, the read's
    own timer cancels the statement and starts ROLLBACK, and grpc's cancellation of the
    handler, at the same deadline, interrupts that ROLLBACK. Nothing failed: it becomes
    one warning line with the RPC, tenant and trace id bound to the cancelled request
    (the release runs in its task). Write transactions run in the pipeline's batch task,
    which grpc never cancels: their rollbacks finish. Everything else goes to the
    default handler."""
    message = str(context.get("message", ""))
    if message.startswith(_RESET_IN_TRANSACTION):
        structlog.get_logger("moneymovement.storage").warning(
            "connection_rolled_back_after_cancel",
            detail="a cancelled request left a transaction open; the pool rolled it back",
        )
        return
    loop.default_exception_handler(context)
