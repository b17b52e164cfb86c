"""Fills a database with a synthetic, consistent ledger, for measurements.

    python -m bench.seed_ledger --transfers 1000000 [--accounts 10000]
    (or python bench/seed_ledger.py ...)

Uses DATABASE_URL, or starts the embedded PostgreSQL under .data/bench-pg. Migrates,
writes the ledger set-wise in SQL (bench/seed_ledger.sql), ANALYZEs, then times
`verify` on it. Each step prints its line when it ends; meanwhile a status line says
which step of how many runs and for how long (redrawn on a terminal, a plain line every
10 s otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

if not __package__:  # run as a script: the repository's root, for `bench`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.progress import Status, bar, clock
from moneymovement.devdb import EmbeddedPostgres
from moneymovement.storage.migrate import migrate
from moneymovement.storage.queries import parse
from moneymovement.storage.verify import verify_ledger

HERE = Path(__file__).resolve().parent
QUERIES = parse((HERE / "seed_ledger.sql").read_text())
# The SQL steps, in order; migrate comes before them, ANALYZE and verify after.
SQL_STEPS = (
    "seed_tenant",
    "seed_accounts",
    "seed_transfers",
    "seed_entries",
    "seed_account_totals",
    "seed_event_horizon",
)
STEPS = ("migrate", *SQL_STEPS, "analyze", "verify")


class _Progress:
    """Which step of STEPS runs, since when: the status line (a plain line per step and
    every 10 s when not on a terminal)."""

    def __init__(self) -> None:
        self.started = self.step_started = time.monotonic()
        self.index = 0
        self.status = Status(self.render)

    def begin(self, name: str) -> None:
        self.index = STEPS.index(name)
        self.step_started = time.monotonic()
        self.status.show()

    def render(self) -> str:
        now = time.monotonic()
        return (
            f"seed_ledger {self.index + 1}/{len(STEPS)} {bar(self.index / len(STEPS), 10)} "
            f"{clock(now - self.started)} · {STEPS[self.index]} {clock(now - self.step_started)}"
        )


async def seed(dsn: str, accounts: int, transfers: int, tenant: str, progress: _Progress) -> None:
    progress.begin("migrate")
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    params = {
        "seed_tenant": (tenant,),
        "seed_accounts": (accounts, tenant),
        "seed_transfers": (transfers, tenant, accounts),
        "seed_entries": (tenant,),
        "seed_account_totals": (tenant,),
        "seed_event_horizon": (tenant,),
    }
    try:
        for name in SQL_STEPS:
            progress.begin(name)
            started = time.perf_counter()
            async with connection.transaction():
                status = await connection.execute(QUERIES[name], *params[name])
            print(f"{name:<22} {status:<20} {time.perf_counter() - started:7.1f} s", flush=True)
        progress.begin("analyze")
        started = time.perf_counter()
        await connection.execute("ANALYZE")
        print(f"{'analyze':<22} {'':<20} {time.perf_counter() - started:7.1f} s", flush=True)
    finally:
        await connection.close()


async def measure(dsn: str, args: argparse.Namespace) -> int:
    progress = _Progress()
    with progress.status:
        await seed(dsn, args.accounts, args.transfers, args.tenant, progress)
        progress.begin("verify")
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
