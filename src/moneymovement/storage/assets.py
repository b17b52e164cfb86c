"""Reads of one tenant's assets (writes: storage/ledger.py)."""

from __future__ import annotations

import asyncpg

from moneymovement.domain.assets import Asset
from moneymovement.storage.asset_rows import asset_from_row
from moneymovement.storage.queries import query


class AssetReads:
    """A tenant's registered assets."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def list(self, after: str | None, limit: int) -> list[Asset]:
        """Up to `limit` assets by code, after the code `after` (None: from the first)."""
        rows = await self._db.fetch(query("list_assets"), self._tenant, after, limit)
        return [asset_from_row(row) for row in rows]
