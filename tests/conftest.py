"""Shared fixtures: one real PostgreSQL per test session, one fresh database per test.

Without DATABASE_URL the session starts the embedded PostgreSQL (a real server from the
wheel) under .data/test-pg-<pid>. The schema is migrated once into a template database, and
each test that asks for `dsn` gets its own clone of it (CREATE DATABASE ... TEMPLATE), which is
fast and keeps tests isolated. With DATABASE_URL the same happens on that server (the role
needs CREATEDB).
"""

from __future__ import annotations

import os

# Tests run commands as another user (subprocess with user=), which Python can only do by
# fork then exec. With gRPC's fork support on, the forked child runs gRPC's fork handlers
# on a process whose gRPC threads (this session's channels and servers) were not forked:
# under load it logged an epoll error and once crashed (SIGSEGV) before its exec. The
# child execs at once and needs none of them. Set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import itertools
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from moneymovement.devdb import EmbeddedPostgres
from moneymovement.observability.tracing import instrument_database
from moneymovement.storage.migrate import migrate

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_TEMPLATE = f"mm_template_{os.getpid()}"
_counter = itertools.count()

# Spans of the whole test session, kept in memory for the tests that inspect them.
SPANS = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_provider)
instrument_database(_provider)


@pytest.fixture(autouse=True)
def _forget_spans() -> Iterator[None]:
    SPANS.clear()
    yield
    SPANS.clear()


def with_database(dsn: str, name: str) -> str:
    """The same server DSN, pointing at database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN of the maintenance database of the session's PostgreSQL server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    # One directory per session: two sessions at once (two engineers, a helper) must not
    # delete each other's server. Removed afterwards; a killed session's is left behind
    # under .data/ (make clean).
    data_dir = PROJECT_ROOT / ".data" / f"test-pg-{os.getpid()}"
    shutil.rmtree(data_dir, ignore_errors=True)
    try:
        with EmbeddedPostgres(data_dir, settings={"max_connections": "300"}) as server:
            yield server.dsn
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        (data_dir.parent / f"{data_dir.name}.log").unlink(missing_ok=True)


@pytest.fixture(scope="session")
async def template_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A migrated template database, created once per session."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{_TEMPLATE}"')
    finally:
        await admin.close()
    dsn = with_database(server_dsn, _TEMPLATE)
    await migrate(dsn)
    return dsn


async def clone_database(server_dsn: str) -> str:
    """A new database cloned from the migrated template; returns its DSN."""
    name = f"mm_test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"')
    finally:
        await admin.close()
    return with_database(server_dsn, name)


@pytest.fixture
async def dsn(server_dsn: str, template_dsn: str) -> str:
    """A fresh, migrated database for this test alone."""
    return await clone_database(server_dsn)
