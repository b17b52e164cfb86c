"""The event outbox as the stream reads it: pages of a tenant's events, in order.

Events are written by the write pipeline (sql/ledger.sql, write_batch), in the same
transaction as the changes they describe; this module only reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from moneymovement.domain.events import EventFilter, RecordedEvent
from moneymovement.storage.queries import query
from moneymovement.storage.rows import event_from_row

ALL = EventFilter()


@dataclass(frozen=True)
class EventPage:
    """Events after a position, and from the same snapshot: the horizon (cursors before
    it have expired) and the head (the newest position of the tenant)."""

    events: list[RecordedEvent]
    horizon: int
    head: int
    full: bool  # as many events as asked: more may follow

    @property
    def scanned_through(self) -> int:
        """The position through which every matching event is in this page."""
        return self.events[-1].position if self.full else self.head


class EventStore:
    """One tenant's events."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def read(self, after: int, limit: int, where: EventFilter = ALL) -> EventPage:
        """Up to `limit` events after position `after` matching `where` (limit 0: only
        the horizon and the head)."""
        row = await self._db.fetchrow(
            query("read_events"),
            self._tenant,
            after,
            limit,
            sorted(where.types) if where.types else None,
            where.account_id,
            where.holder_id,
        )
        assert row is not None
        events = [event_from_row(e) for e in row["events"]]
        head = max(row["head"], row["horizon"])
        return EventPage(events, row["horizon"], head, limit > 0 and len(events) == limit)
