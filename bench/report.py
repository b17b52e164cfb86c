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
    "*÷ service SQL*: against pgbench running the service's own statements (with the "
    "transfer's event). Hot-account points compare with the hot variants. *+N watchers*: "
    "the same load with N WatchEvents streams open on the tenant (see Events). pgbench's "
    "*DB CPU*: PostgreSQL's CPU over pgbench's whole run (warm-up and connections "
    f"included) per transfer. {DASH}: not measured or not exported."
)
_EVENTS = (
    "Uniform transfers run again right after the point without watchers, with N "
    "WatchEvents streams (from now, no filter) open on the bench tenant, each on its own "
    "connection, from a separate process (bench/watchers.py). The load generator notes "
    "when each CreateTransfer's OK answer arrived; each stream notes when that transfer's "
    "TRANSFER_CREATED event arrived (one stream decodes every response, the others find "
    "the transfer ids in the bytes); the window's transfers are matched to their events, "
    "per stream, on the machine's one wall clock. *after the answer*: event arrival - "
    "answer arrival, a lower bound of commit-to-delivery (the commit precedes the answer; "
    "negative when the event came first, counted in *< 0*). *since the transaction*: event "
    "arrival - Event.occurred_at, the transaction's time (PostgreSQL's now(), before the "
    "batch's locks, write and commit), an upper bound. The true commit-to-delivery "
    "latency lies between the two. *every watcher*: per event, the last stream's arrival "
    "- occurred_at. *missing*: (transfer, stream) pairs whose event had not arrived "
    "10 s after the window. *server*: the server's own histogram "
    "(moneymovement_events_delivery_latency_seconds: occurred_at to the event's sending "
    "on a stream; mean, and its p99's bucket bound). *÷ none*: transfers/s against the "
    "point without watchers just before."
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
    load = f"{point.rate_per_s:,.0f}/s open" if point.rate_per_s else str(point.concurrency)
    return load + _watchers(point)


def _watchers(point: Point) -> str:
    if not point.watchers:
        return ""
    return f" +{point.watchers} watcher{'s' if point.watchers > 1 else ''}"


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
    first = f"{point.workload}{_watchers(point)} | {point.workers} | {point.concurrency}"
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
        return _failed(str(point.concurrency), point, 9)
    lat = point.latency_ms
    return (
        f"| {point.concurrency} | {_num(point.per_s)} | {_num(lat.get('p50'), 1)} "
        f"| {_num(lat.get('p95'), 1)} | {_num(lat.get('p99'), 1)} | {_num(lat.get('max'), 1)} "
        f"| {_counts(point.rejections)} | {_num(point.retries_per_commit, 3)} "
        f"| {_num(point.db_cpu_s_per_1k, 2)} |"
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
    rows.sort(key=lambda p: (p.workers, _ORDER.index(p.workload), p.concurrency, p.watchers))
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
                    "| failed after retries | retries/commit | DB CPU ms/transfer |",
                    "|" + "---|" * 9,
                    *map(_limit_row, rows),
                    "",
                ]
    return out


def _spread(figures: dict[str, float] | None, *keys: str) -> str:
    if not figures:
        return " / ".join(DASH for _ in keys)
    return " / ".join(_num(figures.get(key), 1) for key in keys)


def _delivery_row(point: Point, without: Point | None) -> str:
    first = f"{point.concurrency} | {point.watchers}"
    if point.error or not point.delivery:
        return _failed(first, point, 11)
    d = point.delivery
    after = d.get("after_answer_ms")
    server = d.get("server_histogram_ms")
    server_text = f"{DASH} / {DASH}"
    if server:
        beyond = "> " if server["p99_beyond"] else ""
        server_text = f"{server['mean']:,.1f} / {beyond}{server['p99_bucket']:,.0f}"
    negative = d.get("negative_after_answer", 0) / after["count"] if after else None
    ratio = _ratio(point.per_s or 0.0, without.per_s if without else None)
    errors = "; ".join(d.get("stream_errors") or [])
    return (
        f"| {first} | {_num(point.per_s)} | {_num(ratio, 2)} "
        f"| {d.get('received', 0):,} of {d.get('expected', 0):,} | {d.get('missing', 0):,}"
        f"{' (' + errors + ')' if errors else ''} "
        f"| {_spread(after, 'p50', 'p99', 'max')} "
        f"| {DASH if negative is None else f'{negative:.0%}'} "
        f"| {_spread(d.get('since_transaction_ms'), 'p50', 'p99', 'max')} "
        f"| {_spread(d.get('every_watcher_since_transaction_ms'), 'p99', 'max')} "
        f"| {server_text} | {_num(point.server_cpu_s_per_1k, 2)} |"
    )


def _events(points: Sequence[Point]) -> list[str]:
    """Event delivery with watchers, and the outbox's cost (service and pgbench)."""
    service = [p for p in points if p.source == "service" and not p.rate_per_s]
    watched = [p for p in service if p.watchers]
    plain = {(p.workload, p.concurrency, p.workers): p for p in service if not p.watchers}
    out: list[str] = []
    if watched:
        out += [
            "## Events: delivery to connected watchers (uniform transfers)",
            "",
            _EVENTS,
            "",
            "| clients | watchers | transfers/s | ÷ none | events received | missing "
            "| after the answer p50 / p99 / max ms | < 0 "
            "| since the transaction p50 / p99 / max ms "
            "| every watcher p99 / max ms | server mean / p99 ms | server CPU ms/transfer |",
            "|" + "---|" * 12,
        ]
        for point in sorted(watched, key=lambda p: (p.concurrency, p.watchers)):
            without = plain.get((point.workload, point.concurrency, point.workers))
            out.append(_delivery_row(point, without))
        out.append("")
    with_events = {
        p.concurrency: p
        for p in points
        if p.source == "pgbench" and p.limit == "service_sql" and p.workload == "uniform"
    }
    without_events = {
        p.concurrency: p
        for p in points
        if p.source == "pgbench" and p.limit == "service_sql_no_events" and not p.error
    }
    pairs = [
        (c, with_events[c], without_events[c])
        for c in sorted(with_events)
        if c in without_events and not with_events[c].error
    ]
    if pairs:
        out += [
            "## Events: the outbox's cost to the database (pgbench, the service's SQL)",
            "",
            "The service's own statements for one uniform transfer, with its event (the "
            "tenant's event lock, a position from its sequence, the event row, pg_notify) "
            "and without (write_batch's events array empty), back to back at each "
            "concurrency. DB CPU: PostgreSQL's, over each pgbench run, per transfer.",
            "",
            "| clients | with event, transfers/s | without | with ÷ without "
            "| p50 ms with / without | p99 ms with / without "
            "| DB CPU ms/transfer with / without | retries/commit with / without |",
            "|" + "---|" * 8,
        ]
        for clients, on, off in pairs:
            out.append(
                f"| {clients} | {_num(on.per_s)} | {_num(off.per_s)} "
                f"| {_num(_ratio(on.per_s or 0.0, off.per_s), 2)} "
                f"| {_num(on.latency_ms.get('p50'), 1)} / {_num(off.latency_ms.get('p50'), 1)} "
                f"| {_num(on.latency_ms.get('p99'), 1)} / {_num(off.latency_ms.get('p99'), 1)} "
                f"| {_num(on.db_cpu_s_per_1k, 3)} / {_num(off.db_cpu_s_per_1k, 3)} "
                f"| {_num(on.retries_per_commit, 3)} / {_num(off.retries_per_commit, 3)} |"
            )
        out.append("")
    return out


def _old_new(row: dict[str, Any], name: str, digits: int) -> str:
    return f"{_num(row.get('old_' + name), digits)} → {_num(row.get('new_' + name), digits)}"


def _baseline(run: dict[str, Any]) -> list[str]:
    base = run.get("baseline")
    if not base or not base.get("rows"):
        return []
    out = [
        f"## Against the committed baseline ({base['started_at']}, `make {base['plan']}`)",
        "",
        f"Old: {base['source']}; new: this run. The machine moves absolute figures by "
        "20-30 % from run to run: the ratio to each run's own RPC floor, and CPU per "
        "operation, move less. A point the baseline did not have is set against its "
        "nearest (said in brackets).",
        "",
        "| point | clients | old per s | new per s | new ÷ old | ÷ RPC floor old → new "
        "| p99 ms old → new | server CPU ms/op old → new | DB CPU ms/op old → new |",
        "|" + "---|" * 9,
    ]
    for row in base["rows"]:
        out.append(
            f"| {row['what']} | {row['clients']} | {_num(row['old_per_s'])} "
            f"| {_num(row['new_per_s'])} | {_num(row['new_over_old'], 2)} "
            f"| {_old_new(row, 'vs_rpc_floor', 2)} | {_old_new(row, 'p99_ms', 1)} "
            f"| {_old_new(row, 'server_cpu_ms', 2)} | {_old_new(row, 'db_cpu_ms', 2)} |"
        )
    return [*out, ""]


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
    out += _events(points)
    out += _baseline(run)
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
