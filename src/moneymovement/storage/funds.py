"""Reads of scheduled funds, balance monitors and funds policy changes, for one tenant
(writes: storage/ledger.py)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from moneymovement.domain.funds import ScheduledFunds
from moneymovement.domain.ledger import PolicyChange
from moneymovement.domain.monitors import BalanceMonitor
from moneymovement.storage.queries import query
from moneymovement.storage.rows import funds_from_row, monitor_from_row, policy_change_from_row


class FundsReads:
    """Funds accessibility reads inside one tenant's read transaction."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def scheduled(
        self,
        account_id: str,
        include_ended: bool,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ScheduledFunds]:
        """A page of an account's scheduled parts, soonest first."""
        rows = await self._db.fetch(
            query("list_scheduled_funds"),
            self._tenant,
            account_id,
            include_ended,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [funds_from_row(row) for row in rows]

    async def monitor(self, monitor_id: str) -> BalanceMonitor | None:
        """One monitor by id, deleted or not."""
        row = await self._db.fetchrow(query("get_balance_monitor"), self._tenant, monitor_id)
        return None if row is None else monitor_from_row(row)

    async def monitors(self, account_id: str) -> list[BalanceMonitor]:
        """An account's live monitors, oldest first."""
        rows = await self._db.fetch(query("list_balance_monitors"), self._tenant, account_id)
        return [monitor_from_row(row) for row in rows]

    async def policy_changes(
        self, account_id: str, before_version: int | None, limit: int
    ) -> list[PolicyChange]:
        """A page of an account's funds policy changes, newest first."""
        rows = await self._db.fetch(
            query("list_policy_changes"), self._tenant, account_id, before_version, limit
        )
        return [policy_change_from_row(row) for row in rows]
