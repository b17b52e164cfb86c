"""The `transfers` and `entries` tables, for one tenant."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from moneymovement.domain.queries import TransferQuery
from moneymovement.domain.transfers import Entry, Transfer
from moneymovement.storage.accounts import Cursor
from moneymovement.storage.queries import query
from moneymovement.storage.rows import entry_from_row, transfer_from_row


class Transfers:
    """Reads transfers and entries of one tenant (writes: storage/ledger.py)."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def get(self, transfer_id: str) -> Transfer | None:
        """One transfer with its history."""
        row = await self._db.fetchrow(query("get_transfer"), self._tenant, transfer_id)
        return None if row is None else transfer_from_row(row)

    async def search(
        self, where: TransferQuery, after: Cursor | None, limit: int
    ) -> list[Transfer]:
        """A page of transfers, newest first."""
        rows = await self._db.fetch(
            query("list_transfers"),
            self._tenant,
            where.account_id,
            where.state,
            where.start_time,
            where.end_time,
            dict(where.metadata or {}),
            where.batch_id,
            where.trace_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
            list(where.metadata_keys),
            where.holder_id,
        )
        return [transfer_from_row(row) for row in rows]

    async def entries(
        self,
        account_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        oldest_first: bool,
        after_version: int | None,
        limit: int,
    ) -> list[Entry]:
        """A page of an account's statement, ordered by account version."""
        name = "list_entries_oldest_first" if oldest_first else "list_entries_newest_first"
        rows = await self._db.fetch(
            query(name), self._tenant, account_id, start, end, after_version, limit
        )
        return [entry_from_row(row) for row in rows]
