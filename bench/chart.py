"""The PNG chart of a run: throughput and p99 latency against concurrency, per workload."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt

from bench.points import Point


def draw(points: Sequence[Point], path: Path, title: str) -> None:
    """Two panels (throughput, p99) with one line per workload; pgbench dashed."""
    figure, (rate_axis, p99_axis) = plt.subplots(1, 2, figsize=(13, 5))
    series: dict[str, list[Point]] = {}
    for point in points:
        if point.error or point.rate_per_s or point.per_s is None:
            continue
        if point.source == "service":
            label = point.workload + (f" x{point.workers} workers" if point.workers > 1 else "")
        else:
            label = f"{point.workload} (pgbench {point.limit})"
        series.setdefault(label, []).append(point)
    for label, rows in series.items():
        rows.sort(key=lambda p: p.concurrency)
        clients = [p.concurrency for p in rows]
        style = "--" if "pgbench" in label else "-"
        rate_axis.plot(clients, [p.per_s for p in rows], style, marker="o", label=label)
        p99_axis.plot(clients, [p.latency_ms["p99"] for p in rows], style, marker="o", label=label)
    rate_axis.set(
        xscale="log",
        yscale="log",
        xlabel="concurrency (clients)",
        ylabel="per second (transfers; reads; calls)",
        title="throughput",
    )
    p99_axis.set(
        xscale="log",
        yscale="log",
        xlabel="concurrency (clients)",
        ylabel="p99 latency, ms",
        title="p99 latency per operation",
    )
    for axis in (rate_axis, p99_axis):
        axis.grid(True, which="both", alpha=0.3)
    rate_axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
