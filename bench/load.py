"""A closed-loop load generator for the real server, in separate client processes.

    python bench/load.py --duration 20 --concurrency 16 [--server-env KEY=VALUE ...]

Starts the embedded PostgreSQL (or uses DATABASE_URL), migrates, creates a tenant and
accounts (UNLIMITED overdraft, so no transfer is refused), starts `moneymovement serve`
as its own process, then runs client processes that each keep their share of the
concurrency busy with immediate transfers between random accounts, after a warm-up.
Prints transfers/s and latency percentiles, then runs `verify` on the database.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from moneymovement.client import MoneyMovementClient, MoneyMovementError, wait_until_serving
from moneymovement.devdb import EmbeddedPostgres
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.migrate import migrate
from moneymovement.storage.queries import parse
from moneymovement.storage.session import Database
from moneymovement.storage.verify import verify_ledger

HERE = Path(__file__).resolve().parent
SEED = parse((HERE / "seed_ledger.sql").read_text())


@dataclass(frozen=True)
class ClientJob:
    port: int
    token: str
    accounts: list[str]
    concurrency: int
    warmup_s: float
    duration_s: float
    seed: int


def _client(job: ClientJob, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results.put(asyncio.run(_client_loop(job)))


async def _client_loop(job: ClientJob) -> tuple[int, int, list[float]]:
    rng = random.Random(job.seed)
    latencies: list[float] = []
    errors = 0
    async with MoneyMovementClient(f"127.0.0.1:{job.port}", job.token) as client:
        start = time.perf_counter()
        measure_from = start + job.warmup_s
        stop_at = measure_from + job.duration_s

        async def worker() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < stop_at:
                debit, credit = rng.sample(job.accounts, 2)
                try:
                    await client.create_transfer(debit, credit, rng.randint(1, 1000), "USD")
                except MoneyMovementError:
                    if now >= measure_from:
                        errors += 1
                    continue
                done = time.perf_counter()
                if now >= measure_from and done <= stop_at:
                    latencies.append(done - now)

        await asyncio.gather(*(worker() for _ in range(job.concurrency)))
    return len(latencies), errors, latencies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _prepare(dsn: str, accounts: int) -> tuple[str, list[str]]:
    await migrate(dsn)
    tenant_name = f"bench-{uuid.uuid4().hex[:6]}"
    db = await Database.connect(dsn, max_size=2)
    try:
        issued = await TenantDirectory(db).create_tenant(tenant_name)
    finally:
        await db.close()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SEED["seed_accounts"], accounts, issued.tenant_id)
        await connection.execute(SEED["seed_event_horizon"], issued.tenant_id)
        rows = await connection.fetch(
            "SELECT account_id FROM accounts WHERE tenant_id = $1", issued.tenant_id
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return issued.token, [r["account_id"] for r in rows]


def run(dsn: str, args: argparse.Namespace) -> int:
    token, accounts = asyncio.run(_prepare(dsn, args.accounts))
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "MM_LISTEN_ADDRESS": f"127.0.0.1:{port}",
           "MM_LOG_LEVEL": "WARNING", "MM_LOG_FORMAT": "json", "MM_DB_POOL_MAX": "40"}  # fmt: skip
    env.update(dict(item.split("=", 1) for item in args.server_env))
    server = subprocess.Popen(
        [sys.executable, "-m", "moneymovement", "serve"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        asyncio.run(wait_until_serving(f"127.0.0.1:{port}"))
        context = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
        per_process = [args.concurrency // args.processes] * args.processes
        for i in range(args.concurrency % args.processes):
            per_process[i] += 1
        jobs = [
            ClientJob(port, token, accounts, n, args.warmup, args.duration, seed=i)
            for i, n in enumerate(per_process) if n
        ]  # fmt: skip
        processes = [context.Process(target=_client, args=(job, results)) for job in jobs]
        for process in processes:
            process.start()
        outcomes = [results.get() for _ in processes]
        for process in processes:
            process.join()
    finally:
        server.terminate()
        server.wait()
    done = sum(o[0] for o in outcomes)
    errors = sum(o[1] for o in outcomes)
    latencies = sorted(x for o in outcomes for x in o[2])

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    print(
        f"transfers/s {done / args.duration:8.1f}  p50 {pct(0.50):6.1f} ms  p95 {pct(0.95):6.1f} ms"
        f"  p99 {pct(0.99):6.1f} ms  errors {errors}  concurrency {args.concurrency}"
        f"  server env {' '.join(args.server_env) or '-'}",
        flush=True,
    )
    report = asyncio.run(verify_ledger(dsn))
    print(f"verify: {'clean' if report.ok else 'VIOLATIONS'} ({report.counts})")
    return 0 if report.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--server-env", nargs="*", default=[])
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        return run(os.environ["DATABASE_URL"], args)
    data_dir = HERE.parent / ".data" / "bench-pg"
    with EmbeddedPostgres(data_dir, settings={"max_connections": "200"}) as server:
        return run(server.dsn, args)


if __name__ == "__main__":
    raise SystemExit(main())
