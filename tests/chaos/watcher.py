"""The chaos run's event watcher: one tenant's WatchEvents stream, followed through it all.

A process of its own (as the clients are): the harness forks PostgreSQL with a
preexec_fn, and a fork while this process's gRPC streams are busy could crash the child
inside gRPC. It starts from the oldest event and, for each response it processes, appends
the response to its log and saves its cursor, together (a consumer committing events and
cursor at once). Whenever the stream breaks (a server killed, the database restarting, a
replica drained) it waits a moment and reopens the stream after the saved cursor. It also
kills itself at moments drawn from the seed: it cancels its own stream, or throws away a
response it has just received as if it had crashed before processing it, and resumes
from its saved cursor. When told to stop it lists the rest with ListEvents (nothing, if
it had caught up) and writes a summary. The audit (tests/chaos/event_audit.py) then
checks that what it kept is exactly the tenant's events, each once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from moneymovement.v1 import event_pb2 as ev
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import event_service_pb2_grpc as egrpc
from tests.chaos.clients import _reason

# A broken stream is reopened after this long at most (jittered).
RECONNECT_PAUSE_S = 0.3
# The watcher cancels its own stream after a lifetime drawn in this range ...
LIFETIME_S = (0.5, 8.0)
# ... and throws away this share of the responses it receives (a crash before processing).
DROP_SHARE = 0.005
# Codes a stream may end with while servers are killed and the database restarts. Any
# other code is reported by the audit (the watcher still reconnects).
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# The watcher's channel retries a down server at most this often (gRPC's default backoff
# grows to 120 s, longer than a run).
CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# A log record: the stream it came on (0: the final ListEvents), then the response's size.
_HEADER = struct.Struct("<II")


@dataclass(frozen=True)
class WatcherPlan:
    """What the watcher process follows, and where it writes."""

    tenant_id: str
    token: str
    target: str  # host:port, or ipv4:host:port,host:port,... for several replicas
    seed: str
    log_path: str  # every processed response, in order
    summary_path: str  # written last: streams, endings, anomalies


@dataclass
class Received:
    """One response the watcher processed: its cursor and how many events it carried."""

    cursor: str
    events: int
    stream: int  # which stream it came on; 0: a page of the final ListEvents


@dataclass
class WatchLog:
    """What the watcher kept, as the audit reads it back."""

    events: list[ev.Event] = field(default_factory=list)
    responses: list[Received] = field(default_factory=list)
    streams: int = 0
    # Why streams ended: gRPC codes (with reasons), "self-restart", "dropped response".
    endings: Counter[str] = field(default_factory=Counter)
    # What the audit reports: unexpected codes, streams that ended without an error.
    anomalies: list[str] = field(default_factory=list)
    listed: int = 0  # events the final ListEvents found
    finished: bool = False  # the summary was written: the watcher ended as told

    @classmethod
    def load(cls, plan: WatcherPlan) -> WatchLog:
        log = cls()
        data = Path(plan.log_path).read_bytes() if Path(plan.log_path).exists() else b""
        offset = 0
        while offset + _HEADER.size <= len(data):
            stream, size = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            response = epb.WatchEventsResponse.FromString(data[offset : offset + size])
            offset += size
            log.events.extend(response.events)
            log.responses.append(Received(response.cursor, len(response.events), stream))
        summary_path = Path(plan.summary_path)
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            log.streams = summary["streams"]
            log.endings = Counter(summary["endings"])
            log.anomalies = summary["anomalies"]
            log.listed = summary["listed"]
            log.finished = True
        return log


def run_watcher(
    plan: WatcherPlan,
    stop: StopEvent,
    position: Synchronized[int],
    heartbeats: Synchronized[int],
) -> None:
    """Process entry point (multiprocessing, spawn). `position` is the saved cursor's
    position, `heartbeats` counts live responses without events; both for the harness."""
    watcher = _EventWatcher(plan, position, heartbeats)
    asyncio.run(watcher.run(stop))
    watcher.sum_up()


class _EventWatcher:
    def __init__(
        self, plan: WatcherPlan, position: Synchronized[int], heartbeats: Synchronized[int]
    ) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.md = (("authorization", f"Bearer {plan.token}"),)
        self.position, self.heartbeats = position, heartbeats
        self.cursor = ""  # of the last response fully processed; "" before the first
        self.streams = 0
        self.endings: Counter[str] = Counter()
        self.anomalies: list[str] = []
        self.listed = 0
        self.log: BinaryIO = Path(plan.log_path).open("ab")  # noqa: SIM115

    def _channel(self) -> grpc.aio.Channel:
        options = list(CHANNEL_OPTIONS)
        if "," in self.plan.target:  # several replicas: round robin, as the clients
            options.append(("grpc.lb_policy_name", "round_robin"))
        return grpc.aio.insecure_channel(self.plan.target, options=options)

    async def run(self, stop: StopEvent) -> None:
        """Follows the stream until `stop` is set, then lists the rest and sums up."""
        stopping = asyncio.create_task(_wait_set(stop))
        try:
            async with self._channel() as channel:
                stub = egrpc.EventServiceStub(channel)
                while not stopping.done():
                    await self._one_stream(stub, stopping)
            await self._drain()
        finally:
            stopping.cancel()
            self.log.close()

    def sum_up(self) -> None:
        """Writes the summary: the sign that the watcher ended as told."""
        Path(self.plan.summary_path).write_text(
            json.dumps(
                {
                    "streams": self.streams,
                    "endings": dict(self.endings),
                    "anomalies": self.anomalies,
                    "listed": self.listed,
                }
            )
        )

    async def _one_stream(
        self, stub: egrpc.EventServiceAsyncStub, stopping: asyncio.Task[None]
    ) -> None:
        """One stream, until it breaks, the watcher kills it, or the run stops."""
        self.streams += 1
        session = asyncio.create_task(self._session(stub, self.streams))
        lifetime = self.rng.uniform(*LIFETIME_S)
        waiting: set[asyncio.Task[Any]] = {session, stopping}
        done, _ = await asyncio.wait(waiting, timeout=lifetime, return_when=asyncio.FIRST_COMPLETED)
        if session not in done:
            session.cancel()  # cancels the call; whatever it had not processed is lost
            with contextlib.suppress(asyncio.CancelledError):
                await session
            if not stopping.done():
                self.endings["self-restart"] += 1
            return
        error = session.exception()
        if isinstance(error, _Dropped):
            self.endings["dropped response"] += 1
        elif isinstance(error, grpc.aio.AioRpcError):
            code = error.code()
            self.endings[f"{code.name} {_reason(error)}".strip()] += 1
            if code not in TRANSIENT:
                self.anomalies.append(
                    f"stream {self.streams} ended {code.name}: {error.details()} "
                    f"(after cursor {self.cursor!r})"
                )
        elif error is not None:
            raise error
        else:
            self.endings["ended OK"] += 1
            self.anomalies.append(f"stream {self.streams} ended without an error")
        await asyncio.sleep(RECONNECT_PAUSE_S * self.rng.random())

    async def _session(self, stub: egrpc.EventServiceAsyncStub, stream: int) -> None:
        if self.cursor:
            request = epb.WatchEventsRequest(after_cursor=self.cursor)
        else:
            request = epb.WatchEventsRequest(start=epb.EVENT_START_OLDEST)
        call = stub.WatchEvents(request, metadata=self.md)
        try:
            async for response in call:
                if self.rng.random() < DROP_SHARE:
                    raise _Dropped
                self._processed(response, stream)
        finally:
            call.cancel()

    def _processed(self, response: epb.WatchEventsResponse, stream: int) -> None:
        """Keeps a response's events and saves its cursor, together. Synchronous: a
        cancellation lands before or after it, never inside it."""
        data = response.SerializeToString()
        self.log.write(_HEADER.pack(stream, len(data)) + data)
        self.log.flush()
        self.cursor = response.cursor
        self.position.value = int(response.cursor)
        if stream and not response.events:
            with self.heartbeats.get_lock():
                self.heartbeats.value += 1

    async def _drain(self) -> None:
        """After the stream: ListEvents from the saved cursor to the end, keeping what it
        finds (nothing, if the stream had caught up)."""
        async with self._channel() as channel:
            stub = egrpc.EventServiceStub(channel)
            while True:
                if self.cursor:
                    request = epb.ListEventsRequest(after_cursor=self.cursor, page_size=1000)
                else:
                    request = epb.ListEventsRequest(start=epb.EVENT_START_OLDEST, page_size=1000)
                page = await stub.ListEvents(request, metadata=self.md, timeout=30)
                self.listed += len(page.events)
                self._processed(
                    epb.WatchEventsResponse(events=page.events, cursor=page.next_cursor), 0
                )
                if not page.events:
                    return


class _Dropped(Exception):
    """The watcher 'crashed' right after receiving a response, before processing it."""


async def _wait_set(event: StopEvent) -> None:
    # In short waits: a cancelled task must not leave a thread blocked for long.
    while not await asyncio.to_thread(event.wait, 0.2):
        pass
