"""The report of a run: ratios filled in, a Markdown table per workload, JSON, targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.points import Point, as_dict
from bench.workloads import UNITS

_TITLES = {
    "uniform": "(a) uniform immediate transfers among 10,000 accounts",
    "hot": "(b) hot account: every transfer credits one account",
    "hold_capture": "(c) hold, then capture (two RPCs per transfer; latency of both)",
    "batch": "(d) atomic batches of 100 transfers (latency per batch RPC)",
    "reads": "(e) balance reads (GetBalance)",
    "rpc_floor": "RPC floor: grpc.health.v1.Health/Check, no database",
}


def add_ratios(points: Sequence[Point]) -> None:
    """Fills in each service point's database limit and RPC floor at its concurrency."""
    limits = {(p.workload, p.concurrency): p.per_s for p in points if p.source == "pgbench"}
    floors = {p.concurrency: p.rpcs_per_s for p in points if p.workload == "rpc_floor"}
    for point in points:
        if point.source != "service" or point.per_s is None or point.rate_per_s:
            continue
        limit = limits.get((point.workload, point.concurrency))
        if limit:
            point.db_limit_per_s = limit
            point.vs_db_limit = point.per_s / limit
        floor = floors.get(point.concurrency)
        if floor and point.workload != "rpc_floor" and point.rpcs_per_s is not None:
            point.rpc_floor_per_s = floor
            point.vs_rpc_floor = point.rpcs_per_s / floor


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(counts.items())) or "0"


def _retries(point: Point) -> str:
    text = _num(point.retries_per_commit, 3)
    return f"{text} ({point.server_aborts} ran out)" if point.server_aborts else text


def _load(point: Point) -> str:
    return f"{point.rate_per_s:,.0f}/s open" if point.rate_per_s else str(point.concurrency)


_HEADER = (
    "| load | {unit}/s | p50 ms | p95 ms | p99 ms | max ms | rejections | resends "
    "| retries/commit | server CPU s/1k | DB CPU s/1k | server peak RSS MB "
    "| ÷ DB limit | ÷ RPC floor |\n|" + "---|" * 14
)


def _row(point: Point) -> str:
    if point.error:
        return f"| {_load(point)} | failed: {point.error.splitlines()[0][:200]} |" + " |" * 12
    lat = point.latency_ms
    return (
        f"| {_load(point)} | {_num(point.per_s)} | {_num(lat.get('p50'), 1)} "
        f"| {_num(lat.get('p95'), 1)} | {_num(lat.get('p99'), 1)} | {_num(lat.get('max'), 1)} "
        f"| {_counts(point.rejections)} | {_num(point.client_resends)} "
        f"| {_retries(point)} | {_num(point.server_cpu_s_per_1k, 2)} "
        f"| {_num(point.db_cpu_s_per_1k, 2)} | {_num(point.server_rss_peak_mb)} "
        f"| {_num(point.vs_db_limit, 2)} | {_num(point.vs_rpc_floor, 2)} |"
    )


def _limit_row(point: Point) -> str:
    if point.error:
        return f"| {point.concurrency} | failed: {point.error.splitlines()[0][:200]} |" + " |" * 6
    lat = point.latency_ms
    return (
        f"| {point.concurrency} | {_num(point.per_s)} | {_num(lat.get('p50'), 1)} "
        f"| {_num(lat.get('p95'), 1)} | {_num(lat.get('p99'), 1)} | {_num(lat.get('max'), 1)} "
        f"| {_counts(point.rejections)} | {_num(point.retries_per_commit, 3)} |"
    )


def targets(points: Sequence[Point]) -> list[str]:
    """The issue's first targets, each met or missed, from this run's points."""
    service = {
        (p.workload, p.concurrency): p
        for p in points
        if p.source == "service" and not p.rate_per_s and not p.error
    }
    lines = []
    uniform = service.get(("uniform", 16))
    if uniform and uniform.vs_db_limit is not None:
        ok = uniform.vs_db_limit >= 0.25
        lines.append(
            f"{'met ' if ok else 'MISSED'} uniform at 16 clients reaches >= 0.25 x the "
            f"database limit: {uniform.vs_db_limit:.2f} x"
        )
    hot = service.get(("hot", 64))
    if hot:
        others = {k: v for k, v in hot.rejections.items()}
        ok = hot.latency_ms.get("p99", 1e9) < 250
        lines.append(
            f"{'met ' if ok else 'MISSED'} hot account at 64 clients p99 < 250 ms: "
            f"{hot.latency_ms.get('p99', 0):.0f} ms; rejections: {_counts(others)}"
        )
    for clients in sorted({c for (w, c) in service if w == "batch"}):
        single, batch = service.get(("uniform", clients)), service.get(("batch", clients))
        if single and batch and single.per_s and batch.per_s is not None:
            ratio = batch.per_s / single.per_s
            lines.append(
                f"{'met ' if ratio >= 5 else 'MISSED'} batches of 100 at {clients} "
                f"clients move >= 5 x the transfers/s of single transfers: {ratio:.1f} x"
            )
    peak = max((p.server_rss_peak_mb or 0 for p in service.values()), default=0)
    lines.append(f"{'met ' if peak < 300 else 'MISSED'} server peak RSS < 300 MB: {peak:.0f} MB")
    return lines


def markdown(run: dict[str, Any], points: Sequence[Point]) -> str:
    """The whole report as Markdown."""
    out = [f"# moneymovement `make {run['plan']}` — {run['started_at']}", ""]
    out += [
        f"Machine: {run['machine']}. Server: `moneymovement serve` with "
        f"{run['server_env'] or 'product defaults'}; {run['accounts']:,} accounts; "
        f"warm-up {run['warmup_s']} s, window {run['measure_s']} s per point; "
        f"wall time {run['wall_s']:.0f} s.",
        "",
    ]
    out += [
        "Latency is per operation, client-side. *rejections*: operations that failed, "
        "by gRPC code, after the client's own resends (counted in *resends*). "
        "*retries/commit*: the server's transaction retries (metrics) per successful "
        "write; *ran out*: requests that exhausted them (ABORTED, then resent). "
        "*÷ DB limit*: against pgbench running the service's SQL for one transfer at "
        "the same concurrency; *÷ RPC floor*: RPCs/s against health checks at the same "
        "concurrency.",
        "",
    ]
    for workload in ("rpc_floor", "uniform", "hot", "hold_capture", "batch", "reads"):
        rows = [p for p in points if p.source == "service" and p.workload == workload]
        if rows:
            out += [f"## {_TITLES[workload]}", "", _HEADER.format(unit=UNITS[workload][0])]
            out += [_row(p) for p in rows] + [""]
    for workload in ("uniform", "hot"):
        rows = [p for p in points if p.source == "pgbench" and p.workload == workload]
        if rows:
            out += [
                f"## Database limit, pgbench: {_TITLES[workload]}",
                "",
                "| clients | transfers/s | p50 ms | p95 ms | p99 ms | max ms "
                "| failed after retries | retries/commit |",
                "|" + "---|" * 8,
            ]
            out += [_limit_row(p) for p in rows] + [""]
    out += ["## Targets (issue 7)", ""] + [f"- {line}" for line in targets(points)] + [""]
    out += [f"## verify: {run['verify']['verdict']}", "", run["verify"]["summary"], ""]
    return "\n".join(out)


def as_json(run: dict[str, Any], points: Sequence[Point]) -> dict[str, Any]:
    """The whole report as a JSON-able dict."""
    return {**run, "points": [as_dict(p) for p in points], "targets": targets(points)}
