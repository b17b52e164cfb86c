"""The PNG chart of a run: throughput and p99 latency against concurrency, per workload,
and event delivery to watchers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.points import Point


def draw(points: Sequence[Point], path: Path, title: str) -> None:
    """Three panels (throughput, p99, event delivery) with one line per workload; pgbench
    dashed."""
    figure, (rate_axis, p99_axis, events_axis) = plt.subplots(1, 3, figsize=(19, 5.5))
    series: dict[str, list[Point]] = {}
    for point in points:
        if point.error or point.rate_per_s or point.per_s is None:
            continue
        if point.source == "service":
            label = point.workload + (f" x{point.workers} workers" if point.workers > 1 else "")
            if point.watchers:
                label += f" +{point.watchers} watcher{'s' if point.watchers > 1 else ''}"
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
    _delivery(events_axis, points)
    for axis in (rate_axis, p99_axis):
        axis.grid(True, which="both", alpha=0.3)
    rate_axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _delivery(axis: Axes, points: Sequence[Point]) -> None:
    """Event delivery latency against concurrency, per number of watchers: p50 and p99
    since the transaction (solid; an upper bound) and after the caller's answer (dotted;
    a lower bound)."""
    watched: dict[int, list[Point]] = {}
    for point in points:
        if point.watchers and point.delivery and not point.error:
            watched.setdefault(point.watchers, []).append(point)
    ticks: set[int] = set()
    for index, (streams, rows) in enumerate(sorted(watched.items())):
        rows.sort(key=lambda p: p.concurrency)
        name = f"{streams} watcher{'s' if streams > 1 else ''}"
        for key, style, what in (
            ("since_transaction_ms", "-", "since the transaction"),
            ("after_answer_ms", ":", "after the answer"),
        ):
            kept = [p for p in rows if (p.delivery or {}).get(key)]
            clients = [p.concurrency for p in kept]
            ticks.update(clients)
            for percentile, marker in (("p99", "o"), ("p50", "x")):
                figures = [(p.delivery or {})[key][percentile] for p in kept]
                axis.plot(
                    clients,
                    figures,
                    style,
                    color=f"C{index}",
                    marker=marker,
                    label=f"{name}, {percentile} {what}",
                )
    axis.axhline(100, color="grey", linewidth=0.8, linestyle="--")
    axis.set(
        xscale="log",
        xlabel="concurrency (clients), uniform transfers",
        ylabel="ms (commit lies between the two figures)",
        title="event delivery to WatchEvents streams",
    )
    if ticks:  # after the scale, which resets them
        axis.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
        axis.minorticks_off()
    axis.grid(True, which="both", alpha=0.3)
    if watched:
        axis.legend(fontsize=7)
