"""The database of one bench run: a fresh embedded PostgreSQL (or DATABASE_URL), migrated,
with a tenant and its numbered accounts."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from moneymovement.devdb import EmbeddedPostgres
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.migrate import migrate
from moneymovement.storage.queries import parse
from moneymovement.storage.session import Database

HERE = Path(__file__).resolve().parent
QUERIES = parse((HERE / "bench.sql").read_text())
DATA_DIR = HERE.parent / ".data" / "bench-pg"
HOT_ACCOUNT = 1  # the account number every hot-account transfer credits


@dataclass(frozen=True)
class BenchTenant:
    """The tenant the bench moves money for; its accounts are numbered 1..accounts."""

    tenant_id: str
    token: str
    accounts: int


@contextmanager
def bench_database() -> Iterator[tuple[str, int | None]]:
    """Yields (DSN, postmaster pid or None): DATABASE_URL if set, else a fresh embedded
    server (a new data directory each run, so runs start from the same empty database)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"], None
        return
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    # max_connections: the server's pool plus pgbench's clients (up to 128 in bench-full).
    with EmbeddedPostgres(DATA_DIR, settings={"max_connections": "300"}) as server:
        yield server.dsn, _postmaster_pid(DATA_DIR)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


async def prepare(dsn: str, accounts: int) -> BenchTenant:
    """Migrates, creates a tenant with a token, seeds its accounts and ANALYZEs."""
    await migrate(dsn)
    db = await Database.connect(dsn, max_size=2)
    try:
        issued = await TenantDirectory(db).create_tenant(f"bench-{uuid.uuid4().hex[:8]}")
    finally:
        await db.close()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(QUERIES["seed_bench_accounts"], issued.tenant_id, accounts)
        # Fresh tables get sequential-scan plans and, under SERIALIZABLE, relation-level
        # predicate locks (shared/FACTS.md): statistics first.
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return BenchTenant(issued.tenant_id, issued.token, accounts)


async def probe_outcome(dsn: str, tenant_id: str, request_id: str) -> tuple[str, str, bool]:
    """(fingerprint hex, outcome JSON, has trace id) the service stored for one request."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(QUERIES["probe_outcome"], tenant_id, request_id)
    finally:
        await connection.close()
    if row is None:
        raise RuntimeError(f"the service recorded no outcome for probe request {request_id}")
    return row["fingerprint_hex"], row["outcome"], row["has_trace_id"]


async def service_role(dsn: str) -> str:
    """The role the service switches to in this database (migrations/0004)."""
    connection = await asyncpg.connect(dsn)
    try:
        name = await connection.fetchval(QUERIES["service_role"])
    finally:
        await connection.close()
    if name is None:
        raise RuntimeError("the database has no service role: is it migrated?")
    return str(name)
