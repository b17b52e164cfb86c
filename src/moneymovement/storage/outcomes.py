"""The `request_outcomes` table, for one tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from moneymovement.storage.queries import query


@dataclass(frozen=True)
class StoredOutcome:
    """What a request id was first used for and what came of it."""

    fingerprint: bytes
    outcome: dict[str, Any]


@dataclass(frozen=True)
class NewOutcome:
    """An outcome to record: the request id, what it asked for and what came of it."""

    request_id: str
    fingerprint: bytes
    outcome: dict[str, Any]


class RequestOutcomes:
    """The `request_outcomes` table, for one tenant."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def find(self, request_id: str) -> StoredOutcome | None:
        """The recorded outcome of a request id, if any."""
        row = await self._db.fetchrow(query("find_outcome"), self._tenant, request_id)
        return None if row is None else StoredOutcome(bytes(row["fingerprint"]), row["outcome"])

    async def save(self, new: NewOutcome) -> None:
        """Records an outcome; a concurrent duplicate makes this raise a unique violation."""
        await self._db.execute(
            query("save_outcome"), self._tenant, new.request_id, new.fingerprint, new.outcome
        )
