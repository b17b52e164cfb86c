"""Reads of one tenant's holders (writes: storage/ledger.py)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from moneymovement.domain.holders import Holder, HolderBalance, HolderQuery
from moneymovement.storage.holder_rows import holder_balance_from_row, holder_from_row
from moneymovement.storage.queries import query

# A keyset cursor: the (created_at, id) of the last row of the previous page.
Cursor = tuple[datetime, str]


class HolderStore:
    """A tenant's holders, each read in one statement."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def get(self, holder_id: str) -> Holder | None:
        """One holder, unlocked."""
        row = await self._db.fetchrow(query("get_holder"), self._tenant, holder_id)
        return None if row is None else holder_from_row(row)

    async def search(self, where: HolderQuery, after: Cursor | None, limit: int) -> list[Holder]:
        """A page of holders, newest first."""
        rows = await self._db.fetch(
            query("list_holders"),
            self._tenant,
            None if where.state is None else where.state.value,
            where.external_id,
            dict(where.metadata),
            None if after is None else after[0],
            None if after is None else after[1],
            limit,
            where.holder_id,
        )
        return [holder_from_row(row) for row in rows]

    async def balances(self, holder_id: str) -> tuple[datetime, list[HolderBalance]] | None:
        """The read time and the holder's sums per currency, by code (None: no holder)."""
        rows = await self._db.fetch(query("holder_balances"), self._tenant, holder_id)
        if not rows:
            return None
        sums = [holder_balance_from_row(r) for r in rows if r["currency_code"] is not None]
        return rows[0]["as_of"], sums
