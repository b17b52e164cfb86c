"""Which points a run measures: `make bench` (a few minutes) and `make bench-full`."""

from __future__ import annotations

from dataclasses import dataclass

# Service workloads, in the order they run; the RPC floor runs first.
WORKLOADS = ("uniform", "hot", "hold_capture", "batch", "reads")
# Workloads whose database limit pgbench measures (the same SQL as one service transfer).
DB_LIMIT_WORKLOADS = ("uniform", "hot")


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


QUICK = Plan("bench", concurrencies=(1, 16, 64), warmup_s=2, measure_s=8)
FULL = Plan(
    "bench-full",
    concurrencies=(1, 4, 16, 32, 64, 128),
    warmup_s=3,
    measure_s=15,
    open_loop_fractions=(0.5, 0.8),
    open_loop_workloads=("uniform", "hot"),
)
# make profile: the uniform workload at 16 clients while py-spy samples the server.
PROFILE = Plan("profile", concurrencies=(16,), warmup_s=3, measure_s=20)
PLANS = {plan.name: plan for plan in (QUICK, FULL, PROFILE)}
