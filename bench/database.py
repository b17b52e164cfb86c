"""The database of one bench run: a fresh embedded PostgreSQL (or DATABASE_URL), migrated,
with a tenant and its numbered accounts."""

from __future__ import annotations

import os
import shutil
import sys
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
HISTORY = parse((HERE / "seed_ledger.sql").read_text())
DATA_DIR = HERE.parent / ".data" / "bench-pg"  # each run: bench-pg-<pid>
HOT_ACCOUNT = 1  # the account number every hot-account transfer credits


@dataclass(frozen=True)
class BenchTenant:
    """The tenant the bench moves money for; its accounts are numbered 1..accounts.

    `limits_tenant_id`: a second tenant, seeded the same, for pgbench's limits (or None).
    Their transfers are written by the bench's own SQL, some without events (the limits
    measured as before the outbox, and the service's SQL without its event): that tenant's
    event horizon is set to infinity, so `verify` checks its money but not its events,
    while every change the service makes to the bench tenant must have its event.
    """

    tenant_id: str
    token: str
    accounts: int
    limits_tenant_id: str | None = None


@contextmanager
def bench_database() -> Iterator[tuple[str, int | None]]:
    """Yields (DSN, postmaster pid or None): DATABASE_URL if set, else a fresh embedded
    server (a new data directory each run, so runs start from the same empty database).

    Each run has its own directory (DATA_DIR with the process id), removed at the end:
    a second run started meanwhile (someone's quick check) must not delete the database
    under the first. Directories of runs that died are removed at the next start.
    """
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"], None
        return
    others = _remove_stale_runs()
    if others:
        print(
            f"warning: other bench runs in progress (pids {', '.join(others)}): "
            "they share the cores, and the figures of both suffer",
            file=sys.stderr,
        )
    data_dir = DATA_DIR.with_name(f"{DATA_DIR.name}-{os.getpid()}")
    shutil.rmtree(data_dir, ignore_errors=True)
    try:
        # max_connections: the server's pool plus pgbench's clients (up to 128 in
        # bench-full).
        with EmbeddedPostgres(data_dir, settings={"max_connections": "300"}) as server:
            yield server.dsn, _postmaster_pid(data_dir)
    finally:
        _remove(data_dir)


def _remove(data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.with_name(f"{data_dir.name}.log").unlink(missing_ok=True)


def _remove_stale_runs() -> list[str]:
    """Removes the directories of runs whose process is gone; returns the live ones' pids."""
    alive = []
    for path in DATA_DIR.parent.glob(f"{DATA_DIR.name}-*"):
        pid = path.name.rsplit("-", 1)[1]
        if not pid.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _remove(path)
            continue
        except PermissionError:
            pass  # alive, someone else's
        alive.append(pid)
    # The single shared directory of earlier versions, if no run of theirs is using it.
    if DATA_DIR.is_dir() and _postmaster_pid(DATA_DIR) is None:
        _remove(DATA_DIR)
    return alive


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


async def prepare(
    dsn: str, accounts: int, history: int = 0, *, limits_tenant: bool = False
) -> BenchTenant:
    """Migrates, creates a tenant with a token, seeds its accounts (and a history of
    `history` posted transfers among them), and with `limits_tenant` a second tenant
    alike for pgbench (BenchTenant says why), then ANALYZEs.

    The seeded rows have no events (the bench writes them, not the service): each
    tenant's event horizon says that changes made until the seeding's end may have none,
    as retention would say of pruned ones, so `verify` checks the events of every later
    change (no cursor has expired: streams start at position 1).
    """
    await migrate(dsn)
    db = await Database.connect(dsn, max_size=2)
    try:
        directory = TenantDirectory(db)
        issued = await directory.create_tenant(f"bench-{uuid.uuid4().hex[:8]}")
        limits = None
        if limits_tenant:
            limits = await directory.create_tenant(f"bench-limits-{uuid.uuid4().hex[:8]}")
    finally:
        await db.close()
    connection = await asyncpg.connect(dsn)
    try:
        for tenant in [issued] + ([limits] if limits else []):
            await connection.execute(QUERIES["seed_bench_accounts"], tenant.tenant_id, accounts)
            if history:
                await _seed_history(connection, tenant.tenant_id, accounts, history)
        await connection.execute(QUERIES["seeded_before_events"], issued.tenant_id, None)
        if limits:
            await connection.execute(QUERIES["seeded_before_events"], limits.tenant_id, "infinity")
        # Fresh tables get sequential-scan plans and, under SERIALIZABLE, relation-level
        # predicate locks that make every concurrent writer conflict: statistics first.
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return BenchTenant(
        issued.tenant_id, issued.token, accounts, limits.tenant_id if limits else None
    )


async def _seed_history(
    connection: asyncpg.Connection, tenant_id: str, accounts: int, transfers: int
) -> None:
    """Posted transfers with their entries and the accounts' totals, set-wise
    (bench/seed_ledger.sql). A ledger that starts empty is planned as empty: a
    connection that plans a foreign-key check while `transfers` has a row or two may
    keep a plan that walks a wrong index (every index costs the same then) until the
    next auto-analyze, and small indexes put concurrent inserts on the same pages."""
    await connection.execute(HISTORY["seed_transfers"], transfers, tenant_id, accounts)
    await connection.execute(HISTORY["seed_entries"], tenant_id)
    await connection.execute(HISTORY["seed_account_totals"], tenant_id)


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


async def probe_event_payload(dsn: str, tenant_id: str, request_id: str) -> str:
    """The payload (JSON) of the TRANSFER_CREATED event the service logged for one request."""
    connection = await asyncpg.connect(dsn)
    try:
        payload = await connection.fetchval(QUERIES["probe_event"], tenant_id, request_id)
    finally:
        await connection.close()
    if payload is None:
        raise RuntimeError(f"the service logged no event for probe request {request_id}")
    return str(payload)


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
