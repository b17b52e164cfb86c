"""The report of a run: ratios filled in, the summary against the limits, the targets, a
Markdown table per workload and per database limit, and JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.limits import LIMITS
from bench.points import Point, as_dict
from bench.targets import evaluate
from bench.workloads import UNITS

DASH = "\u2013"  # a figure not measured, or not exported by the server
_TITLES = {
    "uniform": "(a) uniform immediate transfers among 10,000 accounts",
    "hot": "(b) hot account: every transfer credits one account",
    "hold_capture": "(c) hold, then capture (two RPCs per transfer; latency of both)",
    "batch": "(d) atomic batches of 100 transfers (latency per batch RPC)",
    "reads": "(e) balance reads (GetBalance)",
    "rpc_floor": "RPC floor: grpc.health.v1.Health/Check, no database",
}
_ORDER = ("rpc_floor", "uniform", "hot", "hold_capture", "batch", "reads")
_METHOD = (
    "Latency is per operation, client-side. *rejections*: operations that failed, by gRPC "
    "code, after the client's own resends (counted in *resends*). *retries/commit*: the "
    "server's transaction retries per transaction committed (the write pipeline's commits "
    "counter; without it, per write RPC); *ran out*: requests that exhausted them "
    "(ABORTED, then resent). *batch mean / p99*: commands per committed transaction, "
    "from the server's batch-size histogram (p99: its bucket's upper bound). *server CPU* "
    "(the whole process tree) and *DB CPU* (PostgreSQL's live backends): seconds per "
    "1,000 operations, i.e. ms per operation. Ratios, at the same concurrency unless said: "
    "*÷ RPC floor*: RPCs/s against health checks (of a server with as many workers); "
    "*÷ 1 trip*: transfers/s against one transfer per transaction in one round trip "
    "(pgbench, the physical limit); *÷ 100/stmt*: against the best rate of 100 transfers "
    "per statement, at any concurrency (a grouping server chooses its own); "
    "*÷ service SQL*: against pgbench running the service's own statements. Hot-account "
    f"points compare with the hot variants. {DASH}: not measured or not exported."
)


def add_ratios(points: Sequence[Point]) -> None:
    """Fills in each closed-loop service point's floor and limits at its concurrency."""
    limits = {
        (p.limit, p.workload, p.concurrency): p.per_s
        for p in points
        if p.source == "pgbench" and not p.error
    }
    # Grouping turns many clients into few database transactions: the most the database
    # moved in groups of 100, at whichever concurrency, is the ceiling to compare with.
    batch_best = max(
        (p.per_s or 0.0 for p in points if p.source == "pgbench" and p.limit == "batch_100"),
        default=0.0,
    )
    floors = {
        (p.concurrency, p.workers): p.rpcs_per_s
        for p in points
        if p.workload == "rpc_floor" and not p.error
    }
    for point in points:
        if point.source != "service" or point.per_s is None or point.rate_per_s:
            continue
        floor = floors.get((point.concurrency, point.workers))
        if floor and point.workload != "rpc_floor" and point.rpcs_per_s is not None:
            point.rpc_floor_per_s = floor
            point.vs_rpc_floor = point.rpcs_per_s / floor
        if not UNITS[point.workload][2]:  # not transfers: no transfer limit applies
            continue
        variant = "hot" if point.workload == "hot" else "uniform"
        clients = point.concurrency
        point.one_trip_per_s = limits.get(("one_trip", variant, clients))
        point.batch_limit_per_s = batch_best or None
        point.service_sql_per_s = limits.get(("service_sql", variant, clients))
        point.vs_one_trip = _ratio(point.per_s, point.one_trip_per_s)
        point.vs_batch_limit = _ratio(point.per_s, point.batch_limit_per_s)
        point.vs_service_sql = _ratio(point.per_s, point.service_sql_per_s)


def _ratio(value: float, limit: float | None) -> float | None:
    return value / limit if limit else None


def _num(value: float | None, digits: int = 0) -> str:
    return DASH if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(counts.items())) or "0"


def _retries(point: Point) -> str:
    text = _num(point.retries_per_commit, 3)
    return f"{text} ({point.server_aborts} ran out)" if point.server_aborts else text


def _batch(point: Point) -> str:
    if point.batch_size_mean is None:
        return f"{DASH} / {DASH}"
    p99 = _num(point.batch_size_p99, 0)
    return f"{point.batch_size_mean:,.1f} / {'> ' if point.batch_size_p99_beyond else ''}{p99}"


def _load(point: Point) -> str:
    return f"{point.rate_per_s:,.0f}/s open" if point.rate_per_s else str(point.concurrency)


def _failed(first: str, point: Point, columns: int) -> str:
    assert point.error is not None
    return f"| {first} | failed: {point.error.splitlines()[0][:200]} |" + " |" * (columns - 2)


_HEADER = (
    "| load | {unit}/s | p50 ms | p95 ms | p99 ms | max ms | rejections | resends "
    "| retries/commit | batch mean / p99 | server CPU s/1k | DB CPU s/1k "
    "| server peak RSS MB |\n|" + "---|" * 13
)


def _row(point: Point) -> str:
    if point.error:
        return _failed(_load(point), point, 13)
    lat = point.latency_ms
    return (
        f"| {_load(point)} | {_num(point.per_s)} | {_num(lat.get('p50'), 1)} "
        f"| {_num(lat.get('p95'), 1)} | {_num(lat.get('p99'), 1)} | {_num(lat.get('max'), 1)} "
        f"| {_counts(point.rejections)} | {_num(point.client_resends)} "
        f"| {_retries(point)} | {_batch(point)} | {_num(point.server_cpu_s_per_1k, 2)} "
        f"| {_num(point.db_cpu_s_per_1k, 2)} | {_num(point.server_rss_peak_mb)} |"
    )


_SUMMARY_HEADER = (
    "| workload | workers | clients | per s | ÷ RPC floor | ÷ 1 trip | ÷ 100/stmt "
    "| ÷ service SQL | retries/commit | batch mean / p99 | server CPU ms/op "
    "| DB CPU ms/op |\n|" + "---|" * 12
)


def _summary_row(point: Point) -> str:
    first = f"{point.workload} | {point.workers} | {point.concurrency}"
    if point.error:
        return _failed(first, point, 12)
    return (
        f"| {first} | {_num(point.per_s)} | {_num(point.vs_rpc_floor, 2)} "
        f"| {_num(point.vs_one_trip, 2)} | {_num(point.vs_batch_limit, 2)} "
        f"| {_num(point.vs_service_sql, 2)} | {_retries(point)} | {_batch(point)} "
        f"| {_num(point.server_cpu_s_per_1k, 2)} | {_num(point.db_cpu_s_per_1k, 2)} |"
    )


def _limit_row(point: Point) -> str:
    if point.error:
        return _failed(str(point.concurrency), point, 8)
    lat = point.latency_ms
    return (
        f"| {point.concurrency} | {_num(point.per_s)} | {_num(lat.get('p50'), 1)} "
        f"| {_num(lat.get('p95'), 1)} | {_num(lat.get('p99'), 1)} | {_num(lat.get('max'), 1)} "
        f"| {_counts(point.rejections)} | {_num(point.retries_per_commit, 3)} |"
    )


def targets(points: Sequence[Point]) -> list[str]:
    """The targets, one line each (met or missed, and by how much)."""
    return [target.line() for target in evaluate(points)]


def _summary(points: Sequence[Point]) -> list[str]:
    rows = [
        p
        for p in points
        if p.source == "service" and not p.rate_per_s and p.workload != "rpc_floor"
    ]
    rows.sort(key=lambda p: (p.workers, _ORDER.index(p.workload), p.concurrency))
    return [
        "## Against the floor and the limits",
        "",
        _SUMMARY_HEADER,
        *(_summary_row(p) for p in rows),
        "",
    ]


def _service_tables(points: Sequence[Point]) -> list[str]:
    out: list[str] = []
    for workers in sorted({p.workers for p in points if p.source == "service"}):
        for workload in _ORDER:
            rows = [
                p
                for p in points
                if p.source == "service" and p.workload == workload and p.workers == workers
            ]
            if rows:
                server = f", `serve --workers {workers}`" if workers > 1 else ""
                out += [f"## {_TITLES[workload]}{server}", ""]
                out += [_HEADER.format(unit=UNITS[workload][0]), *map(_row, rows), ""]
    return out


def _limit_tables(points: Sequence[Point], described: dict[str, str]) -> list[str]:
    out: list[str] = []
    for name in LIMITS:
        for workload in ("uniform", "hot"):
            rows = [
                p
                for p in points
                if p.source == "pgbench" and p.limit == name and p.workload == workload
            ]
            if rows:
                out += [
                    f"## Database limit, pgbench, {described.get(name, name)}: {_TITLES[workload]}",
                    "",
                    "| clients | transfers/s | p50 ms | p95 ms | p99 ms | max ms "
                    "| failed after retries | retries/commit |",
                    "|" + "---|" * 8,
                    *map(_limit_row, rows),
                    "",
                ]
    return out


def markdown(run: dict[str, Any], points: Sequence[Point]) -> str:
    """The whole report as Markdown."""
    limit_window = ""
    if run.get("limit_measure_s") is not None:
        limit_window = (
            f" (pgbench: warm-up {run['limit_warmup_s']} s, window {run['limit_measure_s']} s)"
        )
    out = [f"# moneymovement `make {run['plan']}` — {run['started_at']}", ""]
    out += [
        f"Machine: {run['machine']}. Server: `moneymovement serve` with "
        f"{run['server_env'] or 'product defaults'}; {run['accounts']:,} accounts with "
        f"{run.get('history_transfers', 0):,} transfers seeded before the first point; "
        f"warm-up {run['warmup_s']} s, window {run['measure_s']} s per point{limit_window}; "
        f"wall time {run['wall_s']:.0f} s.",
        "",
        _METHOD,
        "",
    ]
    out += [f"- note: {note}" for note in run.get("notes", [])]
    out += [""] if run.get("notes") else []
    out += _summary(points)
    out += ["## Targets", ""] + [f"- {line}" for line in targets(points)] + [""]
    out += _service_tables(points)
    out += _limit_tables(points, run.get("limits", {}))
    out += [f"## verify: {run['verify']['verdict']}", "", run["verify"]["summary"], ""]
    return "\n".join(out)


def as_json(run: dict[str, Any], points: Sequence[Point]) -> dict[str, Any]:
    """The whole report as a JSON-able dict."""
    return {
        **run,
        "points": [as_dict(p) for p in points],
        "targets": [target.as_json() for target in evaluate(points)],
    }
