"""Who may call AdminService: the holder of the admin token, and nobody while it is off.

The server knows only the SHA-256 digest of the admin token (MM_ADMIN_TOKEN_SHA256),
never the token, and compares digests in constant time. A tenant's token is recognised
for what it is (PERMISSION_DENIED: authenticated, but not as the admin); the admin token
means nothing to the tenant services (their lookup finds no such tenant token).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from moneymovement.transport.errors import EdgeError, EdgeReason

# The methods of AdminService (and only they) are admitted here instead of by tenant.
ADMIN_METHOD_PREFIX = "/moneymovement.v1.AdminService/"
ADMIN_SETTING = "MM_ADMIN_TOKEN_SHA256"
# What the admin's calls are logged as (actor), in place of a tenant id.
ADMIN_ACTOR = "admin"


class AdminGate:
    """Checks the bearer token of an AdminService call against the admin digest."""

    def __init__(self, admin_token_sha256: bytes | None) -> None:
        self._digest = admin_token_sha256
        self._disabled = EdgeError(
            EdgeReason.ADMIN_DISABLED,
            f"AdminService is off on this server: set {ADMIN_SETTING} to turn it on",
            {"setting": ADMIN_SETTING},
        )

    async def check(
        self, authorization: str, tenant_of: Callable[[str], Awaitable[str | None]]
    ) -> None:
        """Returns when `authorization` carries the admin token; else raises the refusal.

        `tenant_of` resolves a tenant token (to tell a tenant's token, PERMISSION_DENIED,
        from one nobody issued, UNAUTHENTICATED).

        Raises:
            EdgeError: ADMIN_DISABLED, TOKEN_MISSING, ADMIN_TOKEN_REQUIRED or TOKEN_INVALID.
        """
        if self._digest is None:
            raise self._disabled
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise EdgeError(
                EdgeReason.TOKEN_MISSING, "send 'authorization: Bearer <admin token>' metadata"
            )
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        if hmac.compare_digest(presented, self._digest):
            return
        if await tenant_of(token) is not None:
            raise EdgeError(
                EdgeReason.ADMIN_TOKEN_REQUIRED,
                "a tenant's token cannot administer: AdminService takes the admin token only",
            )
        raise EdgeError(EdgeReason.TOKEN_INVALID, "the token is unknown or revoked")
