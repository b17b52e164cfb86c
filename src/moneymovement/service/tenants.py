"""Tenants and their bearer tokens: creation, listing, revocation, and resolving a token to
its tenant through a cache that revocation empties at once."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from moneymovement.domain import ids
from moneymovement.domain.errors import database_unavailable
from moneymovement.service.pages import Page, decode_time_cursor, paginate, scope_of, time_position
from moneymovement.storage.errors import DatabaseUnavailable
from moneymovement.storage.session import Database
from moneymovement.storage.tenants import (
    Revocation,
    revoke_everywhere,
    token_changes,
    token_digest,
)

log = structlog.get_logger("moneymovement.tenants")

# Entries kept at most; past it the cache starts over (a flood of made-up tokens must not
# grow memory without bound).
_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown once to whoever created it; only its digest is stored."""

    tenant_id: str
    token_id: str
    token: str
    created_at: datetime | None = None
    holder_id: str | None = None  # the holder it is scoped to; None: the platform's


@dataclass(frozen=True)
class TenantInfo:
    """A tenant as listed: id, name, when created, how many of its tokens are live."""

    id: str
    name: str
    created_at: datetime
    live_tokens: int


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the token, nor its digest."""

    id: str
    tenant_id: str
    created_at: datetime
    revoked_at: datetime | None
    holder_id: str | None = None


@dataclass(frozen=True)
class Grant:
    """What a live token lets its bearer act as: a tenant, and within it one holder when
    the token is scoped to one (None: the platform, every holder)."""

    tenant_id: str
    holder_id: str | None = None


class UnknownTenant(LookupError):
    """No tenant has that id or name."""


class UnknownHolder(LookupError):
    """The tenant has no holder of that id."""


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe."""
    return "mm_" + secrets.token_urlsafe(32)


class TenantDirectory:
    """Creates tenants and tokens, revokes tokens, and resolves tokens to tenants.

    The token lookup runs before every RPC, so its answers are cached, by the token's
    SHA-256 digest (the token itself is never a key), for at most `cache_ttl_s`. The cache
    is only used while `watch_token_changes` holds a LISTEN connection: every change to a
    token row (a revocation, from any process) notifies it, the token is dropped at once,
    and the server confirms; `revoke_token` waits for every server's confirmation. While
    that connection is down nothing is cached, so a revocation can never be missed;
    lookups then go to the database on every call until it is back.

    `dsn` (the database's) is needed for the LISTEN connection and for revocations to
    wait for the servers' confirmations.
    """

    def __init__(
        self, database: Database, *, cache_ttl_s: float = 2.0, dsn: str | None = None
    ) -> None:
        self._database = database
        self._ttl_s = cache_ttl_s
        self._dsn = dsn
        # digest -> (the grant or None for an unknown token, token id or None, expiry)
        self._cache: dict[bytes, tuple[Grant | None, str | None, float]] = {}
        self._caching = False
        # Bumped by every invalidation: a lookup that began before one must not cache what
        # it read, which may already be stale.
        self._generation = 0

    @property
    def caching(self) -> bool:
        """Whether lookups are being cached (the token-change listener is up)."""
        return self._caching

    async def create_tenant(self, name: str) -> IssuedToken:
        """Creates the tenant `name` if needed, and a new token for it."""
        async with self._database.directory() as tenants:
            tenant_id = await tenants.create(ids.new_id(ids.TENANT), name)
            token_id, token = ids.new_id(ids.TOKEN), new_token()
            created_at = await tenants.add_token(token_id, tenant_id, token)
        return IssuedToken(tenant_id, token_id, token, created_at)

    async def create_token(
        self, tenant: str, *, by_id_only: bool = False, holder_id: str | None = None
    ) -> IssuedToken:
        """A new token for the existing tenant with this id or name (with `by_id_only`,
        this id: AdminService names tenants by id only), scoped to one of its holders
        when `holder_id` is given.

        Raises:
            UnknownTenant: there is no such tenant.
            UnknownHolder: the tenant has no holder `holder_id`.
        """
        async with self._database.directory() as tenants:
            tenant_id = await tenants.find(tenant)
            if tenant_id is None or (by_id_only and tenant_id != tenant):
                raise UnknownTenant(tenant)
            token_id, token = ids.new_id(ids.TOKEN), new_token()
            created_at = await tenants.add_token(token_id, tenant_id, token, holder_id)
            if created_at is None:
                raise UnknownHolder(holder_id)
        return IssuedToken(tenant_id, token_id, token, created_at, holder_id)

    async def ensure_tenant(self, name: str) -> tuple[TenantInfo, bool]:
        """The tenant `name`, created unless it exists, and whether this call created it
        (no token is made: create_token makes them)."""
        async with self._database.directory() as tenants:
            row, created = await tenants.create_if_new(ids.new_id(ids.TENANT), name)
        return _tenant_info(row), created

    async def tenant_page(self, size: int, page_token: str) -> Page[TenantInfo]:
        """One page of `size` tenants, oldest first, after `page_token` ("": the first).

        Raises:
            InvalidInput: `page_token` is no token of this listing.
        """
        scope = scope_of("tenants")
        after = decode_time_cursor(page_token, scope)
        async with self._database.directory() as tenants:
            rows = [_tenant_info(row) for row in await tenants.page(after, size + 1)]
        return paginate(rows, size, lambda t: time_position(t.created_at, t.id), scope)

    async def token_page(self, tenant_id: str, size: int, page_token: str) -> Page[TokenInfo]:
        """One page of `size` tokens of a tenant, oldest first, after `page_token`.

        Raises:
            UnknownTenant: no tenant has the id `tenant_id`.
            InvalidInput: `page_token` is no token of this listing for this tenant.
        """
        scope = scope_of("tokens", tenant_id)
        after = decode_time_cursor(page_token, scope)
        async with self._database.directory() as tenants:
            if await tenants.find(tenant_id) != tenant_id:
                raise UnknownTenant(tenant_id)
            rows = await tenants.token_page(tenant_id, after, size + 1)
        found = [
            TokenInfo(
                r["token_id"], r["tenant_id"], r["created_at"], r["revoked_at"], r["holder_id"]
            )
            for r in rows
        ]
        return paginate(found, size, lambda t: time_position(t.created_at, t.id), scope)

    async def list_tenants(self) -> list[dict[str, object]]:
        """Every tenant with its number of active tokens."""
        async with self._database.directory() as tenants:
            return await tenants.list()

    async def list_tokens(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Tokens (id, tenant, created, revoked; never the token) of one tenant or all.

        Raises:
            UnknownTenant: `tenant` names no tenant.
        """
        async with self._database.directory() as tenants:
            tenant_id = None
            if tenant is not None:
                tenant_id = await tenants.find(tenant)
                if tenant_id is None:
                    raise UnknownTenant(tenant)
            return await tenants.list_tokens(tenant_id)

    async def revoke_token(self, token_id: str, *, wait_s: float = 5.0) -> Revocation:
        """Revokes a token and, with a `dsn`, waits up to `wait_s` until every running
        server confirms it dropped the token: from then on none accepts it. Revoking a
        revoked token changes nothing; `revoked_at` None means there is no such token."""
        if self._dsn is not None:
            try:
                revocation = await revoke_everywhere(self._dsn, token_id, wait_s=wait_s)
            except DatabaseUnavailable as error:
                raise database_unavailable() from error
        else:
            async with self._database.directory() as tenants:
                revocation = Revocation(await tenants.revoke_token(token_id), 0, 0)
        self._forget(token_id)  # this process need not wait for its own notification
        return revocation

    def cached_grant_of(self, token: str) -> tuple[bool, Grant | None]:
        """(True, the grant or None) when a fresh cached lookup answers, without waiting;
        (False, None) when the database must be asked (grant_of)."""
        cached = self._cache.get(token_digest(token))
        if cached is not None and cached[2] > time.monotonic():
            return True, cached[0]
        return False, None

    async def tenant_of(self, token: str) -> str | None:
        """The tenant of a live token, or None.

        Raises:
            DomainError: DATABASE_UNAVAILABLE, when the lookup cannot reach the database.
        """
        grant = await self.grant_of(token)
        return None if grant is None else grant.tenant_id

    async def grant_of(self, token: str) -> Grant | None:
        """What a live token grants (its tenant, and its holder if scoped), or None.

        Raises:
            DomainError: DATABASE_UNAVAILABLE, when the lookup cannot reach the database.
        """
        digest = token_digest(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[2] > now:
            return cached[0]
        generation = self._generation
        try:
            async with self._database.directory() as tenants:
                live = await tenants.live_token(digest)
        except DatabaseUnavailable as error:
            raise database_unavailable() from error
        grant, token_id = (
            (None, None) if live is None else (Grant(live.tenant_id, live.holder_id), live.token_id)
        )
        if self._caching and generation == self._generation:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (grant, token_id, now + self._ttl_s)
        return grant

    async def watch_token_changes(self, *, check_every_s: float = 5.0) -> None:
        """Keeps the cache in step with token changes, forever (run it as a task).

        With `cache_ttl_s` 0 there is no cache, and without a `dsn` no way to listen:
        nothing is watched (nor cached).
        """
        if self._ttl_s <= 0 or self._dsn is None:
            return
        while True:
            try:
                async with token_changes(self._dsn, self._forget) as changes:
                    self._start_caching()
                    log.info("token_changes_listening")
                    await changes.wait_lost(check_every_s)
                log.warning("token_changes_lost")
            except DatabaseUnavailable:
                pass  # retried after a pause; meanwhile every lookup reads the database
            finally:
                self._stop_caching()
            await asyncio.sleep(1.0)

    def _forget(self, token_id: str) -> None:
        """Drops a changed token, and every cached "unknown token" (a token un-revoked by
        hand must not stay refused), from the cache."""
        self._generation += 1
        stale = [d for d, (_, tid, _) in self._cache.items() if tid is None or tid == token_id]
        for digest in stale:
            del self._cache[digest]

    def _start_caching(self) -> None:
        # Changes made while nobody was listening are unknown: start from nothing.
        self._generation += 1
        self._cache.clear()
        self._caching = True

    def _stop_caching(self) -> None:
        if self._caching:
            log.warning("token_cache_disabled", why="the token-change listener is down")
        self._generation += 1
        self._caching = False
        self._cache.clear()


def _tenant_info(row: dict[str, Any]) -> TenantInfo:
    return TenantInfo(row["tenant_id"], row["name"], row["created_at"], int(row["active_tokens"]))
