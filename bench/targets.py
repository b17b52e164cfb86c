"""The issue's targets, each met or missed, and by how much, from one run's points.

Ratios are taken within the run (the machine is shared and noisy); a target whose points
were not measured (or failed) says so instead of passing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.points import Point

WRITES = ("uniform", "hot", "hold_capture", "batch")


@dataclass(frozen=True)
class Target:
    """One target: `value` against `bound` (at least, or below)."""

    name: str
    value: float | None  # None: not measured
    bound: float
    at_least: bool
    unit: str = ""  # appended to figures: " x", " ms", " MB"
    digits: int = 2
    detail: str = ""
    or_equal: bool = False  # at most: the bound itself passes

    @property
    def met(self) -> bool | None:
        """None when not measured."""
        if self.value is None:
            return None
        if self.at_least:
            return self.value >= self.bound
        return self.value <= self.bound if self.or_equal else self.value < self.bound

    def margin(self) -> float:
        """How far past the bound, as a fraction of it (positive: to spare)."""
        assert self.value is not None
        gap = self.value - self.bound if self.at_least else self.bound - self.value
        return gap / self.bound

    def line(self) -> str:
        """`met`/`MISSED`, the target, the figure, and by how much."""
        if self.value is None:
            return f"not measured: {self.name}" + (f" ({self.detail})" if self.detail else "")
        figure = f"{self.value:,.{self.digits}f}{self.unit}"
        how = f"{self.margin():.0%} to spare" if self.met else f"missed by {-self.margin():.0%}"
        text = f"{'met' if self.met else 'MISSED'}: {self.name}: {figure}, {how}"
        return text + (f" ({self.detail})" if self.detail else "")

    def as_json(self) -> dict[str, object]:
        """The target as JSON."""
        return {
            "name": self.name,
            "value": self.value,
            "bound": self.bound,
            "at_least": self.at_least,
            "met": self.met,
            "line": self.line(),
        }


class _Points:
    """The run's measured closed-loop service points, by (workload, clients, workers)."""

    def __init__(self, points: Sequence[Point]) -> None:
        service = [p for p in points if p.source == "service" and not p.rate_per_s]
        self.all = [p for p in service if not p.watchers]
        self._ok = {(p.workload, p.concurrency, p.workers): p for p in self.all if not p.error}
        self.watched = [p for p in service if p.watchers and not p.error and p.delivery]

    def get(self, workload: str, clients: int, workers: int = 1) -> Point | None:
        return self._ok.get((workload, clients, workers))

    def figure(
        self, workload: str, clients: int, read: Callable[[Point], float | None]
    ) -> float | None:
        point = self.get(workload, clients)
        return None if point is None else read(point)


def _floor_ratio(points: _Points, workload: str, clients: int, bound: float, what: str) -> Target:
    value = points.figure(workload, clients, lambda p: p.vs_rpc_floor)
    detail = ""
    wide = points.get(workload, clients, workers=2)
    if wide and wide.vs_rpc_floor is not None:
        detail = f"with 2 workers: {wide.vs_rpc_floor:.2f} x their floor"
    return Target(
        f"{what} at {clients} clients >= {bound} x the RPC floor",
        value,
        bound,
        at_least=True,
        unit=" x",
        detail=detail,
    )


def _scaling(points: _Points) -> Target:
    low, high = points.get("uniform", 16), points.get("uniform", 64)
    value = None
    detail = ""
    if low and high and low.per_s and high.per_s is not None:
        value = high.per_s / low.per_s
        detail = f"{high.per_s:,.0f} / {low.per_s:,.0f} transfers/s"
    return Target(
        "uniform throughput at 64 clients not below 16's", value, 1.0, True, " x", 2, detail
    )


def _retries(points: _Points) -> Target:
    measured = [
        p
        for p in points.all
        if p.workload in WRITES and not p.error and p.retries_per_commit is not None
    ]
    worst = max(measured, key=lambda p: p.retries_per_commit or 0.0, default=None)
    if worst is None:
        return Target("retries per commit < 0.05", None, 0.05, False)
    workers = f", {worst.workers} workers" if worst.workers > 1 else ""
    return Target(
        "retries per commit < 0.05 (the worst write point)",
        worst.retries_per_commit,
        0.05,
        at_least=False,
        digits=3,
        detail=f"{worst.workload} at {worst.concurrency} client"
        f"{'' if worst.concurrency == 1 else 's'}{workers}",
    )


def _reads(points: _Points) -> Target:
    ratios = {
        c: p.vs_rpc_floor
        for c in (16, 64)
        if (p := points.get("reads", c)) and p.vs_rpc_floor is not None
    }
    value = min(ratios.values()) if ratios else None
    detail = ", ".join(f"{r:.2f} x at {c}" for c, r in ratios.items())
    return Target(
        "balance reads >= 0.7 x the RPC floor (at 16 and 64 clients, the lower)",
        value,
        0.7,
        True,
        " x",
        2,
        detail,
    )


def _batches(points: _Points) -> Target:
    single, batch = points.get("uniform", 1), points.get("batch", 1)
    value = None
    detail = ""
    if single and batch and single.per_s and batch.per_s is not None:
        value = batch.per_s / single.per_s
        detail = f"{batch.per_s:,.0f} / {single.per_s:,.0f} transfers/s"
    return Target(
        "batches of 100 >= 10 x single transfers/s at 1 client", value, 10.0, True, " x", 1, detail
    )


def _delivery(points: _Points, streams: int) -> Target:
    """Event delivery p99 since the transaction (an upper bound of commit to delivery)
    with `streams` watchers: the worst of the measured concurrencies."""
    figures = {
        p.concurrency: since["p99"]
        for p in points.watched
        if p.watchers == streams and (since := (p.delivery or {}).get("since_transaction_ms"))
    }
    worst = max(figures.values(), default=None)
    detail = ", ".join(f"{v:.0f} ms at {c} clients" for c, v in sorted(figures.items()))
    missing = sum(
        (p.delivery or {}).get("missing", 0) for p in points.watched if p.watchers == streams
    )
    if missing:
        detail += f"; {missing} deliveries missing"
    return Target(
        f"event delivery p99 < 100 ms with {streams} watcher{'s' if streams > 1 else ''} "
        "(from the transaction's time: an upper bound; uniform transfers)",
        worst,
        100.0,
        at_least=False,
        unit=" ms",
        digits=0,
        detail=detail,
    )


def evaluate(all_points: Sequence[Point]) -> list[Target]:
    """Every target, in the issue's order."""
    points = _Points(all_points)
    p99_64 = points.figure("uniform", 64, lambda p: p.latency_ms.get("p99"))
    cpu_16 = points.figure("uniform", 16, lambda p: p.server_cpu_s_per_1k)
    rss = [p.server_rss_peak_mb for p in points.all if p.server_rss_peak_mb is not None]
    return [
        _floor_ratio(points, "uniform", 16, 0.5, "uniform single transfers"),
        _floor_ratio(points, "uniform", 64, 0.5, "uniform single transfers"),
        _scaling(points),
        _retries(points),
        Target("uniform p99 at 64 clients < 100 ms", p99_64, 100.0, False, " ms", 0),
        _floor_ratio(points, "hot", 64, 0.5, "hot account"),
        _reads(points),
        _batches(points),
        Target(
            "server CPU per transfer <= 0.5 ms at 16 clients (uniform)",
            cpu_16,
            0.5,
            at_least=False,
            unit=" ms",
            or_equal=True,
        ),
        Target(
            "server peak RSS < 300 MB (all points; a multi-process server's summed)",
            max(rss, default=None),
            300.0,
            False,
            " MB",
            0,
        ),
        *(_delivery(points, n) for n in sorted({p.watchers for p in points.watched})),
    ]
