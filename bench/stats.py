"""What one measured point boils down to: a count, a window, latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    """Operations completed inside a measurement window, and how long each took."""

    ops: int
    window_s: float
    latency_ms: dict[str, float]  # p50, p95, p99, max
    failures: dict[str, int] = field(default_factory=dict)  # by gRPC code or pgbench kind
    retries: int = 0  # pgbench's own retries of serialization failures
    total_ops: int | None = None  # pgbench: completed over the whole run, warm-up included

    @property
    def per_s(self) -> float:
        """Operations per second over the window."""
        return self.ops / self.window_s if self.window_s > 0 else 0.0


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max in milliseconds (nearest rank); zeros when empty."""
    ordered = sorted(latencies_s)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1] * 1000}


def summarise(
    latencies_s: list[float],
    window_s: float,
    failures: dict[str, int],
    *,
    retries: int = 0,
    total_ops: int | None = None,
) -> Sample:
    """A Sample of these latencies (one per completed operation)."""
    return Sample(
        len(latencies_s), window_s, percentiles_ms(latencies_s), failures, retries, total_ops
    )
