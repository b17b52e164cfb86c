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


@dataclass(frozen=True)
class Step:
    """One point of a run, as the schedule lists it: the service under a load, pgbench at
    one limit (`limit`), the service with WatchEvents streams open (`watchers`), in open
    loop at a fraction of the workload's best closed-loop rate (`fraction`), or against
    the second server, `serve --workers N` (`workers` > 1)."""

    workload: str
    concurrency: int = 0
    limit: str = ""
    watchers: int = 0
    fraction: float = 0.0
    workers: int = 1

    def label(self) -> str:
        """What the point measures, for the status line."""
        clients = f"{self.concurrency} client{'s' if self.concurrency != 1 else ''}"
        if self.limit:
            return f"pgbench {self.limit} ({self.workload}), {clients}"
        if self.fraction:
            return f"{self.workload}, open loop at {self.fraction:.0%} of its best"
        text = f"{self.workload}, {clients}"
        if self.watchers:
            text += f", {self.watchers} watcher{'s' if self.watchers > 1 else ''}"
        if self.workers > 1:
            text += f", serve --workers {self.workers}"
        return text

    def expected_s(self, plan: Plan) -> float:
        """About how long the point takes: its warm-up and window, and the start and
        drain around them (a first guess; the status line corrects it as points end)."""
        if self.limit:
            warmup = plan.warmup_s if plan.limit_warmup_s is None else plan.limit_warmup_s
            measure = plan.measure_s if plan.limit_measure_s is None else plan.limit_measure_s
            return warmup + measure + 1.0
        return plan.warmup_s + plan.measure_s + (4.0 if self.watchers else 1.0)


def schedule(plan: Plan, workloads: tuple[str, ...], limits: tuple[str, ...]) -> list[Step]:
    """Every point of a run in the order it runs: the RPC floor, then each workload at
    each concurrency, each followed by its watched points and the database's limits for
    the same transfers (`limits`: those selected), then its open-loop points; last the
    second server's points."""
    steps = [Step("rpc_floor", c) for c in plan.concurrencies]
    for workload in workloads:
        for concurrency in plan.concurrencies:
            steps.append(Step(workload, concurrency))
            if workload == "uniform" and concurrency in plan.watcher_concurrencies:
                steps += [Step(workload, concurrency, watchers=n) for n in plan.watcher_streams]
            for name in LIMITS_BY_WORKLOAD.get(workload, ()):
                if name in limits:
                    steps.append(Step(workload, concurrency, limit=name))
        if workload in plan.open_loop_workloads:
            steps += [Step(workload, fraction=f) for f in plan.open_loop_fractions]
    if plan.workers >= 2:
        steps += [
            Step(workload, concurrency, workers=plan.workers)
            for workload in plan.workers_workloads
            for concurrency in plan.workers_concurrencies
        ]
    return steps
