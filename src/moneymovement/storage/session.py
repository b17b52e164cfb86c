"""The database as the service layer sees it: sessions of tenant-scoped repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import asyncpg

from moneymovement.domain import ids
from moneymovement.storage.accounts import Accounts
from moneymovement.storage.assets import AssetReads
from moneymovement.storage.database import (
    create_pool,
    switch_to_service_role,
    translated_errors,
)
from moneymovement.storage.events import EventStore
from moneymovement.storage.funds import FundsReads
from moneymovement.storage.holders import HolderStore
from moneymovement.storage.ledger import LedgerStore
from moneymovement.storage.payouts import PayoutReads
from moneymovement.storage.queries import query
from moneymovement.storage.spans import connection_class
from moneymovement.storage.tenants import Tenants
from moneymovement.storage.transfers import Transfers

# Where a page of payouts in flight ends: its last (processing_at or settled_at, payout id).
PageCursor = tuple[datetime, str]


@dataclass(frozen=True)
class InFlight:
    """A page of PROCESSING payouts and one of recently POSTED payouts, as (tenant id,
    payout id), each with where its next page starts (None: it was the last)."""

    processing: list[tuple[str, str]]
    processing_next: PageCursor | None
    posted: list[tuple[str, str]]
    posted_next: PageCursor | None


@dataclass(frozen=True)
class Session:
    """The repositories of one transaction, all bound to one tenant."""

    accounts: Accounts
    transfers: Transfers
    ledger: LedgerStore
    events: EventStore
    funds: FundsReads
    payouts: PayoutReads
    assets: AssetReads
    holders: HolderStore


def _session(connection: asyncpg.Connection, tenant_id: str) -> Session:
    return Session(
        accounts=Accounts(connection, tenant_id),
        transfers=Transfers(connection, tenant_id),
        ledger=LedgerStore(connection, tenant_id),
        events=EventStore(connection, tenant_id),
        funds=FundsReads(connection, tenant_id),
        payouts=PayoutReads(connection, tenant_id),
        assets=AssetReads(connection, tenant_id),
        holders=HolderStore(connection, tenant_id),
    )


@lru_cache(maxsize=4096)
def begin_statement(name: str, tenant_id: str) -> str:
    """The named BEGIN statement with the tenant's literal put in.

    The one place a value goes into SQL text, so the value is checked to be a tenant id
    (a prefix and base32: no quote can pass) instead of being escaped. Cached: it is
    built for every transaction, and a process serves few tenants.
    """
    if not ids.is_id(tenant_id, ids.TENANT):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    return query(name).replace(":tenant", f"'{tenant_id}'")


class Database:
    """A connection pool that hands out transactions as sessions."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._waiting = 0  # callers waiting for a connection, for the pool gauge

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int) -> Database:
        """Creates the pool; connections are opened when first needed."""
        return cls(await create_pool(dsn, max_size=max_size), dsn)

    @asynccontextmanager
    async def session(self, tenant_id: str, *, write: bool) -> AsyncIterator[Session]:
        """One transaction of one tenant: SERIALIZABLE for writes; for reads REPEATABLE
        READ READ ONLY, a snapshot that takes no SSI predicate locks, so reads never make
        concurrent writers fail. The tenant is declared to the database at BEGIN, and
        row-level security holds the transaction to it.
        """
        begin = begin_statement("begin_write" if write else "begin_read", tenant_id)
        async with self._connection() as connection:
            try:
                await connection.execute(begin)
                yield _session(connection, tenant_id)
                await connection.execute(query("commit"))
            except BaseException:
                await _roll_back(connection)
                raise

    @asynccontextmanager
    async def reader(self, tenant_id: str) -> AsyncIterator[Session]:
        """Repositories for reads of ONE statement each, without BEGIN or COMMIT: each
        runs in its own implicit transaction and declares the tenant itself
        (sql/sessions.sql, "One round trip per read")."""
        async with self._connection() as connection:
            yield _session(connection, tenant_id)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, with asyncpg's failures translated; counted while waited
        for (the pool gauge)."""
        async with translated_errors():
            self._waiting += 1
            try:
                connection = await self._pool.acquire()
            finally:
                self._waiting -= 1
            try:
                yield connection
            finally:
                await self._pool.release(connection)

    @asynccontextmanager
    async def directory(self) -> AsyncIterator[Tenants]:
        """The tenant directory (tenants and tokens), in its own transaction."""
        async with (
            translated_errors(),
            self._pool.acquire() as connection,
            connection.transaction(),
        ):
            yield Tenants(connection)

    async def expired_holds(self, limit: int) -> list[tuple[str, str]]:
        """(tenant id, transfer id) of up to `limit` holds past their expiry, oldest first.

        The one cross-tenant read: the sweeper's. Each hold is then expired in its own
        tenant-scoped transaction.
        """
        async with translated_errors(), self._pool.acquire() as connection:
            rows = await connection.fetch(query("find_expired_holds"), limit)
        return [(row["tenant_id"], row["transfer_id"]) for row in rows]

    async def accounts_with_due_funds(self, limit: int) -> list[tuple[str, str]]:
        """(tenant id, account id) of up to `limit` accounts with scheduled parts due now,
        the longest due first: the funds sweeper's cross-tenant read."""
        async with translated_errors(), self._pool.acquire() as connection:
            rows = await connection.fetch(query("find_accounts_with_due_funds"), limit)
        return [(row["tenant_id"], row["account_id"]) for row in rows]

    async def payouts_due(self, limit: int) -> list[tuple[str, str]]:
        """(tenant id, payout id) of up to `limit` PENDING payouts past their submission
        time, across tenants."""
        async with translated_errors(), self._pool.acquire() as connection:
            rows = await connection.fetch(query("find_payouts_to_submit"), limit)
        return [(row["tenant_id"], row["payout_id"]) for row in rows]

    async def payouts_in_flight(
        self,
        limit: int,
        returns_within_s: float,
        processing_after: PageCursor | None,
        posted_before: PageCursor | None,
    ) -> InFlight:
        """A page of up to `limit` PROCESSING payouts (oldest first, after
        `processing_after` when given) and a page of up to `limit` POSTED within
        `returns_within_s` (newest first, older than `posted_before` when given), across
        tenants, as (tenant id, payout id); and where each next page starts (None: this
        page was the last)."""
        after_at, after_id = processing_after or (None, None)
        before_at, before_id = posted_before or (None, None)
        async with translated_errors(), self._pool.acquire() as connection:
            rows = await connection.fetch(
                query("find_payouts_in_flight"), limit, returns_within_s, after_at, after_id,
                before_at, before_id,
            )  # fmt: skip
        pages = [
            [row for row in rows if row["state"] == state] for state in ("PROCESSING", "POSTED")
        ]
        ends = [(page[-1]["at"], page[-1]["payout_id"]) if len(page) == limit else None
                for page in pages]  # fmt: skip
        ids = [[(row["tenant_id"], row["payout_id"]) for row in page] for page in pages]
        return InFlight(ids[0], ends[0], ids[1], ends[1])

    async def prune(self, statement: str, older_than: datetime, step: int) -> int:
        """One step of retention across tenants (`statement`: prune_events or
        prune_request_outcomes): how many rows it deleted."""
        async with translated_errors(), self._pool.acquire() as connection:
            return int(await connection.fetchval(query(statement), older_than, step))

    async def ping(self) -> None:
        """Raises DatabaseUnavailable unless the database answers a trivial query.

        On a connection of its own, not the pool's: a pool busy with traffic must not look
        like a database that is down (readiness would pull the busiest replicas).
        """
        async with translated_errors():
            connection = await asyncpg.connect(
                self._dsn, timeout=5, connection_class=connection_class()
            )
            try:
                # As the pool's connections do: a login that cannot switch to the service's
                # role makes every RPC fail, so it must not look ready either.
                await switch_to_service_role(connection)
                await connection.fetchval(query("ping"), timeout=5)
            finally:
                await connection.close()

    def pool_stats(self) -> tuple[int, int]:
        """(connections in use, pool size)."""
        size = self._pool.get_size()
        return size - self._pool.get_idle_size(), size

    def pool_gauges(self) -> tuple[int, int, int]:
        """(connections in use, connections open, callers waiting for one)."""
        in_use, size = self.pool_stats()
        return in_use, size, self._waiting

    async def close(self) -> None:
        """Closes the pool, waiting for connections in use to be released."""
        await self._pool.close()


async def _roll_back(connection: asyncpg.Connection) -> None:
    """Ends a failed transaction (a failed COMMIT has ended it already).

    If even that fails (the connection broke, or the task was cancelled in the middle of
    a statement or of COMMIT), the connection is closed: its state is unknown, and the
    pool replaces it, rather than rolling back on release with an ERROR line each time.
    """
    if connection.is_closed() or not connection.is_in_transaction():
        return
    try:
        await connection.execute(query("rollback"))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        connection.terminate()
