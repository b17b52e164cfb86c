"""One measured point: the service under one load, or pgbench at one concurrency.

A point that fails records why (and the run goes on): numbers are never made up.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.loadgen import ClientPool, LoadSpec
from bench.pgbench import ScriptInputs, run_pgbench
from bench.server import Server, children_cpu_seconds, cpu_seconds, peak_rss_mb, scrape
from bench.stats import Sample
from bench.workloads import UNITS

_RETRIES = "moneymovement_tx_retries_total"
_ABORTS = "moneymovement_tx_aborts_total"


@dataclass
class Point:
    """One row of the report (JSON as is; see report.py for the columns)."""

    source: str  # "service" or "pgbench"
    workload: str
    concurrency: int
    rate_per_s: float = 0.0  # open loop; 0 for closed loop
    unit: str = "transfers"
    per_s: float | None = None
    rpcs_per_s: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    client_resends: int | None = None
    retries: int | None = None  # server-side transaction retries (pgbench: its own)
    server_aborts: int | None = None  # requests whose server retries ran out (ABORTED)
    retries_per_commit: float | None = None
    server_cpu_s_per_1k: float | None = None
    db_cpu_s_per_1k: float | None = None
    server_rss_peak_mb: float | None = None
    db_limit_per_s: float | None = None
    vs_db_limit: float | None = None
    rpc_floor_per_s: float | None = None
    vs_rpc_floor: float | None = None
    error: str | None = None

    @property
    def mode(self) -> str:
        return "open" if self.rate_per_s else "closed"


@dataclass(frozen=True)
class _Edge:
    metrics: dict[str, float]
    server_cpu_s: float
    db_cpu_s: float | None


def _edge(server: Server, postmaster_pid: int | None) -> _Edge:
    return _Edge(
        scrape(server.metrics_url),
        cpu_seconds(server.pid),
        children_cpu_seconds(postmaster_pid) if postmaster_pid else None,
    )


def measure_service(
    server: Server, clients: ClientPool, spec: LoadSpec, postmaster_pid: int | None
) -> Point:
    """Drives the server with `spec` and reads its counters at the window's edges."""
    unit, rpcs_per_op, transfers_per_op = UNITS[spec.workload]
    point = Point("service", spec.workload, spec.concurrency, spec.rate_per_s, unit)
    edges: list[_Edge] = []

    def on_window(measure_from: float, stop_at: float) -> None:
        time.sleep(max(0.0, measure_from - time.time()))
        edges.append(_edge(server, postmaster_pid))
        time.sleep(max(0.0, stop_at - time.time()))
        edges.append(_edge(server, postmaster_pid))

    try:
        sample, resends = clients.run(spec, on_window)
    except Exception as error:  # the point fails, the run goes on
        point.error = f"{type(error).__name__}: {error}"
        return point
    units = sample.ops * (transfers_per_op or 1)
    point.per_s = units / sample.window_s
    point.rpcs_per_s = sample.ops * rpcs_per_op / sample.window_s
    point.latency_ms = sample.latency_ms
    point.rejections = sample.failures
    point.client_resends = resends
    point.server_rss_peak_mb = round(peak_rss_mb(server.pid), 1)
    if len(edges) == 2 and units:
        start, end = edges
        point.retries = round(end.metrics.get(_RETRIES, 0) - start.metrics.get(_RETRIES, 0))
        # The client resends these; only those still failing show among the rejections.
        point.server_aborts = round(end.metrics.get(_ABORTS, 0) - start.metrics.get(_ABORTS, 0))
        if transfers_per_op:  # writes: one transaction per RPC
            point.retries_per_commit = point.retries / (sample.ops * rpcs_per_op)
        point.server_cpu_s_per_1k = (end.server_cpu_s - start.server_cpu_s) / units * 1000
        if start.db_cpu_s is not None and end.db_cpu_s is not None:
            # Live backends only: one that exited in the window took its CPU time along.
            spent = end.db_cpu_s - start.db_cpu_s
            point.db_cpu_s_per_1k = spent / units * 1000 if spent >= 0 else None
    if not sample.ops:
        point.error = "no operation completed in the window"
    return point


def measure_pgbench(
    dsn: str,
    inputs: ScriptInputs,
    workload: str,
    clients: int,
    warmup_s: float,
    measure_s: float,
) -> Point:
    """The database limit for `workload` ("uniform" or "hot") at `clients` connections."""
    point = Point("pgbench", workload, clients)
    try:
        sample: Sample = run_pgbench(
            dsn,
            inputs,
            hot=workload == "hot",
            clients=clients,
            warmup_s=warmup_s,
            measure_s=measure_s,
        )
    except Exception as error:
        point.error = f"{type(error).__name__}: {error}"
        return point
    point.per_s = sample.per_s
    point.latency_ms = sample.latency_ms
    point.rejections = sample.failures
    point.retries = sample.retries
    point.retries_per_commit = sample.retries / sample.ops if sample.ops else None
    if not sample.ops:
        point.error = "no transaction completed in the window"
    return point


def as_dict(point: Point) -> dict[str, Any]:
    """The JSON form of a point."""
    return {**asdict(point), "mode": point.mode}
