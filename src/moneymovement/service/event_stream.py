"""The event stream: a tenant's committed events, listed or followed live (docs/events.md).

Events are written by the write pipeline in the same transaction as their changes, with
positions that become visible in order (sql/ledger.sql, write_batch). So a reader that
has seen position p has seen every earlier one, and a consumer that resumes after its
last cursor misses nothing and gets nothing twice.

Live streams of a tenant share one `TenantFeed`: a task that, woken by the database's
notification of a commit (LISTEN/NOTIFY, one per write transaction), reads the new
events once and keeps the most recent ones in memory. A stream that is caught up takes
its events from there; one that is behind (it started from an old cursor, or its
consumer reads slowly) reads pages from the database until it is caught up. Each stream
holds at most one page while its consumer reads it: memory does not grow with the lag.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import structlog

from moneymovement.domain.errors import (
    DomainError,
    FieldReason,
    FieldViolation,
    InvalidInput,
    Reason,
)
from moneymovement.domain.events import EventFilter, RecordedEvent
from moneymovement.domain.holder_scope import event_for_holder, events_filter
from moneymovement.observability import metrics
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.errors import DatabaseUnavailable, StorageError
from moneymovement.storage.events import EventPage
from moneymovement.storage.listening import listening
from moneymovement.storage.session import Session

log = structlog.get_logger("moneymovement.events")

# write_batch notifies this channel with "<tenant id> <newest position>" at each commit.
EVENTS_CHANNEL = "mm_events"
LISTENER_APPLICATION_NAME = "moneymovement-event-notices"
# Events per stream response and per database read of a stream that is behind.
STREAM_PAGE = 256
# Events per read of a feed catching up with the database.
FEED_PAGE = 1000
# Each response on a stream costs the server about 0.1 ms of CPU in gRPC, whatever it
# holds. A tenant with many live streams would spend the CPU its writes need on sending
# each commit to each of them, so after a response a live stream lets the next commits
# gather for a while that grows with its feed's streams: COALESCE_PER_STREAM_S each (a
# feed's streams then send about 4,000 responses a second at most), up to
# MAX_COALESCE_S, the most this adds to an event's delivery. A lone stream does not wait.
COALESCE_PER_STREAM_S = 0.00025
MAX_COALESCE_S = 0.025
# How long one database read of a stream may take (a stream has no deadline of its own).
READ_TIMEOUT_S = 10.0
# Without notifications (the LISTEN connection is down, or a notice was lost), a feed
# still looks for new events this often: slow, but never stuck.
BACKSTOP_S = 2.0
_CURSOR_DIGITS = 19  # a positive bigint


class Start(Enum):
    """Where a stream or a listing starts when no cursor is given."""

    NOW = "now"
    OLDEST = "oldest"


def cursor_of(position: int) -> str:
    """A position as the contract's opaque cursor."""
    return str(position)


def parse_cursor(cursor: str, field_name: str) -> int:
    """The position of a cursor.

    Raises:
        InvalidInput: not a cursor of this server.
    """
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > _CURSOR_DIGITS:
        raise InvalidInput(
            [FieldViolation(field_name, FieldReason.INVALID_FORMAT, "not an event cursor")]
        )
    return int(cursor)


def cursor_expired(cursor: int, horizon: int) -> DomainError:
    return DomainError(
        Reason.CURSOR_EXPIRED,
        f"the events after cursor {cursor} were pruned (retention); the oldest cursor that "
        f"still works is {horizon}",
        {"oldest_cursor": cursor_of(horizon), "cursor": cursor_of(cursor)},
    )


@dataclass(eq=False)
class _Stream:
    """One open WatchEvents stream, for the gauges."""

    tenant_id: str
    cursor: int


@dataclass
class TenantFeed:
    """The most recent events of one tenant, read once for all its live streams.

    `events` holds positions (floor, head] in order; `head` is the newest position read.
    """

    tenant_id: str
    head: int
    capacity: int
    floor: int = 0
    events: list[RecordedEvent] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    users: int = 0
    closed: bool = False  # the server is shutting down: streams end
    task: asyncio.Task[None] | None = None
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    advanced: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.floor = self.head

    def since(
        self, after: int, limit: int, where: EventFilter
    ) -> tuple[list[RecordedEvent], int] | None:
        """Up to `limit` matching events after `after`, and the position through which
        they are all the matching ones; None when the feed no longer holds `after`."""
        if after < self.floor:
            return None
        start = bisect.bisect_right(self.positions, after)
        if not where:  # the common case, for every stream of a busy tenant: no scan
            found = self.events[start : start + limit]
            return found, found[-1].position if len(found) == limit else max(after, self.head)
        found = []
        for recorded in itertools.islice(self.events, start, None):
            if where.matches(recorded.event):
                found.append(recorded)
                if len(found) == limit:
                    return found, recorded.position
        return found, max(after, self.head)

    def add(self, events: list[RecordedEvent]) -> None:
        """Appends newly read events (all after `head`, in order) and wakes the streams."""
        if not events:
            return
        self.events += events
        self.positions += [e.position for e in events]
        self.head = events[-1].position
        excess = len(self.events) - self.capacity
        if excess > self.capacity // 4:  # trimmed in chunks, not at every append
            self.floor = self.positions[excess - 1]
            del self.events[:excess]
            del self.positions[:excess]
        self.signal()

    def signal(self) -> None:
        """Wakes every stream waiting on the feed."""
        advanced, self.advanced = self.advanced, asyncio.Event()
        advanced.set()

    async def wait_past(self, position: int, timeout_s: float) -> bool:
        """Waits until the feed holds events after `position`; False after `timeout_s`."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.head <= position and not self.closed:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.advanced.wait(), remaining)
        return True


class EventStream:
    """ListEvents and WatchEvents, for every tenant of one process."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        dsn: str | None,
        heartbeat_s: float = 15.0,
        feed_capacity: int = 10_000,
    ) -> None:
        self._uow = uow
        self._dsn = dsn
        self._heartbeat_s = heartbeat_s
        self._capacity = feed_capacity
        self._feeds: dict[str, TenantFeed] = {}
        self._streams: set[_Stream] = set()
        self._closing = False
        metrics.observe_event_streams(lambda: len(self._streams), self.oldest_lag)

    def close(self) -> None:
        """Ends every stream (SHUTTING_DOWN), at once: a server stopping must not wait its
        whole grace period for streams that never end by themselves."""
        self._closing = True
        for feed in self._feeds.values():
            feed.closed = True
            feed.signal()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def oldest_lag(self) -> int:
        """Events the furthest-behind open stream has yet to receive (as far as its
        tenant's feed has read)."""
        lags = [self._feeds[s.tenant_id].head - s.cursor for s in self._streams]
        return max([0, *lags])

    async def page(
        self,
        caller: Caller,
        after: int | None,
        start: Start,
        where: EventFilter,
        limit: int,
    ) -> tuple[list[RecordedEvent], int]:
        """Up to `limit` matching events after the cursor (or from `start`), and the
        cursor to continue from.

        Raises:
            DomainError: CURSOR_EXPIRED; DEADLINE_EXCEEDED, DATABASE_UNAVAILABLE.
        """
        if caller.holder_id is not None:
            where = events_filter(caller.holder_id, where)
        if after is None:
            ends = await self._ends(caller)
            after = ends.head if start is Start.NOW else ends.horizon
        page = await self._read(caller, after, limit, where)
        events = _as_seen_by(caller, page.events)
        metrics.events_delivered.add(len(events), {"rpc": "ListEvents"})
        return events, max(after, page.scanned_through)

    async def watch(
        self, caller: Caller, after: int | None, start: Start, where: EventFilter
    ) -> AsyncIterator[tuple[list[RecordedEvent], int]]:
        """The tenant's events as they commit: (events, cursor) pairs, where the cursor
        covers every matching event sent so far; a pair without events is a heartbeat.

        Raises:
            DomainError: CURSOR_EXPIRED (at the start, or when the consumer fell behind
                the retention); DATABASE_UNAVAILABLE when a read of a stream that is
                behind fails.
        """
        if caller.holder_id is not None:
            where = events_filter(caller.holder_id, where)
        cursor = await self._start(caller, after, start, where)
        stream = _Stream(caller.tenant_id, cursor)
        async with self._feed(caller.tenant_id) as feed:
            self._streams.add(stream)
            try:
                async for events, at in self._follow(caller, feed, stream, where):
                    yield _as_seen_by(caller, events), at
            finally:
                self._streams.discard(stream)

    async def _start(
        self, caller: Caller, after: int | None, start: Start, where: EventFilter
    ) -> int:
        if after is not None:
            await self._read(caller, after, 0, where)  # an expired cursor fails now
            return after
        ends = await self._ends(caller)
        return ends.head if start is Start.NOW else ends.horizon

    async def _follow(
        self, caller: Caller, feed: TenantFeed, stream: _Stream, where: EventFilter
    ) -> AsyncIterator[tuple[list[RecordedEvent], int]]:
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            if feed.closed:
                raise DomainError(
                    Reason.SHUTTING_DOWN,
                    "the server is shutting down; resume after your last cursor",
                    {"cursor": cursor_of(stream.cursor)},
                )
            served = feed.since(stream.cursor, STREAM_PAGE, where)
            if served is None:  # behind what the feed holds: read from the database
                page = await self._read(caller, stream.cursor, STREAM_PAGE, where)
                events, stream.cursor = page.events, page.scanned_through
                if page.head > feed.head:
                    feed.woken.set()  # the feed is behind the database: it reads on
                _delivered(events, live=False)
            else:
                events, stream.cursor = served
                _delivered(events, live=True)
            if events:
                yield events, stream.cursor
                quiet_since = loop.time()
                if served is not None and feed.users > 1:  # live: let the next commits gather
                    await asyncio.sleep(min(feed.users * COALESCE_PER_STREAM_S, MAX_COALESCE_S))
                continue
            # Caught up, and nothing matching: wait for more, or send a heartbeat.
            wait_s = quiet_since + self._heartbeat_s - loop.time()
            if wait_s > 0 and await feed.wait_past(stream.cursor, wait_s):
                continue
            if loop.time() - quiet_since >= self._heartbeat_s:
                yield [], stream.cursor
                quiet_since = loop.time()

    async def _ends(self, caller: Caller) -> EventPage:
        """The tenant's horizon and head, without events."""
        return await self._read(caller, None, 0, EventFilter())

    async def _read(
        self, caller: Caller, after: int | None, limit: int, where: EventFilter
    ) -> EventPage:
        """One page from the database; a cursor (`after`) is checked against the retention
        horizon of the same snapshot."""
        read_caller = Caller(
            caller.tenant_id, asyncio.get_running_loop().time() + READ_TIMEOUT_S, caller.trace_id
        )
        if caller.deadline is not None:
            read_caller = Caller(
                caller.tenant_id, min(caller.deadline, read_caller.deadline or 0), caller.trace_id
            )

        async def work(session: Session) -> EventPage:
            return await session.events.read(after or 0, limit, where)

        page = await self._uow.read(read_caller, work)
        if after is not None and after < page.horizon:
            raise cursor_expired(after, page.horizon)
        if after is not None and after > page.head:
            # Never given by this ledger (another database's, or one restored from a
            # backup older than the consumer): waiting for it would skip what comes first.
            raise InvalidInput(
                [
                    FieldViolation(
                        "after_cursor",
                        FieldReason.OUT_OF_RANGE,
                        f"ahead of the stream (its newest cursor is {page.head})",
                    )
                ]
            )
        return page

    @asynccontextmanager
    async def _feed(self, tenant_id: str) -> AsyncIterator[TenantFeed]:
        """The tenant's feed, started with its first stream and stopped with its last."""
        feed = self._feeds.get(tenant_id)
        if feed is None:
            head = (await self._ends(Caller(tenant_id))).head
            feed = self._feeds.get(tenant_id)  # another stream may have made it meanwhile
            if feed is None:
                feed = TenantFeed(tenant_id, head, self._capacity, closed=self._closing)
                feed.task = asyncio.create_task(self._run_feed(feed), name=f"feed-{tenant_id}")
                self._feeds[tenant_id] = feed
        feed.users += 1
        try:
            yield feed
        finally:
            feed.users -= 1
            if feed.users == 0 and self._feeds.get(tenant_id) is feed:
                del self._feeds[tenant_id]
                if feed.task is not None:
                    feed.task.cancel()

    async def _run_feed(self, feed: TenantFeed) -> None:
        """Reads the tenant's new events whenever woken (or every BACKSTOP_S)."""
        caller = Caller(feed.tenant_id)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.woken.wait(), BACKSTOP_S)
            feed.woken.clear()
            try:
                while True:
                    page = await self._read(caller, feed.head, FEED_PAGE, EventFilter())
                    feed.add(page.events)
                    if not page.full:
                        break
            except DomainError as error:
                if error.reason is Reason.CURSOR_EXPIRED:  # idle past the retention
                    feed.head = feed.floor = error_horizon(error)
                    feed.events.clear()
                    feed.positions.clear()
                    continue
                log.warning("event_feed_read_failed", tenant_id=feed.tenant_id, error=str(error))
                await asyncio.sleep(0.5)
            except StorageError as error:
                log.warning("event_feed_read_failed", tenant_id=feed.tenant_id, error=str(error))
                await asyncio.sleep(0.5)

    def _notified(self, payload: str) -> None:
        tenant_id, _, _position = payload.partition(" ")
        feed = self._feeds.get(tenant_id)
        if feed is not None:
            feed.woken.set()

    async def listen(self, *, check_every_s: float = 5.0) -> None:
        """Wakes the feeds at each commit notification, forever (run it as a task). While
        the connection is down the feeds look every BACKSTOP_S; when it is back they all
        look at once, for whatever was committed meanwhile."""
        if self._dsn is None:
            return
        while True:
            try:
                async with listening(
                    self._dsn,
                    {EVENTS_CHANNEL: self._notified},
                    application_name=LISTENER_APPLICATION_NAME,
                ) as live:
                    for feed in self._feeds.values():
                        feed.woken.set()
                    log.info("event_notices_listening")
                    await live.wait_lost(check_every_s)
                log.warning("event_notices_lost")
            except DatabaseUnavailable:
                pass
            await asyncio.sleep(1.0)


def error_horizon(error: DomainError) -> int:
    return int(error.metadata["oldest_cursor"])


def _delivered(events: list[RecordedEvent], *, live: bool) -> None:
    """Counts events sent on a stream; for a live response (from the feed), how long
    after the transaction of its oldest event it went out. Once per response, not per
    event: a hundred streams of a busy tenant would otherwise spend their CPU on it."""
    if not events:
        return
    metrics.events_delivered.add(len(events), {"rpc": "WatchEvents"})
    if live:
        waited = datetime.now(UTC) - events[0].occurred_at
        metrics.event_delivery_latency.record(waited.total_seconds())


def _as_seen_by(caller: Caller, events: list[RecordedEvent]) -> list[RecordedEvent]:
    """The events as the caller may see them (acting for a holder: domain/holder_scope.py)."""
    holder_id = caller.holder_id
    if holder_id is None:
        return events
    seen = (event_for_holder(event, holder_id) for event in events)
    return [event for event in seen if event is not None]
