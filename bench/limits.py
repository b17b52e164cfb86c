"""What the database itself allows, measured with pgbench on the service's schema.

Three limits, each a pgbench script run as the service's database role (row-level
security applies), durable and SERIALIZABLE, at the service points' concurrencies:

- `one_trip`: the physical limit of one transfer. One statement per transaction,
  `SELECT mm_bench.transfer(...)` in autocommit, and the function does all of it: declare
  the tenant, lock, check, write (bench/limits.sql). One round trip, the least a client
  can do for one transfer in its own transaction.
- `batch_100`: one statement moving 100 random transfers in one transaction
  (`mm_bench.transfers`, set-wise with arrays and unnest), each with its own outcome
  row: the most grouping commands per transaction can get. Counted in transfers.
- `service_sql`: the service's own statements for one transfer (bench/transfer_sql.py),
  several round trips inside BEGIN ... COMMIT: what the service's write path costs
  PostgreSQL, its event included (the outbox: the tenant's event lock, a position from
  the tenant's sequence, the event row, pg_notify).
- `service_sql_no_events`: the same statements with the event left out (write_batch's
  events array empty): set against `service_sql` in the same run, the outbox's cost to
  the database.

The one-trip and 100-per-statement functions write no events: they are the limits of the
ledger's own work, as measured before the outbox.

Uniform picks two random accounts of the seeded ones; hot credits account HOT_ACCOUNT
every time (the same picks as bench/transfer_sql.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.transfer_sql import pick_transfer, sequence, transfer_script
from bench.workloads import BATCH_SIZE
from moneymovement.storage.queries import parse

QUERIES = parse((Path(__file__).resolve().parent / "limits.sql").read_text())
_INSTALL = (
    "install_schema",
    "grant_schema",
    "install_account_id",
    "install_within_floor",
    "install_transfer",
    "install_random_batch",
    "install_transfers",
)
# The functions run in autocommit: each statement is its own transaction, so the
# isolation level is the session's default. Generic plans, as in the service's writes.
_SETTINGS = {
    "default_transaction_isolation": "serializable",
    "plan_cache_mode": "force_generic_plan",
}


@dataclass(frozen=True)
class Limit:
    """One kind of database limit: its script's shape and what a transaction moves."""

    name: str
    title: str
    transfers_per_tx: int
    workloads: tuple[str, ...]  # "uniform", and "hot" where the limit has a hot variant


LIMITS = {
    limit.name: limit
    for limit in (
        Limit(
            "one_trip", "one transfer in one round trip (mm_bench.transfer)", 1, ("uniform", "hot")
        ),
        Limit(
            "batch_100",
            f"{BATCH_SIZE} transfers in one statement (mm_bench.transfers)",
            BATCH_SIZE,
            ("uniform",),
        ),
        Limit("service_sql", "the service's own SQL for one transfer", 1, ("uniform", "hot")),
        Limit(
            "service_sql_no_events",
            "the service's own SQL for one transfer, without its event",
            1,
            ("uniform",),
        ),
    )
}
# The limits that run the service's own statements (bench/transfer_sql.py).
SERVICE_SQL = ("service_sql", "service_sql_no_events")


def describe(limit: Limit) -> str:
    """The limit's title; for the service's SQL, with its sequence of queries."""
    if limit.name not in SERVICE_SQL:
        return limit.title
    try:
        return f"{limit.title}: {sequence()}"
    except Exception as error:  # the service's queries changed: say so, go on
        return f"{limit.title} (cannot build it: {type(error).__name__}: {error})"


def script(limit: Limit, *, hot: bool, with_trace_id: bool) -> str:
    """The pgbench script of `limit` (the uniform or the hot variant)."""
    if limit.name in SERVICE_SQL:
        events = limit.name == "service_sql"
        return transfer_script(hot=hot, with_trace_id=with_trace_id, events=events)
    if limit.name == "one_trip":
        trace_id = "md5(:tid)" if with_trace_id else "NULL"
        call = (
            "SELECT mm_bench.transfer(:tenant, mm_bench.account_id(:d), "
            "mm_bench.account_id(:c), 'USD', :amount, 'tr_' || :tid, :rid, "
            f"decode(:fingerprint, 'hex'), :outcome, {trace_id});"
        )
        return "\n".join([*pick_transfer(hot), call]) + "\n"
    if hot:
        raise ValueError(f"{limit.name} has no hot variant")
    return (
        "SELECT mm_bench.transfers(:tenant, b.debits, b.credits, b.amounts, b.transfer_ids,\n"
        "    b.request_ids, 'USD', decode(:fingerprint, 'hex'), :outcome)\n"
        f"FROM mm_bench.random_batch(:accounts, {BATCH_SIZE}) AS b;\n"
    )


def settings(limit: Limit) -> dict[str, str]:
    """Connection settings of `limit`'s script, beyond the service pool's."""
    return {} if limit.name in SERVICE_SQL else dict(_SETTINGS)


async def install(dsn: str) -> None:
    """Creates the schema mm_bench and its functions in the bench's database."""
    connection = await asyncpg.connect(dsn)
    try:
        for name in _INSTALL:
            await connection.execute(QUERIES[name])
    finally:
        await connection.close()


async def uninstall(dsn: str) -> None:
    """Drops the schema mm_bench (the ledger rows the limits wrote stay, and verify
    checks them with the rest)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(QUERIES["uninstall"])
    finally:
        await connection.close()
