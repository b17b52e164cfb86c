"""The tenant directory: `tenants` and `api_tokens` (not tenant-scoped by design), and the
feed of token changes that keeps every server's token cache honest."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from moneymovement.storage.database import translated_errors
from moneymovement.storage.queries import query

# Migration 0002's trigger notifies this channel with the token id of any changed token row.
# Rows as dicts (a name of its own: `Tenants.list` shadows the builtin in the class body).
Rows = list[dict[str, Any]]
TOKEN_CHANGES_CHANNEL = "mm_token_changed"  # noqa: S105 (a channel name, not a secret)


@dataclass(frozen=True)
class LiveToken:
    """A token that is not revoked: its id and its tenant."""

    token_id: str
    tenant_id: str


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

    async def find(self, id_or_name: str) -> str | None:
        """The id of the tenant with this id, else with this name, else None."""
        found = await self._db.fetchval(query("find_tenant_by_id"), id_or_name)
        if found is None:
            found = await self._db.fetchval(query("find_tenant_by_name"), id_or_name)
        return None if found is None else str(found)

    async def list(self) -> Rows:
        """All tenants with their number of active tokens."""
        return [dict(row) for row in await self._db.fetch(query("list_tenants"))]

    async def add_token(self, token_id: str, tenant_id: str, token: str) -> None:
        """Stores a token's digest, never the token."""
        await self._db.execute(query("insert_token"), token_id, tenant_id, token_digest(token))

    async def list_tokens(self, tenant_id: str | None) -> Rows:
        """Tokens (id, tenant, created, revoked) of one tenant or of all; never a digest."""
        return [dict(row) for row in await self._db.fetch(query("list_tokens"), tenant_id)]

    async def revoke_token(self, token_id: str) -> datetime | None:
        """Revokes a token; returns when it was revoked (now or before), None if unknown."""
        revoked_at = await self._db.fetchval(query("revoke_token"), token_id)
        if revoked_at is None:
            revoked_at = await self._db.fetchval(query("find_token_revocation"), token_id)
        return revoked_at  # type: ignore[no-any-return]

    async def live_token(self, digest: bytes) -> LiveToken | None:
        """The live token with this SHA-256 digest.

        The lookup goes through the unique index on the digest: its timing can depend only
        on the digest, and learning a digest's prefix says nothing usable about the token
        (SHA-256 preimage resistance). The stored digest is then compared in constant time
        anyway, so that no equality test on secret-derived bytes leaks timing.
        """
        row = await self._db.fetchrow(query("find_live_token"), digest)
        if row is None or not hmac.compare_digest(bytes(row["token_sha256"]), digest):
            return None
        return LiveToken(str(row["token_id"]), str(row["tenant_id"]))


def token_digest(token: str) -> bytes:
    """SHA-256 of a token. Tokens are 256-bit random, so a plain hash suffices (no salt
    or stretching is needed against guessing)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenChanges:
    """A dedicated connection LISTENing on TOKEN_CHANGES_CHANNEL."""

    def __init__(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        self._connection = connection
        self._lost = lost

    async def wait_lost(self, check_every_s: float) -> None:
        """Returns when the connection is gone. Every `check_every_s` a trivial query
        proves it alive: a half-open connection (a silent network partition) would
        otherwise look healthy while notifications are no longer arriving."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=check_every_s)
            if self._lost.is_set():
                return
            try:
                async with translated_errors():
                    await self._connection.fetchval(query("ping"), timeout=check_every_s)
            except Exception:
                return


@asynccontextmanager
async def token_changes(dsn: str, on_change: Callable[[str], None]) -> AsyncIterator[TokenChanges]:
    """Listens for token changes, calling `on_change(token_id)` for each, until exit.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    lost = asyncio.Event()
    async with translated_errors():
        connection = await asyncpg.connect(
            dsn, timeout=5, server_settings={"application_name": "moneymovement-token-changes"}
        )
    try:
        connection.add_termination_listener(lambda _connection: lost.set())
        async with translated_errors():
            await connection.add_listener(
                TOKEN_CHANGES_CHANNEL,
                lambda _connection, _pid, _channel, token_id: on_change(str(token_id)),
            )
        yield TokenChanges(connection, lost)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), timeout=2)
        if not connection.is_closed():
            connection.terminate()
