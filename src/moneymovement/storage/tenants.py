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
from moneymovement.storage.listening import Listening, listening
from moneymovement.storage.queries import query

# Migration 0002's trigger notifies this channel with the token id of any changed token row.
# Rows as dicts (a name of its own: `Tenants.list` shadows the builtin in the class body).
Rows = list[dict[str, Any]]
TOKEN_CHANGES_CHANNEL = "mm_token_changed"  # noqa: S105 (a channel name, not a secret)
# Each server confirms on this channel, with the token id, that it dropped a changed token.
TOKEN_DROPPED_CHANNEL = "mm_token_dropped"  # noqa: S105
# The servers' listener connections go by this name (count_token_listeners counts them).
LISTENER_APPLICATION_NAME = "moneymovement-token-changes"


@dataclass(frozen=True)
class LiveToken:
    """A token that is not revoked: its id, its tenant, and the holder it is scoped to
    (None: the platform's token)."""

    token_id: str
    tenant_id: str
    holder_id: str | None = None


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

    async def create_if_new(self, tenant_id: str, name: str) -> tuple[dict[str, Any], bool]:
        """The tenant named `name` (with its number of live tokens), created with
        `tenant_id` unless it existed; and whether this call created it."""
        created = await self._db.fetchval(query("insert_tenant"), tenant_id, name)
        row = await self._db.fetchrow(query("tenant_by_name"), name)
        return dict(row), created is not None

    async def page(self, after: tuple[datetime, str] | None, limit: int) -> Rows:
        """Up to `limit` tenants (id, name, created, live tokens) after a cursor."""
        when, last = after if after is not None else (None, None)
        return [dict(row) for row in await self._db.fetch(query("tenants_page"), when, last, limit)]

    async def token_page(
        self, tenant_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> Rows:
        """Up to `limit` tokens (id, tenant, created, revoked) of a tenant after a cursor."""
        when, last = after if after is not None else (None, None)
        rows = await self._db.fetch(query("tokens_page"), tenant_id, when, last, limit)
        return [dict(row) for row in rows]

    async def add_token(
        self, token_id: str, tenant_id: str, token: str, holder_id: str | None = None
    ) -> datetime | None:
        """Stores a token's digest, never the token; returns when it was made, or None
        when `holder_id` is no holder of the tenant (the foreign key's answer)."""
        digest = token_digest(token)
        try:
            async with self._db.transaction():  # a savepoint: the caller's goes on
                return await self._db.fetchval(  # type: ignore[no-any-return]
                    query("insert_token"), token_id, tenant_id, digest, holder_id
                )
        except asyncpg.ForeignKeyViolationError:
            return None

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
        return LiveToken(str(row["token_id"]), str(row["tenant_id"]), row["holder_id"])


def token_digest(token: str) -> bytes:
    """SHA-256 of a token. Tokens are 256-bit random, so a plain hash suffices (no salt
    or stretching is needed against guessing)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenChanges:
    """Token changes heard on a LISTEN connection; each confirmed to revokers."""

    def __init__(self, listening: Listening) -> None:
        self._listening = listening
        self._confirmations: set[asyncio.Task[None]] = set()

    def confirm(self, token_id: str) -> None:
        """Tells revokers (in the background) that this server dropped `token_id`."""
        task = asyncio.create_task(self._confirm(token_id))
        self._confirmations.add(task)
        task.add_done_callback(self._confirmations.discard)

    async def _confirm(self, token_id: str) -> None:
        with contextlib.suppress(Exception):  # a lost connection is noticed by wait_lost
            await self._listening.execute(query("confirm_token_change"), token_id)

    async def wait_lost(self, check_every_s: float) -> None:
        """Returns when the connection is gone (storage/listening.py)."""
        await self._listening.wait_lost(check_every_s)


@asynccontextmanager
async def token_changes(dsn: str, on_change: Callable[[str], None]) -> AsyncIterator[TokenChanges]:
    """Listens for token changes until exit: for each, calls `on_change(token_id)`, then
    confirms it on TOKEN_DROPPED_CHANNEL for whoever waits on the revocation.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    changes: TokenChanges | None = None

    def changed(token_id: str) -> None:
        on_change(token_id)
        if changes is not None:
            changes.confirm(token_id)

    async with listening(
        dsn, {TOKEN_CHANGES_CHANNEL: changed}, application_name=LISTENER_APPLICATION_NAME
    ) as live:
        changes = TokenChanges(live)
        yield changes


@dataclass(frozen=True)
class Revocation:
    """A revocation, and how many running servers confirmed they dropped the token."""

    revoked_at: datetime | None  # None: no such token
    servers: int  # servers listening when it was revoked
    confirmed: int  # of those, how many confirmed within the wait


async def revoke_everywhere(dsn: str, token_id: str, *, wait_s: float) -> Revocation:
    """Revokes a token, then waits (up to `wait_s`) until every server listening for token
    changes has confirmed it dropped the token from its cache: after that, no server
    accepts it. A token revoked before is not waited for (it was dropped back then).

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    confirmed: set[int] = set()
    arrived = asyncio.Event()

    def confirmation(_connection: object, pid: int, _channel: str, payload: object) -> None:
        if payload == token_id:
            confirmed.add(pid)
            arrived.set()

    async with translated_errors():
        connection = await asyncpg.connect(dsn, timeout=5)
    try:
        async with translated_errors():
            await connection.add_listener(TOKEN_DROPPED_CHANNEL, confirmation)
            servers = int(await connection.fetchval(query("count_token_listeners")))
            async with connection.transaction():
                revoked_now = await connection.fetchval(query("revoke_token"), token_id)
            if revoked_now is None:
                before = await connection.fetchval(query("find_token_revocation"), token_id)
                return Revocation(before, servers, servers if before else 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while len(confirmed) < servers and loop.time() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), timeout=deadline - loop.time())
        return Revocation(revoked_now, servers, min(len(confirmed), servers))
    finally:
        await connection.close()
