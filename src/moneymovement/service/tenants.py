"""Tenants and their bearer tokens: creation, and resolving a token to its tenant."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from moneymovement.domain import ids
from moneymovement.domain.errors import DomainError, Reason
from moneymovement.storage.errors import DatabaseUnavailable
from moneymovement.storage.session import Database


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown once to whoever created it; only its digest is stored."""

    tenant_id: str
    token_id: str
    token: str


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe."""
    return "mm_" + secrets.token_urlsafe(32)


class TenantDirectory:
    """Creates tenants and tokens and resolves tokens, with a short-lived cache.

    The cache keeps the token lookup off most requests. Entries live `cache_ttl_s`
    seconds, which bounds how long a revoked token keeps working on this replica.
    """

    def __init__(self, database: Database, *, cache_ttl_s: float = 2.0) -> None:
        self._database = database
        self._ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def create_tenant(self, name: str) -> IssuedToken:
        """Creates the tenant `name` if needed, and a new token for it."""
        async with self._database.directory() as tenants:
            tenant_id = await tenants.create(ids.new_id(ids.TENANT), name)
            issued = IssuedToken(tenant_id, ids.new_id(ids.TOKEN), new_token())
            await tenants.add_token(issued.token_id, tenant_id, issued.token)
        return issued

    async def list_tenants(self) -> list[dict[str, object]]:
        """Every tenant with its number of active tokens."""
        async with self._database.directory() as tenants:
            return await tenants.list()

    async def tenant_of(self, token: str) -> str | None:
        """The tenant of a live token, or None."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            async with self._database.directory() as tenants:
                tenant_id = await tenants.tenant_of_token(token)
        except DatabaseUnavailable as error:
            raise DomainError(
                Reason.DATABASE_UNAVAILABLE, "the database is unavailable; retry later"
            ) from error
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (tenant_id, now + self._ttl_s)
        return tenant_id
