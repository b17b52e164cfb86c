"""make bench / make bench-full / make profile: the service against the machine's limits.

    python -m bench.run [--plan bench|bench-full|profile] [--server-env KEY=VALUE ...]

One run, one database: start a fresh embedded PostgreSQL (or use DATABASE_URL), migrate,
seed a tenant with 10,000 numbered accounts (UNLIMITED overdraft), start the real server
as its own process, then measure each workload at each concurrency with client processes
(bench/loadgen.py), the RPC floor (health checks) and the database limit (pgbench running
the service's own transfer SQL, bench/transfer_sql.py). Writes bench/results/latest.{json,
md,png} (and a timestamped copy under bench/results/runs/), prints the table, and ends
with `verify` on the database it used: the exit status is 1 unless the ledger is clean.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from bench import chart, report
from bench.database import (
    HOT_ACCOUNT,
    BenchTenant,
    bench_database,
    prepare,
    probe_outcome,
    service_role,
)
from bench.loadgen import ClientPool, LoadSpec
from bench.pgbench import ScriptInputs
from bench.plan import DB_LIMIT_WORKLOADS, PLANS, WORKLOADS, Plan
from bench.points import Point, measure_pgbench, measure_service
from bench.profile import profile_server
from bench.server import Server, running_server
from bench.transfer_sql import account_id
from moneymovement.client import wait_until_serving
from moneymovement.storage.verify import verify_ledger
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc

RESULTS = Path(__file__).resolve().parent / "results"
PROBE_REQUEST_ID = "bench-probe"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="bench")
    parser.add_argument("--concurrency", type=int, nargs="*", help="override the plan's")
    parser.add_argument("--workloads", nargs="*", choices=WORKLOADS, help="only these")
    parser.add_argument("--warmup", type=float, help="seconds, override the plan's")
    parser.add_argument("--measure", type=float, help="seconds, override the plan's")
    parser.add_argument("--no-db-limit", action="store_true", help="skip pgbench")
    parser.add_argument("--server-env", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args()


def _plan(args: argparse.Namespace) -> Plan:
    plan = PLANS[args.plan]
    changes: dict[str, Any] = {}
    if args.concurrency:
        changes["concurrencies"] = tuple(args.concurrency)
    if args.warmup is not None:
        changes["warmup_s"] = args.warmup
    if args.measure is not None:
        changes["measure_s"] = args.measure
    return dataclasses.replace(plan, **changes)


async def _probe(server: Server, dsn: str, tenant: BenchTenant) -> ScriptInputs:
    """One real transfer through the service; pgbench then saves an outcome like it."""
    await wait_until_serving(server.target)
    request = mpb.CreateTransferRequest(
        request_id=PROBE_REQUEST_ID,
        debit_account_id=account_id(2),
        credit_account_id=account_id(3),
        amount_minor=1,
        currency_code="USD",
    )
    async with grpc.aio.insecure_channel(server.target) as channel:
        await mgrpc.MoneyMovementServiceStub(channel).CreateTransfer(
            request, metadata=(("authorization", f"Bearer {tenant.token}"),), timeout=30
        )
    fingerprint, outcome, traced = await probe_outcome(dsn, tenant.tenant_id, PROBE_REQUEST_ID)
    role = await service_role(dsn)
    return ScriptInputs(
        tenant.tenant_id, tenant.accounts, HOT_ACCOUNT, fingerprint, outcome, traced, role
    )


def _show(point: Point) -> None:
    what = f"{point.source:<8} {point.workload:<13} {point.mode:<6} "
    what += f"{point.rate_per_s:>6.0f}/s" if point.rate_per_s else f"{point.concurrency:>4} clients"
    if point.error:
        print(f"{what}  FAILED: {point.error}", flush=True)
        return
    lat = point.latency_ms
    print(
        f"{what}  {point.per_s or 0:>9,.0f} {point.unit}/s  p50 {lat['p50']:7.1f}  "
        f"p99 {lat['p99']:7.1f} ms  rejections {sum(point.rejections.values())}",
        flush=True,
    )


def _measure_all(
    plan: Plan,
    workloads: tuple[str, ...],
    dsn: str,
    server: Server,
    clients: ClientPool,
    inputs: ScriptInputs,
    pg_pid: int | None,
    db_limit: bool,
) -> list[Point]:
    points: list[Point] = []

    def keep(point: Point) -> Point:
        _show(point)
        points.append(point)
        return point

    for concurrency in plan.concurrencies:
        spec = LoadSpec("rpc_floor", concurrency, 0, plan.warmup_s, plan.measure_s)
        keep(measure_service(server, clients, spec, pg_pid))
    for workload in workloads:
        best = 0.0
        for concurrency in plan.concurrencies:
            spec = LoadSpec(workload, concurrency, 0, plan.warmup_s, plan.measure_s)
            point = keep(measure_service(server, clients, spec, pg_pid))
            best = max(best, point.rpcs_per_s or 0.0)
            # Side by side: the database limit of the same transfer, right after.
            if db_limit and workload in DB_LIMIT_WORKLOADS:
                keep(
                    measure_pgbench(
                        dsn, inputs, workload, concurrency, plan.warmup_s, plan.measure_s
                    )
                )
        if workload in plan.open_loop_workloads:
            for fraction in plan.open_loop_fractions:
                rate = round(best * fraction)
                if rate > 0:
                    spec = LoadSpec(workload, 0, rate, plan.warmup_s, plan.measure_s)
                    keep(measure_service(server, clients, spec, pg_pid))
    return points


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} x {model}, {memory_kb / 2**20:.0f} GiB, Linux "
        f"{platform.release()}, Python {platform.python_version()}, grpcio {grpc.__version__}"
    )


async def _postgres_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


async def _verify(dsn: str) -> dict[str, Any]:
    result = await verify_ledger(dsn)
    counts = ", ".join(f"{n:,} {name}" for name, n in result.counts.items())
    lines = [f"{counts}; checked in {result.duration_s:.1f} s."]
    lines += [f"- violated: {c.name}: {c.violations[:3]}" for c in result.checks if not c.ok]
    return {
        "ok": result.ok,
        "verdict": "clean" if result.ok else "VIOLATIONS",
        "summary": "\n".join(lines),
        "counts": result.counts,
    }


def _write(results: Path, run: dict[str, Any], points: list[Point]) -> str:
    results.mkdir(parents=True, exist_ok=True)
    (results / "runs").mkdir(exist_ok=True)
    text = report.markdown(run, points)
    data = json.dumps(report.as_json(run, points), indent=2)
    stamp = run["started_at"].replace(":", "").replace("-", "")
    for path in (results / "latest.md", results / "runs" / f"{stamp}-{run['plan']}.md"):
        path.write_text(text)
    for path in (results / "latest.json", results / "runs" / f"{stamp}-{run['plan']}.json"):
        path.write_text(data + "\n")
    chart.draw(points, results / "latest.png", f"moneymovement make {run['plan']}, {stamp}")
    return text


def main() -> int:
    args = _parse_args()
    plan = _plan(args)
    workloads = ("uniform",) if plan.name == "profile" else tuple(args.workloads or WORKLOADS)
    overrides = dict(item.split("=", 1) for item in args.server_env)
    started = time.time()
    run: dict[str, Any] = {
        "plan": plan.name,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "server_env": " ".join(args.server_env),
        "accounts": plan.accounts,
        "warmup_s": plan.warmup_s,
        "measure_s": plan.measure_s,
    }
    with bench_database() as (dsn, pg_pid):
        run["machine"] += f", PostgreSQL {asyncio.run(_postgres_version(dsn))}"
        tenant = asyncio.run(prepare(dsn, plan.accounts))
        log = args.results / "server.log"
        with running_server(dsn, overrides, log) as server:
            inputs = asyncio.run(_probe(server, dsn, tenant))
            pool = ClientPool(server.target, tenant.token, tenant.accounts, HOT_ACCOUNT)
            with pool as clients:
                if plan.name == "profile":
                    points = [profile_server(server, clients, plan, pg_pid, args.results)]
                else:
                    points = _measure_all(
                        plan,
                        workloads,
                        dsn,
                        server,
                        clients,
                        inputs,
                        pg_pid,
                        db_limit=not args.no_db_limit,
                    )
        run["verify"] = asyncio.run(_verify(dsn))
    report.add_ratios(points)
    run["wall_s"] = time.time() - started
    if plan.name == "profile":
        print(f"verify: {run['verify']['verdict']}\n{run['verify']['summary']}")
    else:
        print("\n" + _write(args.results, run, points))
    return 0 if run["verify"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
