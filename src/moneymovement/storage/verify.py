"""Reads the whole ledger in one consistent snapshot and reports broken invariants."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from moneymovement.storage.database import translated_errors
from moneymovement.storage.queries import query

# (query name, what it checks), in the order they run and are reported.
CHECKS = (
    # First: row-level security shows a reader that is not the owner nothing, and an
    # empty ledger would pass every check below.
    ("verify_reader_sees_every_tenant", "verify reads every tenant's rows"),
    ("verify_debits_equal_credits", "debits equal credits per currency and kind"),
    ("verify_transfers_balanced", "each transfer is one debit and one credit per kind"),
    ("verify_running_balances", "running balances follow from each entry"),
    ("verify_account_balances", "stored balances equal the newest entry's"),
    ("verify_pending_totals", "pending totals equal the open holds"),
    ("verify_holds_end_once", "holds end once and post at most what they held"),
    ("verify_reversals_within_original", "reversals stay within the posted amount"),
    ("verify_overdraft_policy", "no account is beyond its overdraft policy"),
    ("verify_pending_availability", "pending availability and reserves equal the open parts"),
    ("verify_funds_not_available_early", "no scheduled part is released before its time"),
    ("verify_funds_end_once", "scheduled parts end once; each remainder is its parent's"),
    ("verify_transfer_events", "each transfer change has its one event, each event its change"),
    ("verify_account_events", "each account has its events; the newest shows it as it is"),
    ("verify_payouts", "each payout's and inbound transfer's state matches its money"),
    ("verify_reserve_debts", "debts to negative-balance reserves equal covers less recoveries"),
)


# verify_ledger's progress: (steps done, steps in all, what runs now). The steps are the
# wait for the snapshot, each check, and the count of rows.
Progress = Callable[[int, int, str], None]
STEPS = len(CHECKS) + 2


@dataclass(frozen=True)
class CheckResult:
    """One invariant: how many rows break it (up to the limit) and the first of them."""

    name: str
    description: str
    violations: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        """Whether the invariant holds."""
        return not self.violations


@dataclass(frozen=True)
class Report:
    """The outcome of a verification."""

    checks: list[CheckResult]
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every invariant holds."""
        return all(check.ok for check in self.checks)


async def verify_ledger(
    dsn: str, *, max_violations: int = 100, on_progress: Progress | None = None
) -> Report:
    """Checks every invariant in one SERIALIZABLE READ ONLY DEFERRABLE snapshot.

    DEFERRABLE waits for a snapshot that no concurrent transaction can make anomalous,
    then runs without taking predicate locks: safe next to live traffic, and never
    cancelled by a serialization failure.

    Args:
        dsn: The database.
        max_violations: The most rows reported per check.
        on_progress: Called as each of the STEPS begins, with (steps done, STEPS, what):
            on a large ledger a check reads a whole table and takes a while.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    started = time.perf_counter()

    def step(done: int, what: str) -> None:
        if on_progress is not None:
            on_progress(done, STEPS, what)

    async with translated_errors():
        connection = await asyncpg.connect(dsn)
        try:
            transaction = connection.transaction(
                isolation="serializable", readonly=True, deferrable=True
            )
            step(0, "opening a consistent snapshot")
            async with transaction:
                results = []
                for done, (name, description) in enumerate(CHECKS, start=1):
                    step(done, description)
                    rows = await connection.fetch(query(name), max_violations)
                    results.append(CheckResult(name, description, [dict(r) for r in rows]))
                step(STEPS - 1, "counting rows")
                counts = dict(await connection.fetchrow(query("verify_counts")) or {})
        finally:
            await connection.close()
    return Report(results, counts, time.perf_counter() - started)
