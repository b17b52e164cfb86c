"""`verify` on funds accessibility (docs/funds-availability.md): a ledger whose credits
were scheduled, released when due and early, reversed and captured passes; each broken
invariant of the scheduled parts is reported by its check, and only by it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import Command, CreateTransfer, ReleaseFunds
from moneymovement.domain.funds import (
    Availability,
    AvailabilityPolicy,
    FundsPolicy,
    ReservePolicy,
)
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import TransferSpec
from moneymovement.service.funds import FundsService
from moneymovement.service.idempotency import digest_of
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import UnitOfWork
from moneymovement.service.write_batch import BatchTransaction, Pending
from moneymovement.storage.verify import CHECKS, verify_ledger
from tests.integration.conftest import Ledger

POLICY = FundsPolicy(
    availability=AvailabilityPolicy(delay_days=2),
    reserve=ReservePolicy(rolling_percent_bps=1_000, rolling_days=30),
    early_release_allowed=True,
)
FUNDS_CHECKS = {
    "verify_pending_availability",
    "verify_funds_not_available_early",
    "verify_funds_end_once",
}


def funds_service(ledger: Ledger) -> FundsService:
    return FundsService(WritePipeline(ledger.database), UnitOfWork(ledger.database))


async def funds_ledger(ledger: Ledger) -> dict[str, str]:
    """A shop whose credits end every way a scheduled part can: released when due (a
    remainder, too), released early in part (with a fee), reversed in part, and still
    open; returns some of its ids."""
    funds = funds_service(ledger)
    caller = ledger.caller
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    shop = await ledger.open(funds_policy=POLICY)
    plain = await ledger.open()

    def credit(to: str, amount: int, **changes: object) -> TransferSpec:
        return TransferSpec(funding.id, to, amount, "USD", **changes)  # type: ignore[arg-type]

    plain_credit = await ledger.transfers.create(caller, "plain", credit(plain.id, 5_000))
    # Reserve 100 for 30 days, 900 for two days.
    sale = await ledger.transfers.create(caller, "sale", credit(shop.id, 1_000))
    # Its own short delay: reserve 200, 1,800 due in a moment.
    soon = Availability(delay=timedelta(seconds=0.3))
    quick = await ledger.transfers.create(
        caller, "quick", credit(shop.id, 2_000, availability=soon)
    )
    # Reserve 300, 2,700 in a day.
    day = Availability(delay=timedelta(days=1))
    slow = await ledger.transfers.create(caller, "slow", credit(shop.id, 3_000, availability=day))
    # 500 of the quick 1,800 early (oldest first): a remainder of 1,300.
    await funds.release(caller, "early", ReleaseFunds(shop.id, amount_minor=500))
    # A reversal of 1,000 of the slow credit: its reserve of 300, then 700 of the 2,700.
    await ledger.transfers.reverse(caller, "refund", ReversalRequest(slow.id, 1_000))
    # A captured hold, its delay counted from the capture: reserve 25, 225 in an hour.
    hour = Availability(delay=timedelta(hours=1))
    held = await ledger.transfers.create(
        caller, "hold", credit(shop.id, 400, pending=True, availability=hour)
    )
    await ledger.transfers.post(caller, "capture", held.id, 250)
    open_hold = await ledger.transfers.create(
        caller, "open-hold", credit(shop.id, 50, pending=True)
    )
    await asyncio.sleep(0.4)
    released = await funds.release_due(caller, shop.id)  # the quick remainder, 1,300
    assert [(f.amount_minor, f.ended_amount_minor) for f in released] == [(1_300, 1_300)]
    # 100 of the capture's 225 early, with a fee of 10 to the plain account.
    await funds.release(
        caller, "early-fee", ReleaseFunds(shop.id, amount_minor=100, fee_minor=10,
                                          fee_account_id=plain.id),
    )  # fmt: skip
    return {
        "shop": shop.id,
        "plain": plain.id,
        "plain_credit": plain_credit.id,
        "sale": sale.id,
        "quick": quick.id,
        "slow": slow.id,
        "held": held.id,
        "open_hold": open_hold.id,
    }


async def test_a_ledger_with_scheduled_funds_passes_every_check(ledger: Ledger, dsn: str) -> None:
    names = await funds_ledger(ledger)

    report = await verify_ledger(dsn)

    assert report.ok, report
    assert {c.name for c in report.checks} >= FUNDS_CHECKS
    assert [c.name for c in report.checks] == [name for name, _ in CHECKS]
    connection = await asyncpg.connect(dsn)
    try:
        ends = await connection.fetch(
            "SELECT coalesce(end_kind, 'OPEN') COLLATE \"C\" AS end_kind, count(*) AS parts, "
            "count(remainder_id) AS split FROM scheduled_funds GROUP BY 1 ORDER BY 1"
        )
        shop = await connection.fetchrow(
            "SELECT pending_availability_minor, reserved_minor FROM accounts WHERE account_id = $1",
            names["shop"],
        )
    finally:
        await connection.close()
    # Every way of ending, some of them in part: the ledger the checks passed is not a
    # trivial one.
    assert [tuple(row) for row in ends] == [
        ("OPEN", 6, 0),  # sale's two, quick's reserve, slow's remainder, the capture's two
        ("RELEASED", 1, 0),  # quick's remainder, when due
        ("RELEASED_EARLY", 2, 2),  # 500 of quick's 1,800; 100 of the capture's 225
        ("REVERSED", 2, 1),  # slow's reserve, and 700 of its 2,700
    ]
    # Open: sale 900 + slow 2,000 + capture 125 pending; reserves 100 + 200 + 25.
    assert tuple(shop or ()) == (3_025, 325)


# Each corruption, as SQL run as the owner with the CHECK constraints of the accounts and
# the scheduled parts dropped (as a bug, a manual fix or a restore would bypass them), and
# the checks that must then fail.
CORRUPTIONS = {
    "pending availability that no part explains": (
        "UPDATE accounts SET pending_availability_minor = pending_availability_minor + 5 "
        "WHERE account_id = $shop",
        {"verify_pending_availability"},
    ),
    "a reserve larger than its parts": (
        "UPDATE accounts SET reserved_minor = reserved_minor - 1 WHERE account_id = $shop",
        {"verify_pending_availability"},
    ),
    "an unended part the account's totals do not count": (
        "INSERT INTO scheduled_funds (tenant_id, funds_id, account_id, transfer_id, kind, "
        "amount_minor, available_at, created_at) "
        "SELECT tenant_id, 'funds_ghostgggggggggggggggggggg', credit_account_id, transfer_id, "
        "'AVAILABILITY', 1, now() + interval '1 day', now() "
        "FROM transfers WHERE transfer_id = $plain_credit",
        {"verify_pending_availability"},
    ),
    "a part released by the sweeper before its time": (
        "WITH early AS ("
        " UPDATE scheduled_funds SET ended_at = now(), end_kind = 'RELEASED', "
        " ended_amount_minor = amount_minor "
        " WHERE transfer_id = $sale AND kind = 'AVAILABILITY' RETURNING account_id, amount_minor"
        ") UPDATE accounts AS a "
        "SET pending_availability_minor = a.pending_availability_minor - e.amount_minor "
        "FROM early AS e WHERE a.account_id = e.account_id",
        {"verify_funds_not_available_early"},
    ),
    "a part ended in part that names no remainder": (
        "UPDATE scheduled_funds SET remainder_id = NULL "
        "WHERE transfer_id = $slow AND end_kind = 'REVERSED' AND remainder_id IS NOT NULL",
        {"verify_funds_end_once"},
    ),
    "a remainder for more than what its parent left": (
        "WITH grown AS ("
        " UPDATE scheduled_funds SET amount_minor = amount_minor + 1 "
        " WHERE transfer_id = $slow AND remainder_of_id IS NOT NULL RETURNING account_id"
        ") UPDATE accounts SET pending_availability_minor = pending_availability_minor + 1 "
        "WHERE account_id IN (SELECT account_id FROM grown)",
        {"verify_funds_end_once"},
    ),
    "an open part that names a remainder": (
        "UPDATE scheduled_funds SET remainder_id = funds_id "
        "WHERE transfer_id = $sale AND kind = 'RESERVE'",
        {"verify_funds_end_once"},
    ),
    "a part on another account than its credit's": (
        "WITH moved AS ("
        " UPDATE scheduled_funds SET account_id = $plain "
        " WHERE transfer_id = $sale AND kind = 'RESERVE' RETURNING amount_minor"
        ") UPDATE accounts SET reserved_minor = reserved_minor "
        "   + CASE account_id WHEN $plain THEN 1 ELSE -1 END * (SELECT amount_minor FROM moved) "
        "WHERE account_id IN ($plain, $shop)",
        {"verify_funds_end_once"},
    ),
    "parts that add up to more than their credit": (
        "WITH extra AS ("
        " INSERT INTO scheduled_funds (tenant_id, funds_id, account_id, transfer_id, kind, "
        " amount_minor, available_at, created_at) "
        " SELECT tenant_id, 'funds_extraeeeeeeeeeeeeeeeeeeee', credit_account_id, transfer_id, "
        " 'RESERVE', 1, now() + interval '30 days', now() "
        " FROM transfers WHERE transfer_id = $sale RETURNING account_id"
        ") UPDATE accounts SET reserved_minor = reserved_minor + 1 "
        "WHERE account_id IN (SELECT account_id FROM extra)",
        {"verify_funds_end_once"},
    ),
    "a part of a hold that is still pending": (
        "WITH held AS ("
        " INSERT INTO scheduled_funds (tenant_id, funds_id, account_id, transfer_id, kind, "
        " amount_minor, available_at, created_at) "
        " SELECT tenant_id, 'funds_heldhhhhhhhhhhhhhhhhhhhhh', credit_account_id, transfer_id, "
        " 'AVAILABILITY', 50, now() + interval '1 day', now() "
        " FROM transfers WHERE transfer_id = $open_hold RETURNING account_id"
        ") UPDATE accounts SET pending_availability_minor = pending_availability_minor + 50 "
        "WHERE account_id IN (SELECT account_id FROM held)",
        {"verify_funds_end_once"},
    ),
    "more of a credit unended than its reversals left": (
        "UPDATE transfers SET reversed_amount_minor = 2500 WHERE transfer_id = $slow",
        {"verify_funds_end_once", "verify_reversals_within_original"},
    ),
}


DROP_CHECKS = """
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
             WHERE contype = 'c'
               AND conrelid IN ('accounts'::regclass, 'scheduled_funds'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
    END LOOP;
END $$;
"""


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
async def test_each_corruption_of_scheduled_funds_is_reported_by_its_check(
    ledger: Ledger, dsn: str, corruption: str
) -> None:
    names = await funds_ledger(ledger)
    sql, expected = CORRUPTIONS[corruption]
    for key, value in sorted(names.items(), key=lambda item: -len(item[0])):
        sql = sql.replace(f"${key}", f"'{value}'")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(DROP_CHECKS)
        status = await connection.execute(sql)
    finally:
        await connection.close()
    assert not status.endswith(" 0"), f"the corruption changed nothing: {status}"

    report = await verify_ledger(dsn)

    failed = {check.name: check.violations for check in report.checks if not check.ok}
    assert set(failed) == expected, failed
    assert not report.ok


async def test_the_overdraft_check_counts_what_is_not_available_yet(
    ledger: Ledger, dsn: str
) -> None:
    names = await funds_ledger(ledger)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(DROP_CHECKS)
        # As much pending availability again as the shop has available: below zero.
        await connection.execute(
            "UPDATE scheduled_funds SET amount_minor = amount_minor + 100000 "
            "WHERE transfer_id = $1 AND kind = 'AVAILABILITY'",
            names["sale"],
        )
        await connection.execute(
            "UPDATE accounts SET pending_availability_minor = pending_availability_minor "
            "+ 100000 WHERE account_id = $1",
            names["shop"],
        )
    finally:
        await connection.close()

    report = await verify_ledger(dsn)

    failed = {check.name for check in report.checks if not check.ok}
    assert failed == {"verify_overdraft_policy", "verify_funds_end_once"}


async def test_a_part_created_and_released_in_one_batch_ends_after_it_was_created(
    ledger: Ledger, dsn: str
) -> None:
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    shop = await ledger.open(funds_policy=POLICY)
    loop = asyncio.get_running_loop()

    def pending(request_id: str, command: Command[Any]) -> Pending:
        keys: frozenset[tuple[str, str]] = frozenset()
        return Pending(ledger.caller, request_id, command, digest_of(command), keys,
                       loop.create_future())  # fmt: skip

    # A credit and an early release of it, arriving together: the pipeline may put both
    # in one batch (their keys meet only each other's, not a running batch's).
    credit = CreateTransfer(TransferSpec(funding.id, shop.id, 1_000, "USD"))
    release = ReleaseFunds(shop.id, amount_minor=900)
    answers = await BatchTransaction(ledger.database).commit(
        ledger.caller.tenant_id, [pending("credit", credit), pending("release", release)]
    )
    assert [a.error for a in answers] == [None, None]

    report = await verify_ledger(dsn)

    assert report.ok, {c.name: c.violations for c in report.checks if not c.ok}
