"""Database spans: one per statement, named after the statement's name in sql/*.sql.

OpenTelemetry's asyncpg instrumentation names a span after the first word of the SQL
text; ours starts with its comments, so every span was called `--`, and the text told
no reader which of our fifty statements ran. Our statements are named, so the span says
so: `db.query.summary` (and the span's name) is the statement's name, `write_batch` or
`get_account`, which finds its text in sql/ at once. The connections of the pool are of
the class below when spans are made (tracing.instrument_database); otherwise they are
plain asyncpg connections and none of this runs.

A statement under no span (the hold sweeper's, the retention sweep's, the readiness
ping's and the listeners') makes none, unless MM_TRACE_BACKGROUND=true
(tracing.starts_span). Attributes follow the database conventions
(docs/observability.md lists them); OTEL_SEMCONV_STABILITY_OPT_IN=database/dup adds the
names used before, MM_TRACE_QUERY_TEXT=true the statement's text.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from functools import cache, lru_cache
from typing import Any, TypeVar

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from moneymovement.observability.switches import switches
from moneymovement.observability.tracing import ServiceTracer, database_tracer, starts_span
from moneymovement.storage.queries import all_queries

T = TypeVar("T")
_SYSTEM = "postgresql"
# Leading comments and blank space, before a statement's first word.
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# Named statements with a literal put in before they are sent (session.begin_statement).
_TEMPLATE_MARK = ":tenant"


def connection_class() -> type[asyncpg.Connection]:
    """The class of the connections to open: traced ones when spans are made."""
    return TracedConnection if database_tracer() is not None else asyncpg.Connection


class TracedConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that makes a client span for each statement it runs."""

    __slots__ = ("_mm_span_attributes",)

    async def execute(self, query: str, *args: Any, **options: Any) -> Any:
        run = super().execute
        return await self._traced(query, lambda: run(query, *args, **options))

    async def executemany(self, command: str, args: Iterable[Any], **options: Any) -> Any:
        rows = list(args)
        run = super().executemany
        return await self._traced(
            command, lambda: run(command, rows, **options), batch_size=len(rows)
        )

    async def fetch(self, query: str, *args: Any, **options: Any) -> Any:
        run = super().fetch
        return await self._traced(query, lambda: run(query, *args, **options))

    async def fetchrow(self, query: str, *args: Any, **options: Any) -> Any:
        run = super().fetchrow
        return await self._traced(query, lambda: run(query, *args, **options))

    async def fetchval(self, query: str, *args: Any, **options: Any) -> Any:
        run = super().fetchval
        return await self._traced(query, lambda: run(query, *args, **options))

    async def _traced(self, sql: str, run: Callable[[], Awaitable[T]], *, batch_size: int = 0) -> T:
        tracer = database_tracer()
        if tracer is None or not starts_span(kind=SpanKind.CLIENT):
            return await run()
        span = _start(tracer, sql, self._base_attributes(), batch_size)
        try:
            return await run()
        except Exception as error:
            _failed(span, error)
            raise
        finally:
            span.end()

    def _base_attributes(self) -> dict[str, str | int]:
        """The attributes of every span of this connection: where it is connected."""
        known: dict[str, str | int] | None = getattr(self, "_mm_span_attributes", None)
        if known is None:
            known = self._mm_span_attributes = connection_attributes(
                getattr(self, "_params", None), getattr(self, "_addr", None)
            )
        return known


def connection_attributes(params: Any, addr: Any) -> dict[str, str | int]:
    """`db.system.name`, `db.namespace` (the database's name: the schema is the login's
    default, never set per connection here), `server.address` and `server.port` (a TCP
    connection's host and port, or a Unix socket's path); with database/dup, the names
    used before as well."""
    database = getattr(params, "database", None)
    host, port = (addr[0], addr[1]) if isinstance(addr, tuple) else (addr, None)
    attributes: dict[str, str | int] = {"db.system.name": _SYSTEM}
    if database:
        attributes["db.namespace"] = database
    if host:
        attributes["server.address"] = str(host)
    if port:
        attributes["server.port"] = int(port)
    if switches.database_previous_names:
        attributes["db.system"] = _SYSTEM
        if database:
            attributes["db.name"] = database
        user = getattr(params, "user", None)
        if user:
            attributes["db.user"] = user
        if host:
            attributes["net.peer.name"] = str(host)
        if port:
            attributes["net.peer.port"] = int(port)
        attributes["net.transport"] = "ip_tcp" if port else "other"
    return attributes


def _start(
    tracer: ServiceTracer, sql: str, base: dict[str, str | int], batch_size: int
) -> trace.Span:
    summary = statement_name(sql)
    attributes = dict(base)
    attributes["db.query.summary"] = summary
    if batch_size > 1:  # the conventions: a batch has two or more operations
        attributes["db.operation.batch.size"] = batch_size
    if switches.query_text:
        attributes["db.query.text"] = sql
        if switches.database_previous_names:
            attributes["db.statement"] = sql
    return tracer.start_span(summary, kind=SpanKind.CLIENT, attributes=attributes)


def _failed(span: trace.Span, error: Exception) -> None:
    """The conventions' error attributes: the SQLSTATE when PostgreSQL answered with one
    (`40001` for a serialization failure), else the exception's class."""
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(error, asyncpg.PostgresError) and sqlstate:
        span.set_attribute("db.response.status_code", sqlstate)
        span.set_attribute("error.type", sqlstate)
    else:
        kind = type(error)
        module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
        span.set_attribute("error.type", module + kind.__qualname__)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@lru_cache(maxsize=1024)
def statement_name(sql: str) -> str:
    """The name of the statement in sql/*.sql that `sql` is; for SQL of no named
    statement (asyncpg's own, say: BEGIN of connection.transaction()), its first word in
    capitals; `postgresql` when it has none. Never a comment's `--`."""
    names, templates = _named_statements()
    name = names.get(sql)
    if name is not None:
        return name
    for pattern, template_name in templates:
        if pattern.fullmatch(sql):
            return template_name
    comments = _LEADING_COMMENTS.match(sql)
    word = _FIRST_WORD.match(sql, comments.end() if comments else 0)
    return word[0].upper() if word else _SYSTEM


@cache
def _named_statements() -> tuple[dict[str, str], list[tuple[re.Pattern[str], str]]]:
    """{sql: name} of every named statement, and a pattern for each with a literal put in."""
    names: dict[str, str] = {}
    templates: list[tuple[re.Pattern[str], str]] = []
    for name, sql in all_queries().items():
        names[sql] = name
        if _TEMPLATE_MARK in sql:
            parts = (re.escape(part) for part in sql.split(_TEMPLATE_MARK))
            templates.append((re.compile("'[^']*'".join(parts), re.DOTALL), name))
    return names, templates
