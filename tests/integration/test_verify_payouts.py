"""`verify` on payouts and inbound transfers (docs/payouts.md): a ledger with payouts in
every state and an inbound credit received and one returned passes; a payout or inbound
transfer whose state no longer matches its money is reported by `verify_payouts`, and
only by it."""

from __future__ import annotations

import asyncpg
import pytest

from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import CreatePayout
from moneymovement.domain.payouts import PayoutMethod, PayoutState
from moneymovement.domain.transfers import TransferSpec
from moneymovement.service.payouts import PayoutService
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import UnitOfWork
from moneymovement.storage.verify import verify_ledger
from tests.integration.conftest import Ledger


async def payouts_ledger(ledger: Ledger) -> dict[str, str]:
    """A seller with a payout in each state and two inbound credits (one returned);
    returns their ids."""
    service = PayoutService(WritePipeline(ledger.database), UnitOfWork(ledger.database), 0)
    caller = ledger.caller
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    seller = await ledger.open()
    fees = await ledger.open()
    await ledger.transfers.create(
        caller, "fund", TransferSpec(funding.id, seller.id, 100_000, "USD")
    )
    bank = await service.create_external_account(
        caller, "dest", rail="simulated", currency_code="USD", routing_reference="1",
        account_number="12345678",
    )  # fmt: skip
    names = {"seller": seller.id}
    for step, end in enumerate(
        ("PENDING", "PROCESSING", "POSTED", "FAILED", "CANCELED", "RETURNED")
    ):
        made = await service.create_payout(
            caller, f"payout-{step}",
            CreatePayout(seller.id, bank.id, 1_000 + step, "USD", PayoutMethod.INSTANT,
                         fee_minor=10, fee_account_id=fees.id),
        )  # fmt: skip
        names[end] = made.id
        if end == "CANCELED":
            await service.cancel_payout(caller, f"cancel-{step}", made.id)
            continue
        if end == "PENDING":
            continue
        made = await service.start(caller, made) or made
        if end in ("POSTED", "FAILED", "RETURNED"):
            await service.settle(caller, made, PayoutState(end), "reason")
    received = await service.receive(caller, "simulated", "wire-1", seller.id, 700, "USD", "")
    returned = await service.receive(caller, "simulated", "wire-2", seller.id, 300, "USD", "")
    await service.return_inbound(caller, "simulated", "wire-2", "R01")
    names["received"], names["returned_inbound"] = received.id, returned.id
    return names


async def test_payouts_in_every_state_pass(ledger: Ledger, dsn: str) -> None:
    names = await payouts_ledger(ledger)
    report = await verify_ledger(dsn)
    assert report.ok, [c for c in report.checks if not c.ok]
    connection = await asyncpg.connect(dsn)
    try:
        states = await connection.fetch("SELECT state FROM payouts ORDER BY state")
    finally:
        await connection.close()
    assert sorted(r["state"] for r in states) == sorted(
        ["PENDING", "PROCESSING", "POSTED", "FAILED", "CANCELED", "RETURNED"]
    )
    assert names["received"]


# A state changed without its money, or money moved without its state: as the owner.
CORRUPTIONS = {
    "posted without capture": "UPDATE payouts SET state = 'POSTED', settled_at = now() "
    "WHERE payout_id = $PROCESSING",
    "failed while held": "UPDATE payouts SET state = 'FAILED', settled_at = now() "
    "WHERE payout_id = $PENDING",
    "captured while pending": "UPDATE payouts SET state = 'PENDING', processing_at = NULL, "
    "settled_at = NULL WHERE payout_id = $POSTED",
    "canceled but captured": "UPDATE payouts SET state = 'CANCELED' WHERE payout_id = $POSTED",
    "another amount": "UPDATE payouts SET amount_minor = amount_minor + 1 "
    "WHERE payout_id = $FAILED",
    "inbound returned without its reversal": "UPDATE inbound_transfers SET state = 'RETURNED', "
    "return_transfer_id = transfer_id WHERE inbound_id = $received",
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
async def test_each_mismatch_is_reported_by_verify_payouts(
    ledger: Ledger, dsn: str, corruption: str
) -> None:
    names = await payouts_ledger(ledger)
    sql = CORRUPTIONS[corruption]
    for key, value in sorted(names.items(), key=lambda item: -len(item[0])):
        sql = sql.replace(f"${key}", f"'{value}'")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_check1, "
            "DROP CONSTRAINT IF EXISTS payouts_check2"
        )
        status = await connection.execute(sql)
    finally:
        await connection.close()
    assert status.endswith(" 1"), status

    report = await verify_ledger(dsn)

    failed = {check.name for check in report.checks if not check.ok}
    assert failed == {"verify_payouts"}
