"""The PNG chart of a run, readable at a glance.

    python -m bench.chart [RESULTS_JSON [PNG]]   (default: bench/results/latest.{json,png})

One column per kind of load (uniform transfers, the hot account, holds and batches, calls
that move no money), each with one unit: its throughput on top, its p99 latency per
operation below, and the column's legend under it, off the data. The service's lines are
solid, pgbench's (the database alone, bench/limits.py) dashed. A last row shows event
delivery to WatchEvents streams, one panel per number of streams. Both axes are
logarithmic where figures span decades; every x tick is a measured concurrency.
Open-loop points are in the report's table only.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from bench.points import Point

RESULTS = Path(__file__).resolve().parent / "results"
_PGBENCH = {
    "service_sql": "pgbench: the service's SQL",
    "service_sql_no_events": "pgbench: the service's SQL without its event",
    "one_trip": "pgbench: one transfer in one round trip",
    "batch_100": "pgbench: 100 transfers in one statement",
}
_WORKLOADS = {
    "uniform": "uniform transfers",
    "hot": "hot account",
    "hold_capture": "hold, then its capture (2 calls)",
    "batch": "atomic batch of 100 (1 call)",
    "reads": "balance reads (GetBalance)",
    "rpc_floor": "RPC floor (health Check)",
}
# The latency-since-the-transaction target (bench/targets.py): event delivery p99 < 100 ms.
_DELIVERY_TARGET_MS = 100.0


@dataclass(frozen=True)
class _Panel:
    """A column of the chart: the workloads it plots and the one unit of its throughput."""

    title: str
    unit: str  # per second, on the throughput axis
    workloads: tuple[str, ...]
    calls: bool = False  # plot calls per second (rpcs_per_s) rather than per_s


_PANELS = (
    _Panel("uniform transfers", "transfers", ("uniform",)),
    _Panel("hot account (every transfer credits one)", "transfers", ("hot",)),
    _Panel("holds and batches", "transfers", ("hold_capture", "batch")),
    _Panel("calls that move no money", "calls", ("rpc_floor", "reads"), calls=True),
)


def _panels(points: Sequence[Point]) -> list[_Panel]:
    """The fixed columns that have points, then one per unit of any other workload."""
    present = {p.workload for p in points}
    panels = [panel for panel in _PANELS if present & set(panel.workloads)]
    known = {w for panel in _PANELS for w in panel.workloads}
    others: dict[str, list[str]] = {}
    for point in points:
        if point.workload not in known and point.workload not in others.get(point.unit, []):
            others.setdefault(point.unit, []).append(point.workload)
    panels += [_Panel(f"other ({unit})", unit, tuple(ws)) for unit, ws in others.items()]
    return panels


def _label(point: Point, panel: _Panel) -> str:
    """The series' name in its column's legend."""
    if point.source == "pgbench":
        return _PGBENCH.get(point.limit, f"pgbench: {point.limit}")
    label = _WORKLOADS.get(point.workload, point.workload) if len(panel.workloads) > 1 else ""
    label = label or "the service"
    if point.workers > 1:
        label += f", serve --workers {point.workers}"
    if point.watchers:
        label += f", {point.watchers} WatchEvents stream{'s' if point.watchers > 1 else ''} open"
    return label


def _series(points: Sequence[Point], panel: _Panel) -> dict[str, list[Point]]:
    """The closed-loop points of a column by series, each sorted by concurrency; the
    service's first, pgbench's last."""
    series: dict[str, list[Point]] = {}
    ordered = sorted(points, key=lambda p: (p.source != "service", p.workers, p.watchers))
    for point in ordered:
        if point.workload in panel.workloads:
            series.setdefault(_label(point, panel), []).append(point)
    for rows in series.values():
        rows.sort(key=lambda p: p.concurrency)
    return series


def _per_s(point: Point, panel: _Panel) -> float | None:
    return point.rpcs_per_s if panel.calls else point.per_s


def _concurrency_axis(axis: Axes, concurrencies: Sequence[int], label: bool) -> None:
    """A log axis whose only ticks are the measured concurrencies (set after plotting:
    the scale resets them)."""
    axis.set_xscale("log", base=2)
    ticks = sorted(set(concurrencies))
    axis.set_xticks(ticks, [str(t) for t in ticks])
    axis.xaxis.set_minor_locator(NullLocator())
    if ticks:
        axis.set_xlim(ticks[0] / 1.4, ticks[-1] * 1.4)
    if label:
        axis.set_xlabel("clients (each keeps one call in flight)")


def _nice(value: float, up: bool) -> float:
    """The nearest 1, 2 or 5 times a power of ten below (or above) `value` > 0."""
    decade = 10.0 ** math.floor(math.log10(value))
    steps = [decade * m for m in (1, 2, 5, 10)]
    return min(s for s in steps if s >= value) if up else max(s for s in steps if s <= value)


def _log_values(axis: Axes) -> None:
    """A log y axis labelled at 1, 2, 5 of each decade in plain numbers, its ends on
    such a label (after plotting: it snaps the autoscaled limits)."""
    axis.set_yscale("log")
    low, high = axis.get_ylim()
    if 0 < low < high:
        axis.set_ylim(_nice(low, up=False), _nice(high, up=True))
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.yaxis.set_minor_locator(NullLocator())


def _column(
    rate_axis: Axes, p99_axis: Axes, panel: _Panel, points: Sequence[Point], ticks: list[int]
) -> None:
    for index, (label, rows) in enumerate(_series(points, panel).items()):
        service = rows[0].source == "service"
        style: dict[str, Any] = {
            "color": f"C{index % 10}",
            "linestyle": "-" if service else "--",
            "marker": "o" if service else "s",
            "linewidth": 2.4 if index == 0 else 1.4,
            "markersize": 5,
            "label": label,
        }
        rates = [(p.concurrency, r) for p in rows if (r := _per_s(p, panel))]
        rate_axis.plot([c for c, _ in rates], [r for _, r in rates], **style)
        kept = [p for p in rows if p.latency_ms.get("p99")]  # one that failed has none
        p99_axis.plot([p.concurrency for p in kept], [p.latency_ms["p99"] for p in kept], **style)
    rate_axis.set(title=f"{panel.title}\nthroughput", ylabel=f"{panel.unit} per second")
    p99_axis.set(title=f"{panel.title}\np99 latency", ylabel="p99 per operation, ms")
    for axis in (rate_axis, p99_axis):
        _log_values(axis)
        _concurrency_axis(axis, ticks, label=axis is p99_axis)
        axis.grid(True, alpha=0.3)
    p99_axis.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9, frameon=False, ncols=1
    )


def _delivery(axis: Axes, rows: list[Point], streams: int, ticks: list[int]) -> None:
    """Event delivery latency to `streams` streams, against concurrency: p50 and p99
    since the transaction began (solid; an upper bound of commit to delivery) and after
    the caller's answer (dotted; a lower bound)."""
    rows = sorted(rows, key=lambda p: p.concurrency)
    for key, linestyle, what in (
        ("since_transaction_ms", "-", "since the transaction began (upper bound)"),
        ("after_answer_ms", ":", "after the caller's answer (lower bound)"),
    ):
        kept = [p for p in rows if (p.delivery or {}).get(key)]
        for percentile, color, marker in (("p99", "C3", "o"), ("p50", "C0", "x")):
            axis.plot(
                [p.concurrency for p in kept],
                [(p.delivery or {})[key][percentile] for p in kept],
                linestyle=linestyle,
                color=color,
                marker=marker,
                label=f"{percentile} {what}",
            )
    axis.axhline(
        _DELIVERY_TARGET_MS,
        color="grey",
        linewidth=0.9,
        linestyle="--",
        label=f"target: p99 since the transaction < {_DELIVERY_TARGET_MS:.0f} ms",
    )
    name = f"{streams} WatchEvents stream{'s' if streams > 1 else ''}"
    axis.set(title=f"event delivery to {name}\nunder uniform transfers", ylabel="ms")
    _concurrency_axis(axis, ticks, label=True)
    axis.grid(True, alpha=0.3)


def draw(points: Sequence[Point], path: Path, title: str) -> None:
    """Writes the chart of `points` (closed-loop, without errors) to `path`."""
    kept = [p for p in points if not p.error and not p.rate_per_s and p.per_s is not None]
    panels = _panels(kept)
    watched: dict[int, list[Point]] = {}
    for point in kept:
        if point.watchers and point.delivery:
            watched.setdefault(point.watchers, []).append(point)
    columns = max(len(panels), len(watched), 1)
    rows = 3 if watched else 2
    figure = plt.figure(figsize=(4.8 * columns, 4.6 * rows + 2.2), layout="constrained")
    grid = figure.add_gridspec(rows, columns, height_ratios=[1.0, 1.0, 0.9][:rows])
    ticks = sorted({p.concurrency for p in kept})
    for index, panel in enumerate(panels):
        rate_axis = figure.add_subplot(grid[0, index])
        p99_axis = figure.add_subplot(grid[1, index])
        _column(rate_axis, p99_axis, panel, kept, ticks)
    _delivery_row(figure, grid, watched)
    subtitle = "closed loop; solid: the service, dashed: pgbench on the same database"
    if any(p.rate_per_s for p in points):
        subtitle += "; open-loop points: see the table"
    figure.suptitle(f"{title}\n{subtitle}", fontsize=13)
    figure.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.2)
    plt.close(figure)


def _delivery_row(figure: Figure, grid: Any, watched: dict[int, list[Point]]) -> None:
    """The last row: one panel per number of streams, one y scale, the legend beside."""
    first: Axes | None = None
    axis: Axes | None = None
    for index, (streams, rows) in enumerate(sorted(watched.items())):
        axis = figure.add_subplot(grid[2, index], sharey=first)
        first = first or axis
        _delivery(axis, rows, streams, sorted({p.concurrency for p in rows}))
    if axis is None:
        return
    axis.set_ylim(bottom=0)  # after every panel's lines: a limit stops autoscaling
    if len(watched) < grid.ncols:  # the legend in the free cells beside, off the data
        beside = figure.add_subplot(grid[2, len(watched) :])
        beside.axis("off")
        handles, labels = axis.get_legend_handles_labels()
        beside.legend(handles, labels, loc="upper left", fontsize=9, frameon=False)
    else:
        axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


def load_points(path: Path) -> tuple[dict[str, Any], list[Point]]:
    """A results JSON (bench/run.py writes it) as its run and its points."""
    data: dict[str, Any] = json.loads(path.read_text())
    names = {f.name for f in fields(Point)}
    points = [Point(**{k: v for k, v in p.items() if k in names}) for p in data["points"]]
    return data, points


def title(run: dict[str, Any]) -> str:
    """The chart's title line for a run (as bench/run.py names its files)."""
    stamp = str(run.get("started_at", "")).replace(":", "").replace("-", "")
    return f"moneymovement make {run.get('plan', 'bench')}, {stamp}"


def main(argv: Sequence[str]) -> int:
    """Redraws the chart of a results JSON without running anything."""
    if len(argv) > 2 or any(a.startswith("-") for a in argv):
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        return 2
    source = Path(argv[0]) if argv else RESULTS / "latest.json"
    target = Path(argv[1]) if len(argv) > 1 else source.with_suffix(".png")
    run, points = load_points(source)
    draw(points, target, title(run))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
