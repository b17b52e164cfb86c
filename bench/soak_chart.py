"""What make soak reports: the watcher's rows, a flat-or-not verdict per series, the summary
table and the PNG chart of every series over time.

    python -m bench.soak_chart [RESULTS_JSON [PNG]]   (default: bench/results/soak.{json,png})

redraws the chart of a finished soak without running it again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from statistics import fmean, median
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

RESULTS = Path(__file__).resolve().parent / "results"

FIRST_LAST_S = 300.0  # "first 5 minutes" and "last 5 minutes" (a fifth of shorter runs)
MIN_ROWS_TO_JUDGE = 10


@dataclass(frozen=True)
class WindowRow:
    """One watcher sample: the server at the window's end, the clients over the window.

    None where nothing could be read (the server was gone) or nothing completed.
    """

    t_s: float  # the window's end, from the start of the soak
    ops_per_s: float  # operations of the mix completed in the window
    transfers_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    rss_mb: float | None  # the server's resident memory (VmRSS)
    server_cpu_pct: float | None  # % of one core over the window
    pool_in_use: float | None  # the server's gauges at the window's end
    pool_size: float | None
    pool_waiting: float | None
    tx_retries: float | None  # server transaction retries in the window
    tx_aborts: float | None  # requests whose server retries ran out
    failed: int  # operations that failed after their resends
    shed: int  # open-loop arrivals not sent: too many in flight
    resends: int  # client resends (same request_id) in the window
    failures: dict[str, int]  # "workload:CODE" -> count


@dataclass(frozen=True)
class Series:
    """A watched series and how flat it must stay.

    Flat: the median of the last fifth of the samples is within `relative` of the median of
    the second fifth, or within `absolute` (the series' unit), whichever is larger. The
    first fifth is left out: it holds the warm-up (pool growth, caches, allocator arenas).
    """

    key: str
    label: str
    relative: float
    absolute: float


SERIES = (
    Series("rss_mb", "server RSS, MB", 0.10, 10.0),
    Series("p99_ms", "p99 latency, ms", 0.25, 2.0),
    Series("ops_per_s", "throughput, operations/s", 0.10, 1.0),
    Series("server_cpu_pct", "server CPU, % of a core", 0.15, 5.0),
    Series("pool_in_use", "pool connections in use", 0.25, 2.0),
    Series("pool_size", "pool connections open", 0.25, 2.0),
    Series("pool_waiting", "callers waiting for a connection", 0.25, 2.0),
)


def _values(rows: list[WindowRow], key: str) -> list[tuple[float, float]]:
    pairs = [(row.t_s, getattr(row, key)) for row in rows]
    return [(t, float(v)) for t, v in pairs if v is not None]


def _verdict(rows: list[WindowRow], series: Series, span_s: float) -> dict[str, Any]:
    values = _values(rows, series.key)
    rule = f"last fifth within {series.relative:.0%} or {series.absolute:g} of the second"
    if not values:
        return {"label": series.label, "flat": None, "rule": rule}
    end = rows[-1].t_s
    ys = [v for _, v in values]
    verdict: dict[str, Any] = {
        "label": series.label,
        "first": fmean([v for t, v in values if t <= span_s] or ys[:1]),
        "last": fmean([v for t, v in values if t > end - span_s] or ys[-1:]),
        "max": max(ys),
        "flat": None,
        "rule": rule,
    }
    if len(ys) >= MIN_ROWS_TO_JUDGE:
        fifths = [ys[len(ys) * i // 5 : len(ys) * (i + 1) // 5] for i in range(5)]
        second, last = median(fifths[1]), median(fifths[4])
        limit = max(series.relative * abs(second), series.absolute)
        verdict.update(second_fifth_median=second, last_fifth_median=last)
        verdict["flat"] = abs(last - second) <= limit
    return verdict


def verdicts(rows: list[WindowRow]) -> dict[str, Any]:
    """First and last spans, maximum and flat-or-not of every series; the RSS growth."""
    span_s = min(FIRST_LAST_S, rows[-1].t_s / 5) if rows else FIRST_LAST_S
    series = {s.key: _verdict(rows, s, span_s) for s in SERIES}
    rss = [v for _, v in _values(rows, "rss_mb")]
    rss_verdict = series["rss_mb"]
    return {
        "span_s": span_s,
        "rss_growth_mb": rss[-1] - rss[0] if rss else None,
        "rss_growth_fifths_mb": (
            rss_verdict["last_fifth_median"] - rss_verdict["second_fifth_median"]
            if "last_fifth_median" in rss_verdict
            else None
        ),
        "series": series,
    }


def progress_line(row: WindowRow) -> str:
    """One line of the running soak, printed every minute."""
    minutes, seconds = divmod(int(row.t_s), 60)
    return (
        f"  {minutes:3d}:{seconds:02d}  RSS {_f(row.rss_mb)} MB  CPU {_f(row.server_cpu_pct)} %"
        f"  p99 {_f(row.p99_ms, 1)} ms  {row.ops_per_s:6.1f} ops/s  pool {_f(row.pool_in_use)}"
        f"/{_f(row.pool_size)} ({_f(row.pool_waiting)} waiting)  failed {row.failed}"
        f"  shed {row.shed}  resends {row.resends}"
    )


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _span(span_s: float) -> str:
    return f"{span_s / 60:g} min" if span_s % 60 == 0 else f"{span_s:.0f} s"


def _table(flatness: dict[str, Any]) -> list[str]:
    span = _span(flatness["span_s"])
    lines = [
        f"| series | first {span} | last {span} | max | 2nd fifth median "
        "| last fifth median | flat? |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for verdict in flatness["series"].values():
        flat = {True: "yes", False: "**NO**", None: "too short to judge"}[verdict["flat"]]
        numbers = [
            _f(verdict.get(k), 1)
            for k in ("first", "last", "max", "second_fifth_median", "last_fifth_median")
        ]
        lines.append(f"| {verdict['label']} | {' | '.join(numbers)} | {flat} |")
    return lines


def _capacity(run: dict[str, Any]) -> str:
    capacity = run["capacity"]
    if capacity is None:
        return f"at {run['rate_per_s']:.1f} operations/s (given)."
    return (
        f"at {run['rate_per_s']:.1f} operations/s, {run['fraction']:.0%} of the capacity "
        f"measured just before: {capacity['ops_per_s']:.1f} operations/s "
        f"({capacity['transfers_per_s']:.0f} transfers/s, p99 "
        f"{capacity['latency_ms']['p99']:.1f} ms) with {capacity['clients']} clients in closed "
        f"loop over {capacity['measure_s']:g} s."
    )


def summary(run: dict[str, Any]) -> str:
    """The Markdown summary: the load, the table of series, requests, acknowledgements."""
    flatness, requests, acked = run["flatness"], run["requests"], run["acknowledged"]
    mix = ", ".join(f"{n} {name}" for name, n in run["mix"].items())
    rules = "; ".join(f"{s.label.split(',')[0]} {s.relative:.0%} or {s.absolute:g}" for s in SERIES)
    failures = ", ".join(f"{k} {n}" for k, n in requests["failures"].items()) or "none"
    lines = [
        f"# make soak, {run['started_at']}",
        "",
        f"{run['duration_s'] / 60:g} min of the mixed load in open loop (Poisson arrivals) "
        + _capacity(run),
        f"Mix per 1,000 operations: {mix} (a batch is 100 transfers; hold_capture is a hold, "
        f"then its capture). One sample every {run['window_s']:g} s. {run['machine']}.",
        "",
        *_table(flatness),
        "",
        "Flat: the median of the last fifth of the samples is within the tolerance of the "
        "median of the second fifth (the first fifth is warm-up), whichever of relative and "
        f"absolute is larger: {rules}.",
        f"RSS growth: {_f(flatness['rss_growth_mb'], 1)} MB from the first sample to the last "
        f"({_f(flatness['rss_growth_fifths_mb'], 1)} MB second fifth to last, by median).",
        "",
        f"Requests: {sum(requests['ops'].values()):,} operations completed; failed after "
        f"resends: {failures}; shed {requests['shed']}; client resends "
        f"{requests['client_resends']:,}; server transaction retries "
        f"{requests['server_tx_retries']:,.0f}, aborts {requests['server_tx_aborts']:,.0f}.",
        f"Acknowledged transfers: {acked['acknowledged']:,} ({acked['acknowledged_posted']:,} "
        f"POSTED, {acked['acknowledged_pending']:,} holds without an acknowledged capture); "
        f"{acked['stored']:,} stored; missing {acked['missing']}, in the wrong state "
        f"{acked['wrong_state']}"
        + (f" (e.g. {acked['examples']})" if acked["examples"] else "")
        + ".",
        f"verify: {run['verify']['verdict']} ({run['verify']['counts']}"
        + (f"; violated: {run['verify']['violated']}" if run["verify"]["violated"] else "")
        + ").",
        "",
        f"Result: {'PASS' if run['ok'] else 'FAIL'} (wall {run['wall_s'] / 60:.1f} min).",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class _Panel:
    """One panel of the soak chart: its series (key, legend name) in one unit."""

    title: str
    unit: str  # the y axis
    series: tuple[tuple[str, str], ...]
    counts: bool = False  # whole numbers


def _panels(window_s: float) -> tuple[_Panel, ...]:
    per_window = f"per {window_s:g} s window"
    return (
        _Panel("server memory (RSS)", "MB", (("rss_mb", "RSS"),)),
        _Panel("server CPU", "% of one core", (("server_cpu_pct", "CPU"),)),
        _Panel("latency per operation", "ms", (("p50_ms", "p50"), ("p99_ms", "p99"))),
        _Panel("throughput: operations of the mix", "operations/s", (("ops_per_s", "ops"),)),
        _Panel(
            "throughput: transfers (a batch counts 100)",
            "transfers/s",
            (("transfers_per_s", "transfers"),),
        ),
        _Panel(
            "database pool: connections",
            "connections",
            (("pool_size", "open"), ("pool_in_use", "in use")),
            counts=True,
        ),
        _Panel(
            "database pool: callers waiting",
            "callers",
            (("pool_waiting", "waiting"),),
            counts=True,
        ),
        _Panel(
            "trouble, " + per_window,
            "count " + per_window,
            (
                ("failed", "failed after resends"),
                ("shed", "shed (too many in flight)"),
                ("resends", "client resends"),
                ("tx_retries", "server transaction retries"),
                ("tx_aborts", "server aborts (retries ran out)"),
            ),
            counts=True,
        ),
    )


def _plot(axis: Any, rows: list[WindowRow], panel: _Panel, end_min: float) -> None:
    highest = 0.0
    for index, (key, name) in enumerate(panel.series):
        values = _values(rows, key)
        highest = max([highest, *(v for _, v in values)])
        minutes = [t / 60 for t, _ in values]
        axis.plot(minutes, [v for _, v in values], color=f"C{index}", lw=1, label=name)
    axis.set(title=panel.title, xlabel="minutes since the soak began", ylabel=panel.unit)
    axis.set_xlim(0, end_min or 1)
    # From zero: growth shown against the whole, not magnified; a flat zero still shows.
    axis.set_ylim(bottom=0, top=None if highest > 0 else 1)
    if panel.counts:
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, alpha=0.3)
    for fifth in (1, 4):
        axis.axvspan(end_min * fifth / 5, end_min * (fifth + 1) / 5, color="grey", alpha=0.12)
    if len(panel.series) > 1:  # below the axis, off the data
        axis.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            ncols=min(len(panel.series), 2),
            fontsize=9,
            frameon=False,
        )


def draw(rows: list[WindowRow], path: Path, title: str) -> None:
    """Eight panels over time, one unit each; the second and last fifths (compared for
    flatness) shaded."""
    window_s = rows[1].t_s - rows[0].t_s if len(rows) > 1 else (rows[0].t_s if rows else 0.0)
    panels = _panels(window_s)
    figure, axes = plt.subplots(2, 4, figsize=(20, 9.5), layout="constrained")
    end_min = rows[-1].t_s / 60 if rows else 0.0
    for axis, panel in zip(axes.flat, panels, strict=True):
        _plot(axis, rows, panel, end_min)
    figure.suptitle(
        f"{title}\nshaded: the second and the last fifth of the run, whose medians are "
        "compared for flatness",
        fontsize=13,
    )
    figure.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.2)
    plt.close(figure)


def load_rows(path: Path) -> tuple[dict[str, Any], list[WindowRow]]:
    """A soak results JSON (bench/soak.py writes it) as its run and its rows."""
    data: dict[str, Any] = json.loads(path.read_text())
    names = {f.name for f in fields(WindowRow)}
    rows = [WindowRow(**{k: v for k, v in row.items() if k in names}) for row in data["rows"]]
    return data, rows


def title(run: dict[str, Any]) -> str:
    """The chart's title line for a soak run."""
    return f"moneymovement make soak, {run.get('started_at', '')}"


def main(argv: Sequence[str]) -> int:
    """Redraws the soak chart from its results JSON without running anything."""
    if len(argv) > 2 or any(a.startswith("-") for a in argv):
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        return 2
    source = Path(argv[0]) if argv else RESULTS / "soak.json"
    target = Path(argv[1]) if len(argv) > 1 else source.with_suffix(".png")
    run, rows = load_rows(source)
    draw(rows, target, title(run))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
