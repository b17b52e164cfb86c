"""One transaction at a time per account, within this process.

Under SERIALIZABLE, transactions that lock the same account row do not wait their turn
and then proceed: every one that waited fails once the holder commits (its snapshot
predates the holder's update) and retries from the start. On a hot account (every
transfer credits a platform's fee account, say) nearly all transactions then fail
several times, and p99 grows to seconds (docs/performance.md).

So transfers whose accounts are known before the transaction begins queue here, per
account, and enter the database one after another: in one replica they no longer
conflict; across replicas the database still decides, with retries. The database stays
the only judge of correctness: this queue changes who waits where, never what commits.

Keys are taken in sorted order, all before the transaction, and no transaction waits
here while holding row locks: no deadlock between the queue and the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager


class AccountQueue:
    """Per-account FIFO locks, created on first use and dropped when nobody needs them."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str], int] = {}

    def busy(self, tenant_id: str, account_id: str) -> bool:
        """Whether a transaction of this process is using or waiting for the account."""
        return (tenant_id, account_id) in self._locks

    def __len__(self) -> int:
        """Accounts with a transaction queued or running (for tests)."""
        return len(self._locks)

    @asynccontextmanager
    async def turn(
        self, tenant_id: str, account_ids: Collection[str], deadline: float | None
    ) -> AsyncIterator[None]:
        """Waits until no other transaction of this process uses any of the accounts.

        Raises:
            TimeoutError: `deadline` (event-loop time) passed while waiting; nothing held.
        """
        keys = sorted({(tenant_id, account_id) for account_id in account_ids})
        for key in keys:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        held: list[asyncio.Lock] = []
        try:
            async with asyncio.timeout_at(deadline):
                for key in keys:
                    lock = self._locks[key]
                    await lock.acquire()
                    held.append(lock)
            yield
        finally:
            for lock in held:
                lock.release()
            for key in keys:
                left = self._users[key] - 1
                if left:
                    self._users[key] = left
                else:
                    del self._users[key]
                    del self._locks[key]
