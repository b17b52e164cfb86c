"""make soak: the mixed load at half the measured capacity for a long time, watched.

    python -m bench.soak [--duration 1800] [--window 5] [--fraction 0.5] [--rate OPS]
                         [--server-env KEY=VALUE ...]

A fresh embedded PostgreSQL of its own (or DATABASE_URL), migrated and seeded as for
make bench (10,000 accounts, UNLIMITED overdraft, so nothing is refused for funds), and the
real server as its own process. First the capacity: the mix in closed loop, 16 clients,
40 s of warm-up then 10 s measured. Then the soak: the mix in open loop (Poisson arrivals,
latency from the scheduled start) at half that rate for the duration. At the end of every
window the watcher records the server's resident memory and CPU, the database pool gauges
and transaction retries (its Prometheus metrics), and from the clients what completed in
the window: throughput, p50/p99 latency, failures, shed arrivals and resends.

Afterwards every transfer a client saw acknowledged is looked up through ListTransfers
(present, and POSTED unless it was a hold whose capture was not acknowledged), and
`verify` checks the ledger. Writes bench/results/soak.{json,md,png} and prints the summary.
The exit status is 1 if a request failed (after its resends), an arrival was shed, an
acknowledged transfer is missing or in the wrong state, or verify finds a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench import soak_chart
from bench.database import HOT_ACCOUNT, BenchTenant, prepare
from bench.progress import Status, bar, clock
from bench.server import Server, cpu_seconds, running_server, scrape
from bench.soak_chart import WindowRow
from bench.stats import percentiles_ms
from bench.workloads import OPERATIONS, UNITS, Caller, OperationFailed
from moneymovement.client import wait_until_serving
from moneymovement.devdb import EmbeddedPostgres
from moneymovement.storage.verify import verify_ledger
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc
from moneymovement.v1 import transfer_pb2

RESULTS = Path(__file__).resolve().parent / "results"
DATA_DIR = Path(__file__).resolve().parent.parent / ".data" / "soak-pg"  # not make bench's
ACCOUNTS = 10_000
# The fixed mix: how many of every 1,000 operations are of each workload (bench/workloads.py).
# A batch is 100 transfers, so its 5 in 1,000 carry about 40 % of the transfers moved.
MIX: dict[str, int] = {"uniform": 500, "hot": 200, "hold_capture": 100, "reads": 195, "batch": 5}
PROCESSES = 2  # client processes, one per core here (Python gRPC clients are CPU-bound)
_READY_TIMEOUT_S = 60.0
_MAX_IN_FLIGHT = 4096  # open loop: beyond this the server has stalled; arrivals are shed
_DRAIN_S = 70.0  # longer than an operation's five sends of 10 s each with their backoff
_LIST_PAGE_SIZE = 500
# On an empty ledger the first ~7,000 transfers (~40 s of the mix here) ran with hundreds
# of transaction retries a second and a p99 of seconds; a capacity measured then is the
# empty ledger's, not the soak's. The warm-up outlasts it.
_CAPACITY_WARMUP_S = 40.0
_PENDING, _POSTED = transfer_pb2.Transfer.STATE_PENDING, transfer_pb2.Transfer.STATE_POSTED


@dataclass(frozen=True)
class _Connection:
    target: str
    token: str
    seed: int


@dataclass(frozen=True)
class _Job:
    workers: int  # closed loop: this process's workers; open loop: 0
    rate_per_s: float  # open loop: this process's share of the rate; closed loop: 0
    edges: tuple[float, ...]  # wall-clock ends of the windows; the load stops at the last


@dataclass
class _Window:
    """What one client process saw complete in one window."""

    latencies_s: list[float] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)  # by workload
    failures: dict[str, int] = field(default_factory=dict)  # "workload:CODE" after resends
    shed: int = 0
    resends: int = 0
    acked: list[tuple[str, int]] = field(default_factory=list)  # (transfer id, state)


@dataclass
class _RecordingCaller(Caller):
    """A Caller that keeps every transfer the server acknowledged, with its state."""

    acked: list[tuple[str, int]] = field(default_factory=list)

    async def call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        reply = await super().call(method, request)
        if isinstance(reply, mpb.CreateTransfersResponse):
            self.acked += [(t.id, t.state) for t in reply.transfers]
        elif isinstance(reply, mpb.CreateTransferResponse | mpb.PostTransferResponse):
            self.acked.append((reply.transfer.id, reply.transfer.state))
        return reply


class _Windows:
    """The window being filled; `close` hands it over and starts the next."""

    def __init__(self, caller: _RecordingCaller) -> None:
        self.caller = caller
        self.current = _Window()
        self._resends = 0

    def close(self) -> _Window:
        window, self.current = self.current, _Window()
        window.resends, self._resends = self.caller.resends - self._resends, self.caller.resends
        window.acked, self.caller.acked = self.caller.acked, []
        return window

    async def one(self, workload: str, started: float) -> None:
        """One operation, counted in the window it completes in."""
        try:
            await OPERATIONS[workload](self.caller)
        except OperationFailed as failure:
            key = f"{workload}:{failure.code.name}"
            self.current.failures[key] = self.current.failures.get(key, 0) + 1
            return
        self.current.latencies_s.append(time.time() - started)
        self.current.ops[workload] = self.current.ops.get(workload, 0) + 1


def _client_process(connection: _Connection, inbox: Any, results: Any) -> None:
    try:
        asyncio.run(_serve_jobs(connection, inbox, results))
    except BaseException as error:  # reported to the parent, which raises it
        results.put(("error", connection.seed, repr(error)))


async def _serve_jobs(connection: _Connection, inbox: Any, results: Any) -> None:
    loop = asyncio.get_running_loop()
    async with grpc.aio.insecure_channel(connection.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), _READY_TIMEOUT_S)
        results.put(("ready", connection.seed, None))
        rng = random.Random(connection.seed)
        while (job := await loop.run_in_executor(None, inbox.get)) is not None:
            caller = _RecordingCaller(
                channel, connection.token, ACCOUNTS, HOT_ACCOUNT, rng, counting=True
            )
            windows = _Windows(caller)
            reporter = asyncio.create_task(_report_windows(job, windows, connection.seed, results))
            if job.rate_per_s > 0:
                await _open_loop(job, windows)
            else:
                await _closed_loop(job, windows)
            await reporter
            # What completed after the last edge (operations in flight when the load stopped).
            results.put(("window", connection.seed, (len(job.edges), windows.close())))


async def _report_windows(job: _Job, windows: _Windows, seed: int, results: Any) -> None:
    for index, edge in enumerate(job.edges):
        await asyncio.sleep(max(0.0, edge - time.time()))
        results.put(("window", seed, (index, windows.close())))


def _pick(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


async def _closed_loop(job: _Job, windows: _Windows) -> None:
    rng = windows.caller.rng

    async def worker() -> None:
        while (started := time.time()) < job.edges[-1]:
            await windows.one(_pick(rng), started)

    await asyncio.gather(*(worker() for _ in range(job.workers)))


async def _open_loop(job: _Job, windows: _Windows) -> None:
    rng = windows.caller.rng
    in_flight: set[asyncio.Task[None]] = set()
    scheduled = time.time()
    while (scheduled := scheduled + rng.expovariate(job.rate_per_s)) < job.edges[-1]:
        await asyncio.sleep(max(0.0, scheduled - time.time()))
        if len(in_flight) >= _MAX_IN_FLIGHT:
            windows.current.shed += 1
            continue
        task = asyncio.create_task(windows.one(_pick(rng), scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        _, unfinished = await asyncio.wait(in_flight, timeout=_DRAIN_S)
        for task in unfinished:
            task.cancel()
        if unfinished:
            windows.current.failures["UNFINISHED"] = len(unfinished)


class _Clients:
    """The client processes: spawned, not forked (forking after gRPC starts can deadlock)."""

    def __init__(self, target: str, token: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._results: Any = context.Queue()
        self._inboxes: list[Any] = [context.Queue() for _ in range(PROCESSES)]
        self._processes = [
            context.Process(
                target=_client_process,
                args=(_Connection(target, token, seed), inbox, self._results),
            )
            for seed, inbox in enumerate(self._inboxes)
        ]
        self._arrived: dict[int, list[_Window]] = {}

    def __enter__(self) -> _Clients:
        for process in self._processes:
            process.start()
        try:
            for _ in self._processes:
                self._take(_READY_TIMEOUT_S)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()

    def start(self, workers: int, rate_per_s: float, edges: tuple[float, ...]) -> None:
        """Gives every process its share of the workers (closed loop) or rate (open)."""
        count = len(self._processes)
        for i, inbox in enumerate(self._inboxes):
            inbox.put(_Job(workers // count + (i < workers % count), rate_per_s / count, edges))

    def collect(self, index: int, timeout_s: float) -> _Window:
        """Every process's window `index`, merged; waits for them."""
        deadline = time.time() + timeout_s
        while len(self._arrived.get(index, [])) < len(self._processes):
            self._take(max(0.1, deadline - time.time()))
        return _merge(self._arrived.pop(index))

    def _take(self, timeout_s: float) -> None:
        kind, seed, payload = self._results.get(timeout=timeout_s)
        if kind == "error":
            raise RuntimeError(f"client process {seed} failed: {payload}")
        if kind == "window":
            index, window = payload
            self._arrived.setdefault(index, []).append(window)


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def _merge(windows: list[_Window]) -> _Window:
    merged = _Window()
    for window in windows:
        merged.latencies_s += window.latencies_s
        _add(merged.ops, window.ops)
        _add(merged.failures, window.failures)
        merged.shed += window.shed
        merged.resends += window.resends
        merged.acked += window.acked
    return merged


@dataclass
class _Totals:
    """Everything the clients saw over a phase, and every transfer acknowledged."""

    ops: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    shed: int = 0
    resends: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # transfer id -> state acknowledged

    def add(self, window: _Window) -> None:
        _add(self.ops, window.ops)
        _add(self.failures, window.failures)
        self.shed += window.shed
        self.resends += window.resends
        for transfer_id, state in window.acked:
            # A captured hold was acknowledged PENDING, then POSTED: POSTED stands.
            if state == _POSTED or transfer_id not in self.acked:
                self.acked[transfer_id] = state


@dataclass(frozen=True)
class _ServerState:
    at: float
    rss_mb: float | None
    cpu_s: float | None
    metrics: dict[str, float]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


def _server_state(server: Server) -> _ServerState:
    """The server now; None (or no metrics) where it could not be read: it may have died."""
    rss_mb: float | None
    cpu_s: float | None
    try:
        rss_mb, cpu_s = _rss_mb(server.pid), cpu_seconds(server.pid)
    except OSError:
        rss_mb = cpu_s = None
    try:
        metrics = scrape(server.metrics_url)
    except OSError:
        metrics = {}
    return _ServerState(time.time(), rss_mb, cpu_s, metrics)


def _delta(name: str, before: _ServerState, after: _ServerState) -> float | None:
    """A counter's increase; a counter never incremented is not exported at all (0)."""
    if not after.metrics:
        return None  # the scrape failed
    return after.metrics.get(name, 0.0) - before.metrics.get(name, 0.0)


def _row(
    t_s: float, window_s: float, window: _Window, before: _ServerState, after: _ServerState
) -> WindowRow:
    latency = percentiles_ms(window.latencies_s) if window.latencies_s else {}
    cpu_pct = None
    if before.cpu_s is not None and after.cpu_s is not None:
        cpu_pct = (after.cpu_s - before.cpu_s) / (after.at - before.at) * 100
    gauges = after.metrics
    return WindowRow(
        t_s=round(t_s, 1),
        ops_per_s=sum(window.ops.values()) / window_s,
        transfers_per_s=sum(UNITS[w][2] * n for w, n in window.ops.items()) / window_s,
        p50_ms=latency.get("p50"),
        p99_ms=latency.get("p99"),
        rss_mb=after.rss_mb,
        server_cpu_pct=cpu_pct,
        pool_in_use=gauges.get("moneymovement_db_pool_in_use"),
        pool_size=gauges.get("moneymovement_db_pool_size"),
        pool_waiting=gauges.get("moneymovement_db_pool_waiting"),
        tx_retries=_delta("moneymovement_tx_retries_total", before, after),
        tx_aborts=_delta("moneymovement_tx_aborts_total", before, after),
        failed=sum(window.failures.values()),
        shed=window.shed,
        resends=window.resends,
        failures=window.failures,
    )


def _measure_capacity(
    clients: _Clients, workers: int, warmup_s: float, measure_s: float, totals: _Totals
) -> dict[str, Any]:
    """The mix in closed loop: operations per second over the measured window."""
    start = time.time() + 0.3
    edges = (start + warmup_s, start + warmup_s + measure_s)
    clients.start(workers, 0.0, edges)
    windows = [clients.collect(i, warmup_s + measure_s + _DRAIN_S + 60) for i in range(3)]
    for window in windows:
        totals.add(window)
    measured = windows[1]
    return {
        "clients": workers,
        "warmup_s": warmup_s,
        "measure_s": measure_s,
        "ops_per_s": sum(measured.ops.values()) / measure_s,
        "transfers_per_s": sum(UNITS[w][2] * n for w, n in measured.ops.items()) / measure_s,
        "latency_ms": percentiles_ms(measured.latencies_s),
        "failed": sum(sum(w.failures.values()) for w in windows),
    }


def _soak(
    server: Server,
    clients: _Clients,
    rate_per_s: float,
    duration_s: float,
    window_s: float,
    totals: _Totals,
) -> list[WindowRow]:
    """The mix in open loop for the duration, one row per window; then the drain."""
    count = max(1, round(duration_s / window_s))
    start = time.time() + 0.3
    edges = tuple(start + window_s * k for k in range(1, count + 1))
    clients.start(0, rate_per_s, edges)
    time.sleep(max(0.0, start - time.time()))
    before = _server_state(server)
    rows: list[WindowRow] = []
    for index, edge in enumerate(edges):
        time.sleep(max(0.0, edge - time.time()))
        after = _server_state(server)
        window = clients.collect(index, window_s + 60)
        totals.add(window)
        rows.append(_row(edge - start, window_s, window, before, after))
        before = after
        if int(rows[-1].t_s) // 60 != int(rows[-1].t_s - window_s) // 60:
            print(soak_chart.progress_line(rows[-1]), flush=True)
    totals.add(clients.collect(count, _DRAIN_S + 60))  # completed after the end
    return rows


async def _stored_transfers(target: str, token: str) -> dict[str, int]:
    """Every transfer of the tenant, by id, with its state: read through ListTransfers."""
    stored: dict[str, int] = {}
    metadata = (("authorization", f"Bearer {token}"),)
    request = mpb.ListTransfersRequest(page_size=_LIST_PAGE_SIZE)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = mgrpc.MoneyMovementServiceStub(channel)
        while True:
            reply = await stub.ListTransfers(request, metadata=metadata, timeout=60)
            stored.update((t.id, t.state) for t in reply.transfers)
            if not reply.next_page_token:
                return stored
            request.page_token = reply.next_page_token


def _check_acknowledged(acked: dict[str, int], stored: dict[str, int]) -> dict[str, Any]:
    """Every acknowledged transfer is stored; POSTED unless only its hold was acknowledged."""
    missing = [i for i in acked if i not in stored]
    wrong = [i for i, s in acked.items() if s == _POSTED and stored.get(i, _POSTED) != _POSTED]
    return {
        "ok": not missing and not wrong,
        "acknowledged": len(acked),
        "acknowledged_posted": sum(s == _POSTED for s in acked.values()),
        "acknowledged_pending": sum(s == _PENDING for s in acked.values()),
        "stored": len(stored),
        "missing": len(missing),
        "wrong_state": len(wrong),
        "examples": (missing + wrong)[:5],
    }


async def _verify(dsn: str) -> dict[str, Any]:
    result = await verify_ledger(dsn)
    return {
        "ok": result.ok,
        "verdict": "clean" if result.ok else "VIOLATIONS",
        "counts": result.counts,
        "duration_s": round(result.duration_s, 1),
        "violated": {c.name: c.violations[:3] for c in result.checks if not c.ok},
    }


@contextmanager
def _database() -> Iterator[str]:
    """DATABASE_URL if set, else a fresh embedded PostgreSQL in a directory of its own."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    with EmbeddedPostgres(DATA_DIR) as server:
        yield server.dsn


def _machine() -> str:
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} CPUs, {memory_kb / 2**20:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}"
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=1800, help="seconds of soak")
    parser.add_argument("--window", type=float, default=5, help="seconds per watcher sample")
    parser.add_argument("--fraction", type=float, default=0.5, help="of the capacity")
    parser.add_argument("--rate", type=float, help="operations/s: skip the capacity run")
    parser.add_argument("--clients", type=int, default=16, help="capacity run: closed loop")
    parser.add_argument("--capacity-s", type=float, default=10, help="capacity run: measured")
    parser.add_argument("--warmup", type=float, default=_CAPACITY_WARMUP_S, help="capacity run")
    parser.add_argument("--server-env", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args()


class _Progress:
    """The soak's status line: the phase, and for the timed ones (the capacity run, the
    soak) how far along and how long is left. Off a terminal only the phases are printed
    (the soak prints its own line every minute)."""

    def __init__(self) -> None:
        self.started = self.phase_started = time.monotonic()
        self.phase = "seeding"
        self.phase_s: float | None = None
        self.status = Status(self.render, plain_every_s=math.inf)

    def begin(self, phase: str, phase_s: float | None = None) -> None:
        self.phase, self.phase_s = phase, phase_s
        self.phase_started = time.monotonic()
        self.status.show()

    def render(self) -> str:
        now = time.monotonic()
        text = f"soak {clock(now - self.started)}: {self.phase}"
        if self.phase_s:
            done_s = now - self.phase_started
            text += (
                f" {bar(done_s / self.phase_s, 10)} {clock(done_s)}/{clock(self.phase_s)}, "
                f"~{clock(max(0.0, self.phase_s - done_s))} left"
            )
        return text


def _run(args: argparse.Namespace, run: dict[str, Any]) -> list[WindowRow]:
    """Database, server, clients; fills `run` with what the report needs."""
    totals = _Totals()
    overrides = dict(item.split("=", 1) for item in args.server_env)
    progress = _Progress()
    with _database() as dsn, progress.status:
        progress.begin(f"seeding {ACCOUNTS:,} accounts")
        tenant: BenchTenant = asyncio.run(prepare(dsn, ACCOUNTS))
        log = args.results / "tmp" / "soak-server.log"
        progress.begin("starting the server and the client processes")
        with running_server(dsn, overrides, log) as server:
            asyncio.run(wait_until_serving(server.target))
            with _Clients(server.target, tenant.token) as clients:
                if args.rate is None:
                    print(f"capacity: the mix, {args.clients} clients, closed loop", flush=True)
                    progress.begin("capacity", args.warmup + args.capacity_s)
                    run["capacity"] = _measure_capacity(
                        clients, args.clients, args.warmup, args.capacity_s, totals
                    )
                    run["rate_per_s"] = args.fraction * run["capacity"]["ops_per_s"]
                else:
                    run["capacity"], run["rate_per_s"] = None, args.rate
                print(f"soak: {run['rate_per_s']:.0f} operations/s, open loop", flush=True)
                progress.begin(f"soak at {run['rate_per_s']:.0f} operations/s", args.duration)
                rows = _soak(server, clients, run["rate_per_s"], args.duration, args.window, totals)
                progress.begin("stopping the client processes")
            print("checking the acknowledged transfers, then verify", flush=True)
            progress.begin("checking the acknowledged transfers")
            stored = asyncio.run(_stored_transfers(server.target, tenant.token))
        progress.begin("verify")
        run["verify"] = asyncio.run(_verify(dsn))
    run["acknowledged"] = _check_acknowledged(totals.acked, stored)
    run["requests"] = {
        "ops": totals.ops,
        "failures": totals.failures,
        "shed": totals.shed,
        "client_resends": totals.resends,
        "server_tx_retries": sum(r.tx_retries or 0 for r in rows),
        "server_tx_aborts": sum(r.tx_aborts or 0 for r in rows),
    }
    return rows


def main() -> int:
    args = _parse_args()
    started = time.time()
    run: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "server_env": " ".join(args.server_env),
        "duration_s": args.duration,
        "window_s": args.window,
        "fraction": args.fraction,
        "mix": MIX,
    }
    rows = _run(args, run)
    run["wall_s"] = round(time.time() - started, 1)
    run["flatness"] = soak_chart.verdicts(rows)
    run["ok"] = bool(
        run["verify"]["ok"]
        and run["acknowledged"]["ok"]
        and not run["requests"]["failures"]
        and not run["requests"]["shed"]
    )
    args.results.mkdir(parents=True, exist_ok=True)
    data = {**run, "rows": [asdict(row) for row in rows]}
    (args.results / "soak.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    text = soak_chart.summary(run)
    (args.results / "soak.md").write_text(text)
    soak_chart.draw(
        rows, args.results / "soak.png", f"moneymovement make soak, {run['started_at']}"
    )
    print("\n" + text)
    return 0 if run["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
