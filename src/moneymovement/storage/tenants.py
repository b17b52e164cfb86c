"""The tenant directory: `tenants` and `api_tokens` (not tenant-scoped by design)."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg

from moneymovement.storage.queries import query


class Tenants:
    """The `tenants` and `api_tokens` tables (not tenant-scoped: this is the directory)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._db = connection

    async def create(self, tenant_id: str, name: str) -> str:
        """Creates a tenant, or returns the id of the existing one with that name."""
        created = await self._db.fetchval(query("insert_tenant"), tenant_id, name)
        if created is not None:
            return str(created)
        return str(await self._db.fetchval(query("find_tenant_by_name"), name))

    async def list(self) -> list[dict[str, Any]]:
        """All tenants with their number of active tokens."""
        return [dict(row) for row in await self._db.fetch(query("list_tenants"))]

    async def add_token(self, token_id: str, tenant_id: str, token: str) -> None:
        """Stores a token's digest, never the token."""
        await self._db.execute(query("insert_token"), token_id, tenant_id, token_digest(token))

    async def tenant_of_token(self, token: str) -> str | None:
        """The tenant a live token belongs to."""
        found = await self._db.fetchval(query("find_tenant_by_token"), token_digest(token))
        return None if found is None else str(found)


def token_digest(token: str) -> bytes:
    """SHA-256 of a token. Tokens are 256-bit random, so a plain hash suffices (no salt
    or stretching is needed against guessing), and lookup by digest compares no secret."""
    return hashlib.sha256(token.encode("utf-8")).digest()
