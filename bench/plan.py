"""Which points a run measures: `make bench` (a few minutes) and `make bench-full`."""

from __future__ import annotations

from dataclasses import dataclass

# Service workloads, in the order they run; the RPC floor runs first.
WORKLOADS = ("uniform", "hot", "hold_capture", "batch", "reads")
# The database limits (bench/limits.py) measured next to a workload, in this order.
LIMITS_BY_WORKLOAD = {
    "uniform": ("service_sql", "service_sql_no_events", "one_trip", "batch_100"),
    "hot": ("service_sql", "one_trip"),
}


@dataclass(frozen=True)
class Plan:
    """A run's points and their timing."""

    name: str
    concurrencies: tuple[int, ...]
    warmup_s: float
    measure_s: float
    # Open loop: rates as fractions of the best closed-loop throughput of the workload.
    open_loop_fractions: tuple[float, ...] = ()
    open_loop_workloads: tuple[str, ...] = ()
    accounts: int = 10_000
    # Posted transfers seeded among the accounts before the first point: a ledger with a
    # history, as in use, rather than one planned (and predicate-locked) as empty.
    history_transfers: int = 20_000
    # pgbench's points (None: as the service's). Steady from the first second, they
    # need no long warm-up.
    limit_warmup_s: float | None = None
    limit_measure_s: float | None = None
    # A second server, `serve --workers N` (0: none), measured at these points after the
    # first server's.
    workers: int = 0
    workers_workloads: tuple[str, ...] = ("rpc_floor", "uniform")
    workers_concurrencies: tuple[int, ...] = (16, 64)
    # Event delivery (bench/watchers.py): uniform transfers again at these concurrencies,
    # right after the point without watchers, with each number of WatchEvents streams
    # open on the tenant.
    watcher_streams: tuple[int, ...] = (1, 100)
    watcher_concurrencies: tuple[int, ...] = (16, 64)


QUICK = Plan(
    "bench",
    concurrencies=(1, 16, 64),
    warmup_s=2,
    measure_s=8,
    limit_warmup_s=1,
    limit_measure_s=5,
    workers=2,
)
FULL = Plan(
    "bench-full",
    concurrencies=(1, 4, 16, 32, 64, 128),
    warmup_s=3,
    measure_s=15,
    open_loop_fractions=(0.5, 0.8),
    open_loop_workloads=("uniform", "hot"),
    workers=2,
)
# make profile: the uniform workload at 16 clients while py-spy samples the server.
PROFILE = Plan("profile", concurrencies=(16,), warmup_s=3, measure_s=20, watcher_streams=())
PLANS = {plan.name: plan for plan in (QUICK, FULL, PROFILE)}
