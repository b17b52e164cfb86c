"""Retention: old events and request outcomes pruned in small steps.

Every replica may run it: each step is one short transaction of its own (migration 0006's
functions), deleting at most STEP rows, so pruning never holds locks for long nor makes
a large WAL burst. Events go oldest first and only as a prefix of each tenant's stream,
with the tenant's horizon moved in the same transaction (a cursor before it then gets
CURSOR_EXPIRED); request outcomes go oldest first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from moneymovement.storage.errors import StorageError
from moneymovement.storage.session import Database

log = structlog.get_logger("moneymovement.retention")
STEP = 1000
# Steps in one round at most: a large backlog is worked off over several rounds, with
# pauses, instead of in one long burst.
_MAX_STEPS = 50


class Retention:
    """Prunes events older than `event_retention_s`, outcomes older than
    `outcome_retention_s`, every `interval_s`."""

    def __init__(
        self,
        database: Database,
        *,
        event_retention_s: float,
        outcome_retention_s: float,
        interval_s: float,
    ) -> None:
        self._database = database
        self._event_retention = timedelta(seconds=event_retention_s)
        self._outcome_retention = timedelta(seconds=outcome_retention_s)
        self._interval_s = interval_s

    async def prune_once(self, now: datetime | None = None) -> tuple[int, int]:
        """One round: (events pruned, outcomes pruned)."""
        now = now or datetime.now(UTC)
        events = await self._prune("prune_events", now - self._event_retention)
        outcomes = await self._prune("prune_request_outcomes", now - self._outcome_retention)
        if events or outcomes:
            log.info("retention_pruned", events=events, outcomes=outcomes)
        return events, outcomes

    async def _prune(self, statement: str, older_than: datetime) -> int:
        total = 0
        for _ in range(_MAX_STEPS):
            pruned = await self._database.prune(statement, older_than, STEP)
            total += pruned
            if pruned == 0:
                break
        return total

    async def run(self) -> None:
        """Prunes until cancelled; a failed round is logged and retried next round."""
        while True:
            try:
                await self.prune_once()
            except StorageError as error:
                log.warning("retention_failed", error=str(error))
            except Exception:
                log.exception("retention_crashed")
            await asyncio.sleep(self._interval_s)
