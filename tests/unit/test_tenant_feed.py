"""A tenant's feed hands each stream every event after its cursor exactly once, in
order, whether the stream filters or not (service/event_stream.py, TenantFeed.since)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from moneymovement.domain.events import Event, EventFilter, EventType, RecordedEvent
from moneymovement.service.event_stream import TenantFeed

KINDS = (EventType.TRANSFER_CREATED, EventType.TRANSFER_POSTED, EventType.ACCOUNT_UPDATED)
# Positions with gaps, as rolled-back transactions leave them.
POSITIONS = [p for p in range(1, 400) if p % 7 != 0]


def feed(capacity: int = 10_000) -> TenantFeed:
    made = TenantFeed("tnt_a", head=0, capacity=capacity)
    made.add(
        [RecordedEvent(p, datetime.now(UTC), Event(KINDS[p % 3], f"r{p}", None)) for p in POSITIONS]
    )
    return made


def drain(source: TenantFeed, after: int, where: EventFilter, limit: int) -> list[int]:
    """What a stream starting after `after` receives, page by page, until caught up."""
    received: list[int] = []
    while True:
        served = source.since(after, limit, where)
        assert served is not None
        events, through = served
        assert through >= after  # a cursor never goes back
        received += [e.position for e in events]
        if not events:
            assert through == source.head  # caught up means through the newest
            return received
        after = through


@pytest.mark.parametrize("limit", [1, 5, 256, 10_000])
@pytest.mark.parametrize("start", [0, 1, 7, 200, 398])  # 398: the head
def test_an_unfiltered_stream_gets_every_later_event_once_in_order(start: int, limit: int) -> None:
    got = drain(feed(), start, EventFilter(), limit)
    assert got == [p for p in POSITIONS if p > start]


@pytest.mark.parametrize("limit", [1, 5, 256])
def test_a_filtered_stream_gets_every_later_matching_event_once(limit: int) -> None:
    wanted = EventFilter(types=frozenset({EventType.TRANSFER_POSTED}))
    got = drain(feed(), 10, wanted, limit)
    assert got == [p for p in POSITIONS if p > 10 and KINDS[p % 3] is EventType.TRANSFER_POSTED]


def test_a_cursor_older_than_what_the_feed_holds_reads_from_the_database() -> None:
    trimmed = feed(capacity=100)  # trims its oldest events as it grows
    assert trimmed.floor > 0
    assert trimmed.since(trimmed.floor - 1, 10, EventFilter()) is None
    assert trimmed.since(trimmed.floor, 10, EventFilter()) is not None
