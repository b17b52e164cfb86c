"""The load generator: client processes with gRPC channels, closed or open loop.

Python gRPC clients are CPU-bound, so the load comes from separate processes (spawned,
not forked: forking after gRPC is initialised can deadlock), each with one channel and
its share of the concurrency. The processes start and connect once per run (ClientPool)
and then take one point after another; each point has one start time for all of them,
so every process warms up and measures over the same wall-clock window.

Closed loop: `concurrency` workers each send the next operation when the last returns.
Open loop: operations start on a Poisson schedule at `rate` per second whatever the
replies, and latency counts from the scheduled start (no coordinated omission).
Only operations that *complete* inside the window are counted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.stats import Sample, summarise
from bench.workloads import OPERATIONS, Caller, OperationFailed

_READY_TIMEOUT_S = 60.0
_MAX_IN_FLIGHT = 4096  # open loop: beyond this the generator, not the server, is the limit
_DRAIN_S = 15.0  # how long operations in flight at the end may still take


@dataclass(frozen=True)
class LoadSpec:
    """One measured point of load."""

    workload: str
    concurrency: int  # closed loop: workers; open loop: 0
    rate_per_s: float  # open loop: operations started per second; closed loop: 0
    warmup_s: float
    measure_s: float
    # Record, per transfer, when its answer arrived (uniform and hot: the event delivery
    # points, bench/watchers.py).
    record_answers: bool = False


@dataclass(frozen=True)
class _Connection:
    target: str
    token: str
    accounts: int
    hot: int
    seed: int


@dataclass(frozen=True)
class _Job:
    spec: LoadSpec
    workers: int
    rate_per_s: float
    start_at: float  # wall clock: when the warm-up begins


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    shed: int = 0  # open loop: arrivals not sent, too many in flight


def processes_for(spec: LoadSpec) -> int:
    """One client process for a single worker, else two (one per core here)."""
    return 1 if spec.concurrency == 1 else 2


class ClientPool:
    """Client processes started (and connected) once, reused for every point of a run.

    Args:
        target: the server's host:port.
        token: the tenant's bearer token.
        accounts: how many numbered accounts the tenant has.
        hot: the number of the hot account.
        processes: how many client processes at most.
    """

    def __init__(self, target: str, token: str, accounts: int, hot: int, processes: int = 2):
        self._context = multiprocessing.get_context("spawn")
        self._results: Any = self._context.Queue()
        self._inboxes: list[Any] = [self._context.Queue() for _ in range(processes)]
        self._processes = [
            self._context.Process(
                target=_client_process,
                args=(_Connection(target, token, accounts, hot, seed), inbox, self._results),
            )
            for seed, inbox in enumerate(self._inboxes)
        ]

    def __enter__(self) -> ClientPool:
        for process in self._processes:
            process.start()
        for _ in self._processes:
            message = self._results.get(timeout=_READY_TIMEOUT_S)
            if message != "ready":
                self.__exit__(None, None, None)
                raise RuntimeError(f"a client process could not start: {message}")
        return self

    def __exit__(self, *_: object) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()

    def run(
        self, spec: LoadSpec, on_window: Any = None, answers: dict[str, float] | None = None
    ) -> tuple[Sample, int]:
        """Runs one point; returns the sample and the client resends in the window.

        `on_window(measure_from, stop_at)` is called in this process once the window is
        set (the caller samples the server at its edges). With `spec.record_answers`,
        `answers` gets the wall time each transfer's answer arrived in the window, by
        transfer id.
        """
        count = min(processes_for(spec), len(self._processes))
        shares = [spec.concurrency // count + (i < spec.concurrency % count) for i in range(count)]
        # Every process warms up and measures over the same wall-clock window.
        start_at = time.time() + 0.3
        for i in range(count):
            self._inboxes[i].put(_Job(spec, shares[i], spec.rate_per_s / count, start_at))
        measure_from = start_at + spec.warmup_s
        if on_window is not None:
            on_window(measure_from, measure_from + spec.measure_s)
        timeout = spec.warmup_s + spec.measure_s + _DRAIN_S + 60
        outcomes = [self._results.get(timeout=timeout) for _ in range(count)]
        errors = [o for o in outcomes if isinstance(o, str)]
        if errors:
            raise RuntimeError(f"a client process failed: {errors[0]}")
        tally = _Tally()
        resends = 0
        for latencies, failures, shed, process_resends, answered in outcomes:
            if answers is not None:
                answers.update(answered)
            tally.latencies += latencies
            for code, n in failures.items():
                tally.failures[code] = tally.failures.get(code, 0) + n
            tally.shed += shed
            resends += process_resends
        if tally.shed:
            tally.failures["CLIENT_SHED"] = tally.shed
        return summarise(tally.latencies, spec.measure_s, tally.failures), resends


def _client_process(connection: _Connection, inbox: Any, results: Any) -> None:
    try:
        asyncio.run(_serve_jobs(connection, inbox, results))
    except BaseException as error:  # reported to the parent, which raises it
        results.put(repr(error))


async def _serve_jobs(connection: _Connection, inbox: Any, results: Any) -> None:
    loop = asyncio.get_running_loop()
    async with grpc.aio.insecure_channel(connection.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), _READY_TIMEOUT_S)
        results.put("ready")
        rng = random.Random(connection.seed)
        while (job := await loop.run_in_executor(None, inbox.get)) is not None:
            caller = Caller(channel, connection.token, connection.accounts, connection.hot, rng)
            try:
                results.put(await _run_job(caller, job))
            except Exception as error:  # this point fails; the next may work
                results.put(repr(error))


async def _run_job(caller: Caller, job: _Job) -> tuple[Any, ...]:
    measure_from = job.start_at + job.spec.warmup_s
    stop_at = measure_from + job.spec.measure_s
    await asyncio.sleep(max(0.0, job.start_at - time.time()))
    tally = _Tally()
    caller.answered = {} if job.spec.record_answers else None
    window = asyncio.create_task(_count_resends_in_window(caller, measure_from, stop_at))
    if job.rate_per_s > 0:
        await _open_loop(caller, job, tally, measure_from, stop_at)
    else:
        await _closed_loop(caller, job, tally, measure_from, stop_at)
    window.cancel()
    answered = {
        transfer_id: at
        for transfer_id, at in (caller.answered or {}).items()
        if measure_from <= at < stop_at
    }
    return tally.latencies, tally.failures, tally.shed, caller.resends, answered


async def _count_resends_in_window(caller: Caller, measure_from: float, stop_at: float) -> None:
    await asyncio.sleep(max(0.0, measure_from - time.time()))
    caller.counting = True
    await asyncio.sleep(max(0.0, stop_at - time.time()))
    caller.counting = False


async def _one(
    caller: Caller,
    workload: str,
    started: float,
    tally: _Tally,
    measure_from: float,
    stop_at: float,
) -> None:
    """One operation; recorded if it completes inside the window."""
    code = None
    try:
        await OPERATIONS[workload](caller)
    except OperationFailed as failure:
        code = failure.code.name
    done = time.time()
    if not measure_from <= done < stop_at:
        return
    if code is None:
        tally.latencies.append(done - started)
    else:
        tally.failures[code] = tally.failures.get(code, 0) + 1


async def _closed_loop(
    caller: Caller, job: _Job, tally: _Tally, measure_from: float, stop_at: float
) -> None:
    async def worker() -> None:
        while (started := time.time()) < stop_at:
            await _one(caller, job.spec.workload, started, tally, measure_from, stop_at)

    await asyncio.gather(*(worker() for _ in range(job.workers)))


async def _open_loop(
    caller: Caller, job: _Job, tally: _Tally, measure_from: float, stop_at: float
) -> None:
    in_flight: set[asyncio.Task[None]] = set()
    scheduled = time.time()
    while scheduled < stop_at:
        scheduled += caller.rng.expovariate(job.rate_per_s)
        await asyncio.sleep(max(0.0, scheduled - time.time()))
        if len(in_flight) >= _MAX_IN_FLIGHT:
            tally.shed += measure_from <= scheduled < stop_at
            continue
        task = asyncio.create_task(
            _one(caller, job.spec.workload, scheduled, tally, measure_from, stop_at)
        )
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=_DRAIN_S)
