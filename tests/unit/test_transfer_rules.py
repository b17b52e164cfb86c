"""open_transfer: the checks before a transfer and the balanced pair of entries it writes."""

import random
from dataclasses import replace

import pytest

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.transfers import Entry, NewTransfer, TransferSpec, open_transfer
from tests.unit.ledger_builders import ALICE, BOB, NOW, book, make_account


def plan_transfer(
    accounts: dict[str, Account], transfer_id: str, spec: TransferSpec
) -> list[Entry]:
    """The entries open_transfer writes (the drafted transfer is tested elsewhere)."""
    return open_transfer(accounts, spec, NewTransfer(transfer_id, "req-1", NOW))[1]


TRANSFER_ID = "tr_aaaaaaaaaaaaaaaaaaaaaaaaaa"


def spec(amount_minor: int = 2_500, **changes: object) -> TransferSpec:
    base = TransferSpec(
        debit_account_id=ALICE,
        credit_account_id=BOB,
        amount_minor=amount_minor,
        currency_code="USD",
    )
    return replace(base, **changes)


def refusal(accounts: dict[str, Account], transfer: TransferSpec) -> Rejected:
    with pytest.raises(Rejected) as caught:
        plan_transfer(accounts, TRANSFER_ID, transfer)
    return caught.value


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [ALICE, BOB])
def test_missing_account(missing: str) -> None:
    present = BOB if missing == ALICE else ALICE

    error = refusal(book(make_account(present)), spec())

    assert error.reason is Reason.ACCOUNT_NOT_FOUND
    assert error.metadata == {"account_id": missing}


@pytest.mark.parametrize("side", [ALICE, BOB])
def test_currency_mismatch(side: str) -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    accounts[side] = replace(accounts[side], currency_code="EUR")

    error = refusal(accounts, spec())

    assert error.reason is Reason.CURRENCY_MISMATCH
    assert error.metadata == {"account_id": side, "account_currency_code": "EUR"}


@pytest.mark.parametrize("side", [ALICE, BOB])
@pytest.mark.parametrize(
    ("state", "reason"),
    [(AccountState.FROZEN, Reason.ACCOUNT_FROZEN), (AccountState.CLOSED, Reason.ACCOUNT_CLOSED)],
)
def test_frozen_or_closed_on_either_side(side: str, state: AccountState, reason: Reason) -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    accounts[side] = replace(accounts[side], state=state)

    error = refusal(accounts, spec())

    assert error.reason is reason
    assert error.metadata["account_id"] == side


def test_insufficient_funds_on_a_credit_normal_debit_side() -> None:
    accounts = book(make_account(ALICE), make_account(BOB))

    plan_transfer(dict(accounts), TRANSFER_ID, spec(10_000))  # all of it is fine
    error = refusal(accounts, spec(10_001))

    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert error.metadata == {
        "account_id": ALICE, "asked_minor": "10001", "available_minor": "10000",
        "floor_minor": "0", "pending_availability_minor": "0", "reserved_minor": "0",
        "minimum_reserve_minor": "0",
    }  # fmt: skip


def test_debit_normal_account_credited_below_its_floor_is_refused() -> None:
    # A DEBIT-normal account (an asset) shrinks when credited.
    asset = make_account(
        BOB, normal_balance=NormalBalance.DEBIT, balances=Balances(posted_debits_minor=700)
    )
    accounts = book(make_account(ALICE), asset)

    error = refusal(accounts, spec(701))

    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert error.metadata["account_id"] == BOB


# --- success ---------------------------------------------------------------------------


def test_success_writes_one_balanced_pair_and_updates_the_accounts() -> None:
    accounts = book(make_account(ALICE, version=4), make_account(BOB, version=9))

    entries = plan_transfer(accounts, TRANSFER_ID, spec(2_500))

    assert [(e.account_id, e.direction, e.kind, e.amount_minor) for e in entries] == [
        (ALICE, Direction.DEBIT, EntryKind.POSTED, 2_500),
        (BOB, Direction.CREDIT, EntryKind.POSTED, 2_500),
    ]
    assert {e.transfer_id for e in entries} == {TRANSFER_ID}
    assert accounts[ALICE].balances == Balances(
        posted_debits_minor=2_500, posted_credits_minor=10_000
    )
    assert accounts[BOB].balances == Balances(posted_credits_minor=12_500)
    assert (accounts[ALICE].version, accounts[BOB].version) == (5, 10)
    for entry in entries:
        assert entry.account_version == accounts[entry.account_id].version
        assert entry.balances_after == accounts[entry.account_id].balances


def test_pending_moves_pending_totals_not_posted_ones() -> None:
    accounts = book(make_account(ALICE), make_account(BOB))

    entries = plan_transfer(accounts, TRANSFER_ID, spec(2_500, pending=True))

    assert {e.kind for e in entries} == {EntryKind.PENDING}
    assert accounts[ALICE].balances == Balances(
        posted_credits_minor=10_000, pending_debits_minor=2_500
    )
    assert accounts[BOB].balances == Balances(
        posted_credits_minor=10_000, pending_credits_minor=2_500
    )
    assert accounts[ALICE].balances.available(NormalBalance.CREDIT) == 7_500


def test_a_hold_counts_against_available_funds() -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    plan_transfer(accounts, TRANSFER_ID, spec(6_000, pending=True))

    error = refusal(accounts, spec(4_001))

    assert error.reason is Reason.INSUFFICIENT_FUNDS


def test_random_transfers_conserve_money() -> None:
    rng = random.Random(20250301)
    accounts: dict[str, Account] = {}
    for _ in range(6):
        account_id = ids.new_id(ids.ACCOUNT)
        accounts[account_id] = make_account(
            account_id,
            normal_balance=rng.choice(list(NormalBalance)),
            overdraft_mode=OverdraftMode.UNLIMITED,
            balances=Balances(),
        )
    debits = credits = 0

    for _ in range(500):
        debit_id, credit_id = rng.sample(sorted(accounts), 2)
        amount = rng.randint(1, 1_000_000)
        transfer = spec(amount, debit_account_id=debit_id, credit_account_id=credit_id)
        for entry in plan_transfer(accounts, ids.new_id(ids.TRANSFER), transfer):
            if entry.direction is Direction.DEBIT:
                debits += entry.amount_minor
            else:
                credits += entry.amount_minor

    assert debits == credits > 0
    totals = [account.balances for account in accounts.values()]
    assert sum(b.posted_debits_minor for b in totals) == sum(b.posted_credits_minor for b in totals)
    assert sum(account.version for account in accounts.values()) == 6 + 2 * 500
