"""reverse: posted money moved back by a linked transfer; and a random ledger that keeps
every total equal to the sum of its entries."""

import random
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.funds import NO_USAGE
from moneymovement.domain.holds import (
    capture_limit,
    expire_hold,
    extend_hold,
    increment_hold,
    post_hold,
    void_hold,
)
from moneymovement.domain.reversals import ReversalRequest, reverse
from moneymovement.domain.transfers import (
    Entry,
    EventKind,
    NewTransfer,
    Transfer,
    TransferEvent,
    TransferSpec,
    TransferState,
    open_transfer,
)
from tests.unit.ledger_builders import ALICE, BOB, LATER, NOW, START, book, make_account

CAROL = "acct_carolccccccccccccccccccccc"
ORIGINAL_ID = "tr_originalooooooooooooooooo"


def pay(
    accounts: dict[str, Account],
    amount_minor: int = 2_500,
    transfer_id: str = ORIGINAL_ID,
    debit: str = ALICE,
    credit: str = BOB,
    **changes: object,
) -> Transfer:
    spec = replace(
        TransferSpec(
            debit_account_id=debit,
            credit_account_id=credit,
            amount_minor=amount_minor,
            currency_code="USD",
        ),
        **changes,
    )
    return open_transfer(accounts, spec, NewTransfer(transfer_id, "req-pay", NOW))[0]


def undo(
    accounts: dict[str, Account],
    original: Transfer,
    amount_minor: int = 0,
    reversal_id: str = "tr_reversal1rrrrrrrrrrrrrrrrr",
    at: datetime = LATER,
) -> tuple[Transfer, Transfer, list[Entry]]:
    new = NewTransfer(reversal_id, f"req-{reversal_id}", at)
    reversal, updated, entries, _ = reverse(
        accounts, original, ReversalRequest(original.id, amount_minor), new, [], NO_USAGE
    )
    return reversal, updated, entries


def refusal(accounts: dict[str, Account], original: Transfer, amount_minor: int = 0) -> Rejected:
    before = dict(accounts)
    with pytest.raises(Rejected) as caught:
        undo(accounts, original, amount_minor)
    for key, account in before.items():
        assert accounts[key] is account
    return caught.value


# --- successful reversals --------------------------------------------------------------


@pytest.mark.parametrize(("asked", "moved"), [(0, 2_500), (2_500, 2_500), (900, 900)])
def test_reversal_moves_money_back_on_a_linked_transfer(asked: int, moved: int) -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    original = pay(accounts, 2_500)

    reversal, updated, entries = undo(accounts, original, asked)

    assert reversal.id == "tr_reversal1rrrrrrrrrrrrrrrrr"
    assert reversal.reversal_of_id == ORIGINAL_ID
    assert (reversal.debit_account_id, reversal.credit_account_id) == (BOB, ALICE)
    assert reversal.amount_minor == reversal.posted_amount_minor == moved
    assert reversal.state is TransferState.POSTED
    assert reversal.request_id == "req-tr_reversal1rrrrrrrrrrrrrrrrr"
    assert [(e.account_id, e.direction, e.kind, e.amount_minor) for e in entries] == [
        (BOB, Direction.DEBIT, EntryKind.POSTED, moved),
        (ALICE, Direction.CREDIT, EntryKind.POSTED, moved),
    ]
    assert {e.transfer_id for e in entries} == {reversal.id}
    assert accounts[ALICE].balances.posted(NormalBalance.CREDIT) == 7_500 + moved
    assert accounts[BOB].balances.posted(NormalBalance.CREDIT) == 12_500 - moved
    assert (accounts[ALICE].version, accounts[BOB].version) == (3, 3)

    assert updated.reversed_amount_minor == moved
    assert updated.reversal_ids == (reversal.id,)
    assert updated.updated_at == LATER
    assert updated.state is TransferState.POSTED
    assert updated.posted_amount_minor == 2_500
    assert updated.history == (
        *original.history,
        TransferEvent(EventKind.REVERSED, moved, LATER, reversal.request_id, reversal.id),
    )
    # The original passed in is a frozen value and stays as it was.
    assert original.reversed_amount_minor == 0


def test_partial_reversals_are_bounded_by_what_remains() -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    original = pay(accounts, 2_500)

    first, original, _ = undo(accounts, original, 1_000, "tr_reversal1rrrrrrrrrrrrrrrrr")
    second, original, _ = undo(accounts, original, 1_000, "tr_reversal2rrrrrrrrrrrrrrrrr")
    error = refusal(accounts, original, 501)

    assert error.reason is Reason.REVERSAL_EXCEEDS_ORIGINAL
    assert error.metadata == {"transfer_id": ORIGINAL_ID, "remaining_minor": "500"}
    assert original.reversed_amount_minor == 2_000
    assert original.reversal_ids == (first.id, second.id)
    assert [e.related_transfer_id for e in original.history[1:]] == [first.id, second.id]

    third, original, _ = undo(accounts, original, 0, "tr_reversal3rrrrrrrrrrrrrrrrr")
    assert third.amount_minor == 500
    assert original.reversed_amount_minor == 2_500
    assert accounts[ALICE].balances.posted(NormalBalance.CREDIT) == 10_000
    assert accounts[BOB].balances.posted(NormalBalance.CREDIT) == 10_000

    error = refusal(accounts, original, 0)
    assert error.reason is Reason.REVERSAL_EXCEEDS_ORIGINAL
    assert error.metadata["remaining_minor"] == "0"


def test_reversal_of_a_posted_hold_is_bounded_by_the_captured_amount() -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    hold = pay(accounts, 2_500, pending=True)
    captured, _, _ = post_hold(accounts, hold, 1_000, NOW + timedelta(minutes=1), "req-post")

    error = refusal(accounts, captured, 1_001)
    assert error.reason is Reason.REVERSAL_EXCEEDS_ORIGINAL
    assert error.metadata["remaining_minor"] == "1000"

    reversal, updated, _ = undo(accounts, captured, 0)
    assert reversal.amount_minor == 1_000
    assert updated.reversed_amount_minor == 1_000
    assert accounts[ALICE].balances == replace(
        START, posted_debits_minor=1_000, posted_credits_minor=11_000
    )


# --- refused reversals -----------------------------------------------------------------


@pytest.mark.parametrize(
    "state", [TransferState.PENDING, TransferState.VOIDED, TransferState.EXPIRED]
)
def test_only_a_posted_transfer_can_be_reversed(state: TransferState) -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    transfer = pay(accounts, 2_500, pending=True, hold_timeout_s=60.0)
    if state is TransferState.VOIDED:
        transfer, _ = void_hold(accounts, transfer, NOW, "req-void")
    elif state is TransferState.EXPIRED:
        ended = expire_hold(accounts, transfer, NOW + timedelta(seconds=60))
        assert ended is not None
        transfer = ended[0]
    assert transfer.state is state

    error = refusal(accounts, transfer, 0)

    assert error.reason is Reason.TRANSFER_NOT_POSTED
    assert error.metadata == {"transfer_id": ORIGINAL_ID, "state": state.value}


def test_a_payee_that_spent_the_money_cannot_pay_it_back() -> None:
    accounts = book(
        make_account(ALICE),
        make_account(BOB, balances=Balances()),
        make_account(CAROL, balances=Balances()),
    )
    original = pay(accounts, 2_500)
    pay(accounts, 2_000, "tr_spentsssssssssssssssssssss", debit=BOB, credit=CAROL)

    error = refusal(accounts, original, 0)

    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert error.metadata == {
        "account_id": BOB, "asked_minor": "2500", "available_minor": "500",
        "floor_minor": "0", "pending_availability_minor": "0", "reserved_minor": "0",
        "minimum_reserve_minor": "0",
    }  # fmt: skip
    reversal, _, _ = undo(accounts, original, 500)
    assert reversal.amount_minor == 500
    assert accounts[BOB].balances.available(NormalBalance.CREDIT) == 0


def test_a_hold_on_the_payee_counts_against_a_reversal() -> None:
    accounts = book(make_account(ALICE), make_account(BOB, balances=Balances()))
    original = pay(accounts, 2_500)
    pay(accounts, 2_000, "tr_heldhhhhhhhhhhhhhhhhhhhhhh", debit=BOB, credit=ALICE, pending=True)

    error = refusal(accounts, original, 501)

    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert error.metadata == {
        "account_id": BOB, "asked_minor": "501", "available_minor": "500",
        "floor_minor": "0", "pending_availability_minor": "0", "reserved_minor": "0",
        "minimum_reserve_minor": "0",
    }  # fmt: skip


@pytest.mark.parametrize("side", [ALICE, BOB])
def test_a_frozen_account_refuses_a_reversal(side: str) -> None:
    accounts = book(make_account(ALICE), make_account(BOB))
    original = pay(accounts, 2_500)
    accounts[side] = replace(accounts[side], state=AccountState.FROZEN)

    error = refusal(accounts, original, 0)

    assert error.reason is Reason.ACCOUNT_FROZEN
    assert error.metadata == {"account_id": side, "scope": "ALL", "freeze_reason": ""}


# --- conservation ----------------------------------------------------------------------

FUNDING = "acct_funding0000000000000000000"


def ledger_accounts(rng: random.Random) -> dict[str, Account]:
    """A funding account that may go below zero and five with varied policies."""
    accounts = {
        FUNDING: make_account(FUNDING, overdraft_mode=OverdraftMode.UNLIMITED, balances=Balances())
    }
    modes = [OverdraftMode.NONE, OverdraftMode.NONE, OverdraftMode.LIMITED, OverdraftMode.UNLIMITED]
    for index in range(5):
        account_id = f"acct_member{index}{'m' * 19}"
        mode = rng.choice(modes)
        accounts[account_id] = make_account(
            account_id,
            normal_balance=rng.choice(list(NormalBalance)),
            overdraft_mode=mode,
            overdraft_limit_minor=3_000 if mode is OverdraftMode.LIMITED else 0,
            balances=Balances(),
        )
    return accounts


def totals_from(entries: list[Entry], account_id: str) -> Balances:
    def total(direction: Direction, kind: EntryKind) -> int:
        return sum(
            e.amount_minor
            for e in entries
            if e.account_id == account_id and e.direction is direction and e.kind is kind
        )

    captured_debits = total(Direction.DEBIT, EntryKind.CAPTURED)
    captured_credits = total(Direction.CREDIT, EntryKind.CAPTURED)
    return Balances(
        posted_debits_minor=total(Direction.DEBIT, EntryKind.POSTED) + captured_debits,
        posted_credits_minor=total(Direction.CREDIT, EntryKind.POSTED) + captured_credits,
        pending_debits_minor=total(Direction.DEBIT, EntryKind.PENDING)
        - total(Direction.DEBIT, EntryKind.PENDING_RELEASED)
        - captured_debits,
        pending_credits_minor=total(Direction.CREDIT, EntryKind.PENDING)
        - total(Direction.CREDIT, EntryKind.PENDING_RELEASED)
        - captured_credits,
    )


@pytest.mark.parametrize("seed", [7, 20250301, 987_654_321])
def test_random_ledger_keeps_every_total_equal_to_its_entries(seed: int) -> None:
    rng = random.Random(seed)
    accounts = ledger_accounts(rng)
    ids = sorted(accounts)
    transfers: dict[str, Transfer] = {}
    entries: list[Entry] = []
    done: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    now = NOW

    for step in range(500):
        now += timedelta(seconds=rng.randint(0, 1_800))
        new = NewTransfer(f"tr_step{step:05d}{'s' * 16}", f"req-{step}", now)
        operation = rng.choice(
            ["pay", "pay", "hold", "hold", "post", "capture", "capture", "increment", "extend",
             "void", "expire", "reverse"]
        )  # fmt: skip
        existing = [transfers[key] for key in sorted(transfers)]
        pending = [t for t in existing if t.state is TransferState.PENDING]
        hold_steps = {"post", "capture", "increment", "extend", "void", "expire"}
        if operation in hold_steps and pending and rng.random() < 0.8:
            target = rng.choice(pending)
        elif existing:
            target = rng.choice(existing)
        else:
            operation = "pay"
        before = dict(accounts)
        try:
            if operation in {"pay", "hold"}:
                debit, credit = rng.sample(ids, 2)
                if rng.random() < 0.3:
                    debit = FUNDING
                spec = TransferSpec(
                    debit_account_id=debit,
                    credit_account_id=credit if credit != debit else ids[1],
                    amount_minor=rng.randint(1, 8_000),
                    currency_code="USD",
                    pending=operation == "hold",
                    hold_timeout_s=rng.choice([600.0, 3 * 3600.0, 86_400.0, 7 * 86_400.0]),
                    over_capture_bps=rng.choice([0, 1_500]) if operation == "hold" else 0,
                )
                made, written, _ = open_transfer(accounts, spec, new)
                transfers[made.id] = made
            elif operation in {"post", "capture"}:
                # A final capture (maybe past the hold, within or beyond its tolerance),
                # or one that leaves the rest held.
                most = capture_limit(target) - target.posted_amount_minor
                amount = rng.choice([0, most, most, rng.randint(1, most + 500)])
                if operation == "capture":  # mostly a part, leaving the rest held
                    amount = rng.choice([amount, rng.randint(1, max(1, target.held_minor // 3))])
                made, written, _ = post_hold(
                    accounts, target, amount, now, new.request_id, final=operation == "post"
                )
                transfers[made.id] = made
            elif operation == "increment":
                amount = rng.randint(1, 3_000)
                made, written = increment_hold(accounts, target, amount, now, new.request_id)
                transfers[made.id] = made
            elif operation == "extend":
                later = now + timedelta(seconds=rng.randint(-3_600, 20 * 86_400))
                made = extend_hold(target, later, now, new.request_id)
                written = []
                transfers[made.id] = made
            elif operation == "void":
                made, written = void_hold(accounts, target, now, new.request_id)
                transfers[made.id] = made
            elif operation == "expire":
                ended = expire_hold(accounts, target, now)
                if ended is None:
                    assert all(accounts[key] is a for key, a in before.items())
                    refused[operation] += 1
                    continue
                made, written = ended
                transfers[made.id] = made
            else:
                remaining = target.posted_amount_minor - target.reversed_amount_minor
                amount = rng.choice([0, rng.randint(1, max(remaining, 1) + 300)])
                request = ReversalRequest(target.id, amount)
                made, updated, written, _ = reverse(accounts, target, request, new, [], NO_USAGE)
                transfers[made.id] = made
                transfers[updated.id] = updated
        except Rejected as error:
            reasons[f"{operation}:{error.reason}"] += 1
            # A refused step changes nothing.
            assert accounts.keys() == before.keys()
            assert all(accounts[key] is a for key, a in before.items())
            refused[operation] += 1
            continue
        entries += written
        done[f"{operation}:{made.state.value}"] += 1

    # The run exercised every path, refusals included.
    for outcome in [
        "pay:POSTED", "hold:PENDING", "post:POSTED", "capture:PENDING", "increment:PENDING",
        "extend:PENDING", "void:VOIDED", "reverse:POSTED",
    ]:  # fmt: skip
        assert done[outcome] > 0, (outcome, done, reasons)
    # Some holds were captured in several steps, some past their amount.
    captured = [t for t in transfers.values() if sum(
        e.kind in (EventKind.CAPTURED, EventKind.POSTED) for e in t.history) > 1]  # fmt: skip
    assert captured, done
    assert any(t.posted_amount_minor > t.amount_minor for t in transfers.values()), reasons
    assert any(t.state is TransferState.EXPIRED for t in transfers.values()), done
    assert sum(refused.values()) > 0
    assert any(0 < t.posted_amount_minor < t.amount_minor for t in transfers.values())

    for account_id, account in accounts.items():
        own = [e for e in entries if e.account_id == account_id]
        assert account.balances == totals_from(entries, account_id), account_id
        assert [e.account_version for e in own] == list(range(2, account.version + 1))
        if own:
            assert own[-1].balances_after == account.balances
        floor = account.floor_minor()
        if floor is not None:
            assert account.balances.available(account.normal_balance) >= floor

    balances = [account.balances for account in accounts.values()]
    posted_debits = sum(b.posted_debits_minor for b in balances)
    assert posted_debits == sum(b.posted_credits_minor for b in balances) > 0
    still_held = sum(t.held_minor for t in transfers.values())
    assert sum(b.pending_debits_minor for b in balances) == still_held
    assert sum(b.pending_credits_minor for b in balances) == still_held

    for transfer in transfers.values():
        reversals = [t for t in transfers.values() if t.reversal_of_id == transfer.id]
        assert transfer.reversed_amount_minor == sum(t.amount_minor for t in reversals)
        assert set(transfer.reversal_ids) == {t.id for t in reversals}
        assert transfer.reversed_amount_minor <= transfer.posted_amount_minor
        assert transfer.posted_amount_minor <= capture_limit(transfer)
        if transfer.state is TransferState.PENDING:
            assert transfer.posted_amount_minor < transfer.amount_minor
        else:
            assert (transfer.state is TransferState.POSTED) == (transfer.posted_amount_minor > 0)
