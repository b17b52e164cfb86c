"""One measured point: the service under one load, or pgbench at one concurrency.

A point that fails records why (and the run goes on): numbers are never made up, and a
figure the server does not export (yet) stays None, shown as a dash.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import limits
from bench.loadgen import ClientPool, LoadSpec
from bench.pgbench import ScriptInputs, run_script
from bench.server import (
    Metrics,
    Server,
    children_cpu_seconds,
    postgres_cpu_seconds,
    scrape_metrics,
    tree_cpu_seconds,
    tree_peak_rss_mb,
)
from bench.stats import Sample
from bench.workloads import UNITS

_RETRIES = "moneymovement_tx_retries_total"
_ABORTS = "moneymovement_tx_aborts_total"
# The group-commit write pipeline's: transactions it committed, and commands per commit.
_COMMITS = "moneymovement_write_commits_total"
_BATCH_SIZE = "moneymovement_write_batch_size"
# The server's own view of event delivery (WatchEvents): the transaction's time to the
# event's sending on a live stream, per event and stream.
_DELIVERY = "moneymovement_events_delivery_latency_seconds"
_REAPED_S = 0.3  # pgbench's backends exit, and are reaped, just after pgbench does


@dataclass
class Point:
    """One row of the report (JSON as is; see report.py for the columns)."""

    source: str  # "service" or "pgbench"
    workload: str
    concurrency: int
    rate_per_s: float = 0.0  # open loop; 0 for closed loop
    unit: str = "transfers"
    limit: str = ""  # pgbench: which limit (bench/limits.py LIMITS)
    workers: int = 1  # service: the server's worker processes
    per_s: float | None = None
    rpcs_per_s: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    client_resends: int | None = None
    retries: int | None = None  # server-side transaction retries (pgbench: its own)
    server_aborts: int | None = None  # requests whose server retries ran out (ABORTED)
    commits: int | None = None  # transactions the write pipeline committed (if exported)
    retries_per_commit: float | None = None
    batch_size_mean: float | None = None  # commands per committed transaction
    batch_size_p99: float | None = None  # upper bound of the p99's bucket
    batch_size_p99_beyond: bool = False  # the p99 fell past the last finite bucket
    server_cpu_s_per_1k: float | None = None
    db_cpu_s_per_1k: float | None = None
    server_rss_peak_mb: float | None = None
    rpc_floor_per_s: float | None = None
    vs_rpc_floor: float | None = None
    one_trip_per_s: float | None = None
    vs_one_trip: float | None = None
    batch_limit_per_s: float | None = None
    vs_batch_limit: float | None = None
    service_sql_per_s: float | None = None
    vs_service_sql: float | None = None
    # Service: WatchEvents streams the bench kept open on the tenant during the point
    # (0: none), and what they received (bench/watchers.py, Delivery.as_json).
    watchers: int = 0
    delivery: dict[str, Any] | None = None
    error: str | None = None

    @property
    def mode(self) -> str:
        return "open" if self.rate_per_s else "closed"


@dataclass(frozen=True)
class _Edge:
    metrics: Metrics
    server_cpu_s: float
    db_cpu_s: float | None


def _edge(server: Server, postmaster_pid: int | None) -> _Edge:
    return _Edge(
        scrape_metrics(server.all_metrics_urls),
        tree_cpu_seconds(server.pid),
        children_cpu_seconds(postmaster_pid) if postmaster_pid else None,
    )


def _delta(start: Metrics, end: Metrics, name: str) -> float | None:
    """How much counter `name` grew; None when the server does not export it."""
    if name not in end.totals:
        return None
    return end.totals[name] - start.totals.get(name, 0.0)


def batch_sizes(start: Metrics, end: Metrics) -> tuple[float, float, bool] | None:
    """(mean, p99 upper bound, p99 beyond the last finite bucket) of the batch-size
    histogram between two scrapes; None when not exported or nothing was committed."""
    return histogram(start, end, _BATCH_SIZE)


def histogram(start: Metrics, end: Metrics, name: str) -> tuple[float, float, bool] | None:
    """(mean, p99 upper bound, p99 beyond the last finite bucket) of histogram `name`
    between two scrapes; None when not exported or nothing was recorded."""
    count = _delta(start, end, f"{name}_count")
    total = _delta(start, end, f"{name}_sum")
    if not count or total is None or count <= 0:
        return None
    before = start.buckets.get(name, {})
    after = end.buckets.get(name, {})
    bounds = sorted(after)
    p99 = math.inf
    for bound in bounds:  # cumulative counts: the first bucket holding 99 % of them
        if after[bound] - before.get(bound, 0.0) >= 0.99 * count:
            p99 = bound
            break
    if math.isfinite(p99):
        return total / count, p99, False
    # Past the last finite bound: report that bound, marked as exceeded.
    return total / count, max((b for b in bounds if math.isfinite(b)), default=math.nan), True


def _fill_from_edges(point: Point, start: _Edge, end: _Edge, sample: Sample) -> None:
    _, rpcs_per_op, transfers_per_op = UNITS[point.workload]
    units = sample.ops * (transfers_per_op or 1)
    retries = _delta(start.metrics, end.metrics, _RETRIES)
    point.retries = round(retries or 0)
    # The client resends these; only those still failing show among the rejections.
    point.server_aborts = round(_delta(start.metrics, end.metrics, _ABORTS) or 0)
    commits = _delta(start.metrics, end.metrics, _COMMITS)
    point.commits = None if commits is None else round(commits)
    if transfers_per_op:  # writes
        if commits is not None:  # the pipeline says how many transactions it committed
            point.retries_per_commit = point.retries / commits if commits else None
        else:  # one transaction per RPC
            point.retries_per_commit = point.retries / (sample.ops * rpcs_per_op)
    sizes = batch_sizes(start.metrics, end.metrics)
    if sizes:
        point.batch_size_mean, point.batch_size_p99, point.batch_size_p99_beyond = sizes
    delivered = histogram(start.metrics, end.metrics, _DELIVERY)
    if delivered and point.delivery is not None:
        mean, p99, beyond = delivered
        point.delivery["server_histogram_ms"] = {
            "mean": mean * 1000,
            "p99_bucket": p99 * 1000,
            "p99_beyond": beyond,
            "count": round(_delta(start.metrics, end.metrics, f"{_DELIVERY}_count") or 0),
        }
    spent = end.server_cpu_s - start.server_cpu_s
    point.server_cpu_s_per_1k = spent / units * 1000 if spent >= 0 else None
    if start.db_cpu_s is not None and end.db_cpu_s is not None:
        # Live backends only: one that exited in the window took its CPU time along.
        spent = end.db_cpu_s - start.db_cpu_s
        point.db_cpu_s_per_1k = spent / units * 1000 if spent >= 0 else None


def measure_service(
    server: Server,
    clients: ClientPool,
    spec: LoadSpec,
    postmaster_pid: int | None,
    *,
    point: Point | None = None,
    answers: dict[str, float] | None = None,
    on_window: Callable[[float, float], None] | None = None,
) -> Point:
    """Drives the server with `spec` and reads its counters at the window's edges.

    `point`: the point to fill (a new one by default); `answers`: filled with the time
    each transfer's answer arrived in the window, by transfer id (the load generator's
    LoadSpec.record_answers); `on_window(measure_from, stop_at)` is called first once the
    window is set.
    """
    unit, rpcs_per_op, transfers_per_op = UNITS[spec.workload]
    if point is None:
        point = Point("service", spec.workload, spec.concurrency, spec.rate_per_s, unit)
    point.workers = server.workers
    edges: list[_Edge] = []

    def at_edges(measure_from: float, stop_at: float) -> None:
        if on_window is not None:
            on_window(measure_from, stop_at)
        time.sleep(max(0.0, measure_from - time.time()))
        edges.append(_edge(server, postmaster_pid))
        time.sleep(max(0.0, stop_at - time.time()))
        edges.append(_edge(server, postmaster_pid))

    try:
        sample, resends = clients.run(spec, at_edges, answers)
    except Exception as error:  # the point fails, the run goes on
        point.error = f"{type(error).__name__}: {error}"
        return point
    units = sample.ops * (transfers_per_op or 1)
    point.per_s = units / sample.window_s
    point.rpcs_per_s = sample.ops * rpcs_per_op / sample.window_s
    point.latency_ms = sample.latency_ms
    point.rejections = sample.failures
    point.client_resends = resends
    point.server_rss_peak_mb = round(tree_peak_rss_mb(server.pid), 1)
    if len(edges) == 2 and units:
        _fill_from_edges(point, edges[0], edges[1], sample)
    if not sample.ops:
        point.error = "no operation completed in the window"
    return point


def failed_point(workload: str, concurrency: int, workers: int, error: str) -> Point:
    """A service point that could not be measured at all (its server did not start)."""
    point = Point("service", workload, concurrency, unit=UNITS[workload][0], workers=workers)
    point.error = error
    return point


def measure_limit(
    dsn: str,
    inputs: ScriptInputs,
    limit_name: str,
    workload: str,
    clients: int,
    warmup_s: float,
    measure_s: float,
    postmaster_pid: int | None = None,
) -> Point:
    """One database limit (bench/limits.py) for `workload` ("uniform" or "hot") at
    `clients` connections; per_s in transfers. With the postmaster's pid, PostgreSQL's
    CPU per transfer too, over pgbench's whole run (warm-up and connections included)."""
    limit = limits.LIMITS[limit_name]
    point = Point("pgbench", workload, clients, limit=limit_name)
    try:
        script = limits.script(limit, hot=workload == "hot", with_trace_id=inputs.with_trace_id)
        cpu_before = postgres_cpu_seconds(postmaster_pid) if postmaster_pid else None
        sample: Sample = run_script(
            dsn,
            inputs,
            script,
            clients=clients,
            warmup_s=warmup_s,
            measure_s=measure_s,
            settings=limits.settings(limit),
        )
        if cpu_before is not None and postmaster_pid and sample.total_ops:
            time.sleep(_REAPED_S)
            spent = postgres_cpu_seconds(postmaster_pid) - cpu_before
            transfers = sample.total_ops * limit.transfers_per_tx
            point.db_cpu_s_per_1k = spent / transfers * 1000 if spent >= 0 else None
    except Exception as error:  # a script that no longer fits the schema: say so, go on
        point.error = f"{type(error).__name__}: {error}"
        return point
    point.per_s = sample.per_s * limit.transfers_per_tx
    point.latency_ms = sample.latency_ms
    point.rejections = sample.failures
    point.retries = sample.retries
    point.commits = sample.ops
    point.retries_per_commit = sample.retries / sample.ops if sample.ops else None
    point.batch_size_mean = float(limit.transfers_per_tx)
    if not sample.ops:
        point.error = "no transaction completed in the window"
    return point


def as_dict(point: Point) -> dict[str, Any]:
    """The JSON form of a point (an unbounded figure as None)."""
    data = {**asdict(point), "mode": point.mode}
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in data.items()
    }
