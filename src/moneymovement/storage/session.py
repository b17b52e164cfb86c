"""The database as the service layer sees it: sessions of tenant-scoped repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from moneymovement.storage.accounts import Accounts
from moneymovement.storage.database import create_pool, translated_errors
from moneymovement.storage.outcomes import RequestOutcomes, StoredOutcome
from moneymovement.storage.queries import query
from moneymovement.storage.tenants import Tenants
from moneymovement.storage.transfers import Transfers


@dataclass(frozen=True)
class Session:
    """The repositories of one transaction, all bound to one tenant; and, when asked for,
    the outcome a request id already had, read just before the transaction began."""

    accounts: Accounts
    transfers: Transfers
    outcomes: RequestOutcomes
    prior_outcome: StoredOutcome | None = None


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
    async def session(
        self, tenant_id: str, *, write: bool, request_id: str | None = None
    ) -> AsyncIterator[Session]:
        """One transaction: SERIALIZABLE for writes; for reads REPEATABLE READ READ ONLY,
        a consistent snapshot that takes no SSI predicate locks, so reads never make
        concurrent writers fail.

        With `request_id`, its recorded outcome is looked up on the same connection just
        before the transaction begins. Inside a SERIALIZABLE transaction that read would
        take a predicate lock on the B-tree page where the id would be, the very page
        concurrent requests insert their outcomes into, and on a young table nearly every
        pair of concurrent requests would fail each other. The transaction still inserts
        the outcome, so a duplicate that commits in between makes this one fail and retry.
        """
        isolation = "serializable" if write else "repeatable_read"
        async with translated_errors():
            self._waiting += 1
            try:
                connection = await self._pool.acquire()
            finally:
                self._waiting -= 1
            try:
                outcomes = RequestOutcomes(connection, tenant_id)
                prior = await outcomes.find(request_id) if request_id else None
                session = Session(
                    accounts=Accounts(connection, tenant_id),
                    transfers=Transfers(connection, tenant_id),
                    outcomes=outcomes,
                    prior_outcome=prior,
                )
                if prior is not None:
                    yield session  # a replay answers from the outcome: no transaction
                else:
                    async with connection.transaction(isolation=isolation, readonly=not write):
                        yield session
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

    async def ping(self) -> None:
        """Raises DatabaseUnavailable unless the database answers a trivial query.

        On a connection of its own, not the pool's: a pool busy with traffic must not look
        like a database that is down (readiness would pull the busiest replicas).
        """
        async with translated_errors():
            connection = await asyncpg.connect(self._dsn, timeout=5)
            try:
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
