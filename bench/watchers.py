"""Event delivery, measured from outside the server: WatchEvents streams kept open on the
bench tenant while the load generator moves money.

A watcher process (spawned, like the client processes) opens `streams` WatchEvents
streams from now (EVENT_START_NOW, no filter), each on a connection of its own, as that
many consumers would. The parent waits until the server counts them all open
(`moneymovement_events_streams`), then runs the load point with the load generator
recording, for each CreateTransfer answered in the window, the wall time its OK answer
arrived (by transfer id). Each stream records the wall time each transfer's
TRANSFER_CREATED event arrived. One stream (the first) decodes every response as a
consumer would and also keeps each event's `occurred_at`; the others only find the
transfer ids in the response's bytes (so a hundred streams cost the watcher process
little CPU beside the server's). After the window the streams keep receiving until each
has every answered transfer's event, or for at most DRAIN_S.

Per (stream, event of a transfer answered in the window), two figures, all on the one
machine's wall clock:

- **after the answer**: event arrival - answer arrival. The answer comes after the commit,
  so this is a lower bound of commit-to-delivery (it is negative when the event arrived
  before the caller's own answer).
- **since the transaction**: event arrival - Event.occurred_at, the transaction's time
  (PostgreSQL's now(), taken when the batch's transaction began, before its locks, write
  and commit), so an upper bound of commit-to-delivery.

The true commit-to-delivery latency lies between the two. With several streams also
"every watcher": per event, the last stream's arrival - occurred_at.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time
import urllib.error
from dataclasses import dataclass, replace
from typing import Any

import grpc

from bench.loadgen import ClientPool, LoadSpec
from bench.points import Point, measure_service
from bench.server import Server, scrape
from moneymovement.v1 import event_pb2
from moneymovement.v1 import event_service_pb2 as epb

METHOD = "/moneymovement.v1.EventService/WatchEvents"
DRAIN_S = 10.0  # after the window: how long the window's events may still take
_OPEN_TIMEOUT_S = 60.0
_STREAMS_GAUGE = "moneymovement_events_streams"
# A transfer id in a response's bytes (domain/ids.py: prefix, underscore, 26 base32).
_TRANSFER_ID = re.compile(rb"tr_[a-z2-7]{26}")
_CREATED = event_pb2.EVENT_TYPE_TRANSFER_CREATED


@dataclass(frozen=True)
class _Job:
    target: str
    token: str
    streams: int


class Watchers:
    """A watcher process holding `streams` WatchEvents streams, for one point.

    Use: `with Watchers(...) as w:` (the streams are being opened), `w.window(from,
    stop)` once the load's window is set, then `w.result(answers)`.
    """

    def __init__(self, target: str, token: str, streams: int):
        context = multiprocessing.get_context("spawn")
        self._inbox: Any = context.Queue()
        self._results: Any = context.Queue()
        self._process = context.Process(
            target=_watcher_process,
            args=(_Job(target, token, streams), self._inbox, self._results),
        )

    def __enter__(self) -> Watchers:
        self._process.start()
        message = self._results.get(timeout=_OPEN_TIMEOUT_S)
        if message != "opening":
            self.__exit__()
            raise RuntimeError(f"the watcher process could not start: {message}")
        return self

    def __exit__(self, *_: object) -> None:
        self._inbox.put(None)
        self._process.join(timeout=DRAIN_S + 20)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def window(self, measure_from: float, stop_at: float) -> None:
        """Tells the watcher the load's window."""
        self._inbox.put((measure_from, stop_at))

    def result(self, answers: dict[str, float]) -> dict[str, Any]:
        """What the streams received of the transfers answered in the window
        (`answers`: transfer id -> wall time of the answer); see Delivery in the
        module's docstring, and `_summary` for the keys."""
        self._inbox.put(answers)
        outcome = self._results.get(timeout=DRAIN_S + 60)
        if isinstance(outcome, str):
            raise RuntimeError(f"the watcher process failed: {outcome}")
        result: dict[str, Any] = outcome
        return result


def open_streams(server: Server) -> int:
    """The server's count of open WatchEvents streams."""
    return round(scrape(server.metrics_url).get(_STREAMS_GAUGE, 0.0))


def wait_streams(server: Server, ready: Any, timeout_s: float = _OPEN_TIMEOUT_S) -> int:
    """Waits until `ready(open streams)` holds; returns the last count.

    Raises:
        RuntimeError: it did not within `timeout_s`.
    """
    deadline = time.time() + timeout_s
    while True:
        try:
            count = open_streams(server)
        except (OSError, urllib.error.URLError):
            count = -1
        if ready(count):
            return count
        if time.time() > deadline:
            raise RuntimeError(f"the server counts {count} open event streams after {timeout_s} s")
        time.sleep(0.2)


def measure_watched(
    server: Server,
    clients: ClientPool,
    spec: LoadSpec,
    postmaster_pid: int | None,
    token: str,
    streams: int,
) -> Point:
    """The service point `spec` with `streams` WatchEvents streams open on the tenant;
    the point's `delivery` says what they received, and when."""
    point = Point("service", spec.workload, spec.concurrency, spec.rate_per_s, watchers=streams)
    point.delivery = {}
    try:
        wait_streams(server, lambda n: n == 0)  # the last point's streams are gone
        with Watchers(server.target, token, streams) as watchers:
            wait_streams(server, lambda n: n >= streams)
            answers: dict[str, float] = {}
            measure_service(
                server,
                clients,
                replace(spec, record_answers=True),
                postmaster_pid,
                point=point,
                answers=answers,
                on_window=watchers.window,
            )
            if point.error:
                return point
            point.delivery.update(watchers.result(answers))
    except Exception as error:  # the point fails, the run goes on
        point.error = f"{type(error).__name__}: {error}"
    return point


def _watcher_process(job: _Job, inbox: Any, results: Any) -> None:
    try:
        asyncio.run(_watch(job, inbox, results))
    except BaseException as error:  # reported to the parent, which raises it
        results.put(repr(error))


@dataclass
class _Received:
    """What the streams received: per stream, each transfer's first arrival (wall time)
    by id; from the decoding stream, each transfer event's occurred_at."""

    arrivals: list[dict[bytes, float]]
    occurred: dict[bytes, float]
    errors: list[str]


async def _follow(index: int, channel: grpc.aio.Channel, token: str, got: _Received) -> None:
    """One stream, until cancelled. Stream 0 decodes every response; the others find the
    transfer ids in the bytes."""
    decode = index == 0
    watch: Any = channel.unary_stream(
        METHOD,
        request_serializer=epb.WatchEventsRequest.SerializeToString,
        response_deserializer=None,  # bytes
    )
    request = epb.WatchEventsRequest(start=epb.EVENT_START_NOW)
    call: Any = watch(request, metadata=(("authorization", f"Bearer {token}"),))
    seen = got.arrivals[index]
    try:
        async for raw in call:
            now = time.time()
            if decode:
                for event in epb.WatchEventsResponse.FromString(raw).events:
                    if event.type == _CREATED:
                        key = event.transfer.id.encode()
                        seen.setdefault(key, now)
                        at = event.occurred_at
                        got.occurred[key] = at.seconds + at.nanos / 1e9
            else:
                for key in _TRANSFER_ID.findall(raw):
                    seen.setdefault(key, now)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            got.errors.append(f"stream {index}: {error.code().name}: {error.details()}")


async def _watch(job: _Job, inbox: Any, results: Any) -> None:
    loop = asyncio.get_running_loop()
    # A connection per stream, as that many consumers would have (channels with the same
    # target would otherwise share one).
    channels = [
        grpc.aio.insecure_channel(job.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(job.streams)
    ]
    got = _Received([{} for _ in range(job.streams)], {}, [])
    tasks = [
        asyncio.create_task(_follow(i, channel, job.token, got))
        for i, channel in enumerate(channels)
    ]
    results.put("opening")
    try:
        window = await loop.run_in_executor(None, inbox.get)
        if window is None:
            return
        _, stop_at = window
        answers = await loop.run_in_executor(None, inbox.get)
        if answers is None:
            return
        expected = {key.encode(): at for key, at in answers.items()}
        # The window's events may still be on their way: wait until every stream has
        # them all, or DRAIN_S after the window.
        waiting = list(range(job.streams))
        while waiting and time.time() < stop_at + DRAIN_S and not got.errors:
            waiting = [i for i in waiting if not expected.keys() <= got.arrivals[i].keys()]
            await asyncio.sleep(0.2)
        results.put(_summary(got, expected, job.streams, len(waiting)))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


def distribution_ms(values_s: list[float]) -> dict[str, float] | None:
    """count, min, p50, p95, p99, max and mean of `values_s`, in milliseconds (nearest
    rank); None when empty."""
    if not values_s:
        return None
    ordered = sorted(values_s)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "count": len(ordered),
        "min": ordered[0] * 1000,
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1] * 1000,
        "mean": sum(ordered) / len(ordered) * 1000,
    }


def _summary(
    got: _Received, expected: dict[bytes, float], streams: int, incomplete: int
) -> dict[str, Any]:
    after: list[float] = []  # event arrival - answer arrival, every stream
    since: list[float] = []  # event arrival - occurred_at, every stream
    last: list[float] = []  # per event, the last stream's arrival - occurred_at
    missing = 0
    for key, answered_at in expected.items():
        occurred = got.occurred.get(key)
        latest = None
        for arrivals in got.arrivals:
            at = arrivals.get(key)
            if at is None:
                missing += 1
                continue
            after.append(at - answered_at)
            if occurred is not None:
                since.append(at - occurred)
            latest = at if latest is None else max(latest, at)
        if latest is not None and occurred is not None:
            last.append(latest - occurred)
    return {
        "streams": streams,
        "answered": len(expected),
        "expected": len(expected) * streams,
        "received": len(after),
        "missing": missing,
        "incomplete_streams": incomplete,
        "stream_errors": got.errors[:5],
        "negative_after_answer": sum(1 for value in after if value < 0),
        "after_answer_ms": distribution_ms(after),
        "since_transaction_ms": distribution_ms(since),
        "every_watcher_since_transaction_ms": distribution_ms(last) if streams > 1 else None,
    }
