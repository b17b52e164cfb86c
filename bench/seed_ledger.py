"""Fills a database with a synthetic, consistent ledger, for measurements.

    python bench/seed_ledger.py --transfers 1000000 [--accounts 10000]

Uses DATABASE_URL, or starts the embedded PostgreSQL under .data/bench-pg. Migrates,
writes the ledger set-wise in SQL (bench/seed_ledger.sql), ANALYZEs, then times
`verify` on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import asyncpg

from moneymovement.devdb import EmbeddedPostgres
from moneymovement.storage.migrate import migrate
from moneymovement.storage.queries import parse
from moneymovement.storage.verify import verify_ledger

HERE = Path(__file__).resolve().parent
QUERIES = parse((HERE / "seed_ledger.sql").read_text())


async def seed(dsn: str, accounts: int, transfers: int, tenant: str) -> None:
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    try:
        steps = [
            ("seed_tenant", (tenant,)),
            ("seed_accounts", (accounts, tenant)),
            ("seed_transfers", (transfers, tenant, accounts)),
            ("seed_entries", (tenant,)),
            ("seed_account_totals", (tenant,)),
            ("seed_event_horizon", (tenant,)),
        ]
        for name, params in steps:
            started = time.perf_counter()
            async with connection.transaction():
                status = await connection.execute(QUERIES[name], *params)
            print(f"{name:<22} {status:<20} {time.perf_counter() - started:7.1f} s", flush=True)
        started = time.perf_counter()
        await connection.execute("ANALYZE")
        print(f"{'analyze':<22} {'':<20} {time.perf_counter() - started:7.1f} s", flush=True)
    finally:
        await connection.close()


async def measure(dsn: str, args: argparse.Namespace) -> int:
    await seed(dsn, args.accounts, args.transfers, args.tenant)
    report = await verify_ledger(dsn)
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    verdict = "clean" if report.ok else "VIOLATIONS"
    print(f"verify: {verdict} on {counts} in {report.duration_s:.1f} s")
    for check in report.checks:
        if not check.ok:
            print("  violated:", check.name, check.violations[:3])
    return 0 if report.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--tenant", default="ten_seed")
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        return asyncio.run(measure(os.environ["DATABASE_URL"], args))
    data_dir = HERE.parent / ".data" / "bench-pg"
    with EmbeddedPostgres(data_dir, settings={"max_wal_size": "4GB"}) as server:
        return asyncio.run(measure(server.dsn, args))


if __name__ == "__main__":
    raise SystemExit(main())
