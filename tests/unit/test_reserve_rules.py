"""The negative-balance reserve's pure rules (domain/reserve.py): which account may be
whose reserve, how much a reversal needs covered, how much of a credit repays the debt;
and the ledger moving both as marked transfers that keep debt = covers - recoveries."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from moneymovement.domain import reserve
from moneymovement.domain.accounts import Account, AccountState, FreezeScope, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.commands import (
    CreateTransfer,
    CreateTransfers,
    ReceiveInbound,
    ReturnInbound,
    ReverseTransfer,
)
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.funds import AvailabilityPolicy, FundsPolicy
from moneymovement.domain.ledger import Issued, Ledger
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import ReserveMovement, Transfer, TransferSpec
from tests.unit.ledger_builders import ALICE, BOB, NOW, book, make_account

SELLER = "acct_sellerssssssssssssssssss"
RESERVE = "acct_reserverrrrrrrrrrrrrrrrr"
HOLDER = "hld_" + "h" * 26


def seller(available: int = 0, debt: int = 0, **changes: object) -> Account:
    return make_account(
        SELLER,
        holder_id=HOLDER,
        balances=Balances(posted_credits_minor=available),
        negative_balance_reserve_account_id=RESERVE,
        reserve_debt_minor=debt,
        **changes,
    )


def test_shortfall_is_what_goes_past_the_spending_floor() -> None:
    account = seller(available=1000)
    assert reserve.shortfall_minor(account, 600) == 0
    assert reserve.shortfall_minor(account, 1000) == 0
    assert reserve.shortfall_minor(account, 1001) == 1
    assert reserve.shortfall_minor(account, 9000) == 8000
    limited = seller(
        available=1000, overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=500
    )
    assert reserve.shortfall_minor(limited, 2000) == 500
    unlimited = seller(available=0, overdraft_mode=OverdraftMode.UNLIMITED)
    assert reserve.shortfall_minor(unlimited, 10**9) == 0
    # Already below its floor (a limit raised since): all of the debit is short.
    below = seller(available=-100, overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=0)
    assert reserve.shortfall_minor(below, 50) == 50


def test_recovery_is_the_credit_up_to_the_debt_within_what_is_spendable() -> None:
    pot = make_account(RESERVE)
    after_credit = seller(available=4500, debt=9000)
    assert reserve.recovery_minor(after_credit, pot, 4500) == 4500
    assert reserve.recovery_minor(seller(2700, 2500), pot, 2700) == 2500
    assert reserve.recovery_minor(seller(100, 2500), pot, 2700) == 100
    assert reserve.recovery_minor(seller(2700, 0), pot, 2700) == 0
    assert reserve.recovery_minor(seller(2700, 10), pot, 0) == 0
    assert reserve.recovery_minor(seller(2700, 10), None, 2700) == 0
    frozen = seller(2700, 10, state=AccountState.FROZEN, freeze_scope=FreezeScope.DEBITS)
    assert reserve.recovery_minor(frozen, pot, 2700) == 0
    closed_pot = replace(pot, state=AccountState.CLOSED)
    assert reserve.recovery_minor(seller(2700, 10), closed_pot, 2700) == 0
    debits_frozen_pot = replace(pot, state=AccountState.FROZEN, freeze_scope=FreezeScope.DEBITS)
    assert reserve.recovery_minor(seller(2700, 10), debits_frozen_pot, 2700) == 10


@pytest.mark.parametrize(
    ("account_changes", "reserve_changes", "rule"),
    [
        ({"holder_id": ""}, {}, "NOT_HOLDER_ACCOUNT"),
        ({"holder_id": "seller-7"}, {}, "NOT_HOLDER_ACCOUNT"),  # a free-form holder string
        ({}, {"holder_id": HOLDER}, "HOLDER_OWNED"),
        ({}, {"currency_code": "EUR"}, "CURRENCY"),
        ({}, {"normal_balance": NormalBalance.DEBIT}, "NORMAL_BALANCE"),
        ({}, {"state": AccountState.CLOSED}, "CLOSED"),
        ({}, {"negative_balance_reserve_account_id": ALICE}, "HAS_RESERVE"),
        ({"funds_policy": FundsPolicy(availability=AvailabilityPolicy(2))}, {}, "FUNDS_POLICY"),
    ],
)
def test_each_ineligible_reserve_names_its_rule(
    account_changes: dict[str, Any], reserve_changes: dict[str, Any], rule: str
) -> None:
    account = replace(seller(), **account_changes)
    pot = replace(make_account(RESERVE), **reserve_changes)
    with pytest.raises(Rejected) as refused:
        reserve.require_eligible(account, RESERVE, pot)
    assert refused.value.reason is Reason.RESERVE_ACCOUNT_INELIGIBLE
    assert refused.value.metadata == {
        "account_id": SELLER, "reserve_account_id": RESERVE, "rule": rule,
        "field": "negative_balance_reserve_account_id",
    }  # fmt: skip


def test_a_missing_or_self_reserve_is_refused_and_a_platform_account_is_not() -> None:
    account = seller()
    for reserve_id, found, rule in ((RESERVE, None, "NOT_FOUND"), (SELLER, account, "SELF")):
        with pytest.raises(Rejected) as refused:
            reserve.require_eligible(account, reserve_id, found)
        assert refused.value.metadata["rule"] == rule
    reserve.require_eligible(account, RESERVE, make_account(RESERVE))


def _ledger(seller_minor: int, reserve_minor: int, debt: int = 0) -> Ledger:
    accounts = book(
        make_account(ALICE),  # the customer, 10,000
        seller(available=seller_minor, debt=debt),
        make_account(RESERVE, balances=Balances(posted_credits_minor=reserve_minor)),
        make_account(BOB),
    )
    return Ledger(NOW, accounts, {}, {})


def _reserve_moves(ledger: Ledger) -> list[Transfer]:
    return [t for t in ledger.writes().new_transfers if t.reserve_movement is not None]


def test_a_refund_the_seller_cannot_pay_is_covered_then_repaid() -> None:
    ledger = _ledger(seller_minor=0, reserve_minor=20000)
    charge = ledger.apply(CreateTransfer(TransferSpec(ALICE, SELLER, 9000, "USD")), Issued("c"))
    ledger.apply(CreateTransfer(TransferSpec(SELLER, BOB, 8000, "USD")), Issued("payout"))
    reversal, _ = ledger.apply(ReverseTransfer(ReversalRequest(charge.id)), Issued("refund"))
    [cover] = _reserve_moves(ledger)
    assert (cover.debit_account_id, cover.credit_account_id, cover.amount_minor) == (
        RESERVE, SELLER, 8000,
    )  # fmt: skip
    assert cover.reserve_movement is ReserveMovement.COVER
    assert cover.metadata == {
        "negative_balance_reserve": "COVER",
        "reversal_transfer_id": reversal.id,
    }
    assert ledger.accounts[SELLER].reserve_debt_minor == 8000
    assert ledger.accounts[SELLER].balances.available(NormalBalance.CREDIT) == 0

    # A batch crediting the seller twice repays from both, once each.
    items = [TransferSpec(ALICE, SELLER, 3000, "USD"), TransferSpec(ALICE, SELLER, 3000, "USD")]
    ledger.apply(CreateTransfers(items), Issued("charges"))
    recovery = _reserve_moves(ledger)[-1]
    assert recovery.reserve_movement is ReserveMovement.RECOVERY
    assert (recovery.debit_account_id, recovery.credit_account_id, recovery.amount_minor) == (
        SELLER, RESERVE, 6000,
    )  # fmt: skip
    assert ledger.accounts[SELLER].reserve_debt_minor == 2000
    ledger.apply(CreateTransfer(TransferSpec(ALICE, SELLER, 500, "USD")), Issued("more"))
    assert ledger.accounts[SELLER].reserve_debt_minor == 1500
    assert ledger.accounts[RESERVE].balances.available(NormalBalance.CREDIT) == 20000 - 1500


def test_a_reserve_that_cannot_pay_refuses_and_leaves_the_state_unchanged() -> None:
    ledger = _ledger(seller_minor=0, reserve_minor=100)
    charge = ledger.apply(CreateTransfer(TransferSpec(ALICE, SELLER, 900, "USD")), Issued("c"))
    ledger.apply(CreateTransfer(TransferSpec(SELLER, BOB, 900, "USD")), Issued("payout"))
    before = dict(ledger.accounts)
    with pytest.raises(Rejected) as refused:
        ledger.apply(ReverseTransfer(ReversalRequest(charge.id)), Issued("refund"))
    assert refused.value.reason is Reason.INSUFFICIENT_FUNDS
    assert refused.value.metadata["account_id"] == RESERVE
    assert dict(ledger.accounts) == before
    assert _reserve_moves(ledger) == []


def test_random_refunds_and_credits_keep_the_debt_equal_to_covers_less_recoveries() -> None:
    rng = random.Random(7)
    ledger = _ledger(seller_minor=0, reserve_minor=10**9)
    charges: list[Transfer] = []
    refusals: set[tuple[Reason, str]] = set()
    for step in range(300):
        seller_now = ledger.accounts[SELLER]
        kind = rng.choice(["charge", "charge", "payout", "refund"])
        try:
            if kind == "charge":
                spec = TransferSpec(
                    BOB if rng.random() < 0.5 else ALICE, SELLER, rng.randint(1, 900), "USD"
                )
                charges.append(ledger.apply(CreateTransfer(spec), Issued(f"{step}")))
            elif kind == "payout":
                spare = seller_now.balances.available(NormalBalance.CREDIT)
                if spare > 0:
                    spec = TransferSpec(SELLER, BOB, rng.randint(1, spare), "USD")
                    ledger.apply(CreateTransfer(spec), Issued(f"{step}"))
            elif charges:
                original = ledger.transfers[rng.choice(charges).id]
                left = original.posted_amount_minor - original.reversed_amount_minor
                if left:
                    request = ReversalRequest(original.id, rng.randint(1, left))
                    ledger.apply(ReverseTransfer(request), Issued(f"{step}"))
        except Rejected as refused:
            refusals.add((refused.reason, refused.metadata["account_id"]))
        account = ledger.accounts[SELLER]
        moves = _reserve_moves(ledger)
        covered = sum(t.amount_minor for t in moves if t.reserve_movement is ReserveMovement.COVER)
        recovered = sum(
            t.amount_minor for t in moves if t.reserve_movement is ReserveMovement.RECOVERY
        )
        assert account.reserve_debt_minor == covered - recovered >= 0
        assert account.balances.available(NormalBalance.CREDIT) >= 0
        # Whatever the seller holds, it holds only once its debt is gone.
        assert (
            account.reserve_debt_minor == 0 or account.balances.available(NormalBalance.CREDIT) == 0
        )
    assert any(t.reserve_movement is ReserveMovement.RECOVERY for t in _reserve_moves(ledger))
    # Only a customer without the money refuses: never the seller, never the reserve.
    assert refusals <= {(Reason.INSUFFICIENT_FUNDS, ALICE), (Reason.INSUFFICIENT_FUNDS, BOB)}


def test_a_bank_return_the_seller_has_spent_is_covered_and_the_next_inbound_repays() -> None:
    ledger = _ledger(seller_minor=0, reserve_minor=5000)
    settlement = "acct_settlementssssssssssssss"
    receive = ReceiveInbound("sim", "ref-1", SELLER, settlement, 3000, "USD")
    inbound = ledger.apply(receive, Issued("in-1"))
    ledger.apply(CreateTransfer(TransferSpec(SELLER, BOB, 2000, "USD")), Issued("spent"))
    returned = ledger.apply(ReturnInbound(inbound.id, inbound.transfer_id), Issued("ret"))
    assert returned is not None
    [cover] = _reserve_moves(ledger)
    assert (cover.debit_account_id, cover.amount_minor) == (RESERVE, 2000)
    assert cover.metadata["reversal_transfer_id"] == returned.return_transfer_id
    assert ledger.accounts[SELLER].reserve_debt_minor == 2000
    again = ReceiveInbound("sim", "ref-2", SELLER, settlement, 2500, "USD")
    ledger.apply(again, Issued("in-2"))
    assert ledger.accounts[SELLER].reserve_debt_minor == 0
    assert ledger.accounts[SELLER].balances.available(NormalBalance.CREDIT) == 500
    assert ledger.accounts[RESERVE].balances.available(NormalBalance.CREDIT) == 5000
