"""Holds: open_transfer(pending=True), then post_hold, void_hold and expire_hold."""

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from moneymovement.domain.accounts import Account, AccountState
from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
from moneymovement.domain.errors import FieldReason, InvalidInput, Reason, Rejected
from moneymovement.domain.holds import expire_hold, post_hold, void_hold
from moneymovement.domain.transfers import (
    DEFAULT_HOLD,
    MAX_HOLD,
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

HOLD_ID = "tr_holdhhhhhhhhhhhhhhhhhhhhhh"
OTHER_ID = "tr_otherooooooooooooooooooooo"
TIMEOUT = timedelta(hours=2)


def fresh_book() -> dict[str, Account]:
    return book(make_account(ALICE), make_account(BOB))


def hold_spec(amount_minor: int = 2_500, **changes: object) -> TransferSpec:
    base = TransferSpec(
        debit_account_id=ALICE,
        credit_account_id=BOB,
        amount_minor=amount_minor,
        currency_code="USD",
        pending=True,
        hold_timeout_s=TIMEOUT.total_seconds(),
    )
    return replace(base, **changes)


def open_hold(
    accounts: dict[str, Account],
    amount_minor: int = 2_500,
    transfer_id: str = HOLD_ID,
    **changes: object,
) -> Transfer:
    new = NewTransfer(transfer_id, "req-open", NOW)
    return open_transfer(accounts, hold_spec(amount_minor, **changes), new)[0]


def summary(entries: list[Entry]) -> list[tuple[str, Direction, EntryKind, int]]:
    return [(e.account_id, e.direction, e.kind, e.amount_minor) for e in entries]


def assert_balanced_per_kind(entries: list[Entry]) -> None:
    for kind in EntryKind:
        debits = sum(
            e.amount_minor for e in entries if e.kind is kind and e.direction is Direction.DEBIT
        )
        credits = sum(
            e.amount_minor for e in entries if e.kind is kind and e.direction is Direction.CREDIT
        )
        assert debits == credits, kind


def assert_untouched(accounts: dict[str, Account], before: dict[str, Account]) -> None:
    assert accounts.keys() == before.keys()
    for key, account in before.items():
        assert accounts[key] is account


# --- opening a hold --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hold_timeout_s": 90.0}, NOW + timedelta(seconds=90)),
        (
            {"hold_timeout_s": None, "hold_expires_at": NOW + timedelta(days=3)},
            NOW + timedelta(days=3),
        ),
        ({"hold_timeout_s": None}, NOW + timedelta(days=7)),
        ({"hold_timeout_s": None, "hold_expires_at": NOW + MAX_HOLD}, NOW + MAX_HOLD),
    ],
    ids=["timeout", "expire-time", "default", "expire-time-at-max"],
)
def test_hold_is_pending_until_its_expiry(changes: dict[str, object], expected: datetime) -> None:
    accounts = fresh_book()

    hold = open_hold(accounts, **changes)

    assert hold.state is TransferState.PENDING
    assert hold.expires_at == expected
    assert hold.posted_amount_minor == 0
    assert timedelta(days=7) == DEFAULT_HOLD


def test_immediate_transfer_has_no_expiry() -> None:
    accounts = fresh_book()
    spec = hold_spec(pending=False, hold_expires_at=NOW + timedelta(days=1))

    transfer, _, _ = open_transfer(accounts, spec, NewTransfer(HOLD_ID, "req-open", NOW))

    assert transfer.state is TransferState.POSTED
    assert transfer.expires_at is None


@pytest.mark.parametrize(
    "expires_at",
    [NOW - timedelta(seconds=1), NOW, NOW + MAX_HOLD + timedelta(seconds=1)],
    ids=["past", "now", "beyond-max"],
)
def test_hold_expire_time_out_of_range_is_invalid(expires_at: datetime) -> None:
    accounts = fresh_book()
    before = dict(accounts)

    with pytest.raises(InvalidInput) as caught:
        open_hold(accounts, hold_timeout_s=None, hold_expires_at=expires_at)

    assert [v.field for v in caught.value.violations] == ["hold_expire_time"]
    assert caught.value.violations[0].reason is FieldReason.OUT_OF_RANGE
    assert_untouched(accounts, before)


def test_hold_moves_pending_totals_and_not_posted_ones() -> None:
    accounts = fresh_book()

    _, entries, _ = open_transfer(accounts, hold_spec(2_500), NewTransfer(HOLD_ID, "req-open", NOW))

    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.PENDING, 2_500),
        (BOB, Direction.CREDIT, EntryKind.PENDING, 2_500),
    ]
    assert accounts[ALICE].balances == replace(START, pending_debits_minor=2_500)
    assert accounts[BOB].balances == replace(START, pending_credits_minor=2_500)
    assert (accounts[ALICE].version, accounts[BOB].version) == (2, 2)


def test_hold_lowers_the_payers_available_balance_at_once() -> None:
    accounts = fresh_book()

    open_hold(accounts, 2_500)

    assert accounts[ALICE].balances.available(NormalBalance.CREDIT) == 7_500
    assert accounts[ALICE].balances.posted(NormalBalance.CREDIT) == 10_000
    # The payee sees it inbound, not yet available.
    assert accounts[BOB].balances.available(NormalBalance.CREDIT) == 10_000
    assert accounts[BOB].balances.pending_inbound(NormalBalance.CREDIT) == 2_500


def test_hold_larger_than_available_is_insufficient_funds() -> None:
    accounts = fresh_book()
    open_hold(accounts, 6_000)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        open_hold(accounts, 4_001, transfer_id=OTHER_ID)

    assert caught.value.reason is Reason.INSUFFICIENT_FUNDS
    assert caught.value.metadata == {
        "account_id": ALICE, "asked_minor": "4001", "available_minor": "4000",
        "floor_minor": "0", "pending_availability_minor": "0", "reserved_minor": "0",
        "minimum_reserve_minor": "0",
    }  # fmt: skip
    assert_untouched(accounts, before)


def test_hold_history_is_one_created_event() -> None:
    hold = open_hold(fresh_book(), 2_500)

    assert hold.history == (TransferEvent(EventKind.CREATED, 2_500, NOW, "req-open"),)
    assert hold.request_id == "req-open"
    assert hold.created_at == hold.updated_at == NOW


# --- post_hold -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "captured"),
    [(0, 2_500), (2_500, 2_500), (1_000, 1_000), (1, 1)],
    ids=["all-by-zero", "all-explicit", "partial", "one-minor-unit"],
)
def test_post_captures_and_releases_the_rest(asked: int, captured: int) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    held = {key: account.version for key, account in accounts.items()}

    posted, entries, _ = post_hold(accounts, hold, asked, LATER, "req-post")

    assert posted.state is TransferState.POSTED
    assert posted.posted_amount_minor == captured
    assert posted.amount_minor == 2_500
    assert posted.updated_at == LATER
    # One CAPTURED pair moves the captured amount from pending to posted; the rest, if
    # any, is released after it: no entry shows the hold released before it posted.
    released = 2_500 - captured
    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.CAPTURED, captured),
        (BOB, Direction.CREDIT, EntryKind.CAPTURED, captured),
    ] + (
        [
            (ALICE, Direction.DEBIT, EntryKind.PENDING_RELEASED, released),
            (BOB, Direction.CREDIT, EntryKind.PENDING_RELEASED, released),
        ]
        if released
        else []
    )
    assert {e.transfer_id for e in entries} == {HOLD_ID}
    assert_balanced_per_kind(entries)
    # Pending back to before the hold; posted moved by the captured amount only.
    assert accounts[ALICE].balances == replace(START, posted_debits_minor=captured)
    assert accounts[BOB].balances == replace(START, posted_credits_minor=10_000 + captured)
    assert accounts[ALICE].balances.available(NormalBalance.CREDIT) == 10_000 - captured
    # The capture's entry already shows the available balance the hold left: the capture
    # changes no available balance of the debit side, only the release does.
    assert entries[0].balances_after.available(NormalBalance.CREDIT) == 10_000 - 2_500
    steps = 2 if released else 1
    for key, account in accounts.items():
        assert account.version == held[key] + steps
    # Each entry carries its account's totals and version right after it.
    assert [e.account_version for e in entries] == [3, 3, 4, 4][: 2 * steps]
    assert entries[-2].balances_after == accounts[ALICE].balances
    assert entries[-1].balances_after == accounts[BOB].balances


def test_post_appends_a_posted_event() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)

    posted, _, _ = post_hold(accounts, hold, 1_000, LATER, "req-post")

    assert posted.history == (
        TransferEvent(EventKind.CREATED, 2_500, NOW, "req-open"),
        TransferEvent(EventKind.POSTED, 1_000, LATER, "req-post"),
    )


def test_post_more_than_held_is_refused() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, hold, 2_501, LATER, "req-post")

    assert caught.value.reason is Reason.POST_EXCEEDS_HOLD
    assert caught.value.metadata == {
        "transfer_id": HOLD_ID,
        "held_minor": "2500",
        "capturable_minor": "2500",
    }
    assert_untouched(accounts, before)


@pytest.mark.parametrize(
    "after_expiry", [timedelta(0), timedelta(microseconds=1), timedelta(days=1)]
)
def test_post_at_or_after_expiry_is_hold_expired(after_expiry: timedelta) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    assert hold.expires_at == NOW + TIMEOUT
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, hold, 0, NOW + TIMEOUT + after_expiry, "req-post")

    assert caught.value.reason is Reason.HOLD_EXPIRED
    assert caught.value.metadata == {"transfer_id": HOLD_ID}
    assert_untouched(accounts, before)


def test_post_just_before_expiry_succeeds() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)

    posted, _, _ = post_hold(accounts, hold, 0, NOW + TIMEOUT - timedelta(microseconds=1), "r")

    assert posted.state is TransferState.POSTED


def ended_hold(state: TransferState) -> tuple[dict[str, Account], Transfer]:
    """A hold ended the way the domain ends it: posted, voided or expired."""
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    if state is TransferState.POSTED:
        ended, _, _ = post_hold(accounts, hold, 0, LATER, "req-post")
    elif state is TransferState.VOIDED:
        ended, _ = void_hold(accounts, hold, LATER, "req-void")
    else:
        result = expire_hold(accounts, hold, NOW + TIMEOUT)
        assert result is not None
        ended = result[0]
    assert ended.state is state
    return accounts, ended


ENDED = [TransferState.POSTED, TransferState.VOIDED, TransferState.EXPIRED]


@pytest.mark.parametrize(
    "state", [TransferState.POSTED, TransferState.VOIDED], ids=lambda s: s.value
)
def test_post_of_an_ended_hold_is_not_pending(state: TransferState) -> None:
    accounts, ended = ended_hold(state)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, ended, 0, LATER, "req-post-again")

    assert caught.value.reason is Reason.TRANSFER_NOT_PENDING
    assert caught.value.metadata == {"transfer_id": HOLD_ID, "state": state.value}
    assert_untouched(accounts, before)


def test_post_of_a_swept_hold_is_hold_expired() -> None:
    # holds.post_hold: an EXPIRED hold answers HOLD_EXPIRED, swept or not.
    accounts, ended = ended_hold(TransferState.EXPIRED)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, ended, 0, NOW + TIMEOUT + timedelta(days=1), "req-post-late")

    assert caught.value.reason is Reason.HOLD_EXPIRED
    assert caught.value.metadata == {"transfer_id": HOLD_ID}
    assert_untouched(accounts, before)


@pytest.mark.parametrize("side", [ALICE, BOB])
def test_post_with_a_frozen_account_is_refused(side: str) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    accounts[side] = replace(accounts[side], state=AccountState.FROZEN)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, hold, 1_000, LATER, "req-post")

    assert caught.value.reason is Reason.ACCOUNT_FROZEN
    assert caught.value.metadata == {"account_id": side, "scope": "ALL", "freeze_reason": ""}
    assert_untouched(accounts, before)


def test_a_hold_whose_capture_would_overflow_is_refused_at_once_and_changes_nothing() -> None:
    # Bob's posted credits sit so close to the int64 ceiling that capturing the hold
    # would overflow: the hold is refused now, never accepted to fail at its capture.
    top = 2**63 - 1
    accounts = book(
        make_account(ALICE),
        make_account(BOB, balances=Balances(posted_credits_minor=top - 100)),
    )
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        open_hold(accounts, 2_500)

    assert caught.value.reason is Reason.BALANCE_OVERFLOW
    assert caught.value.metadata["account_id"] == BOB
    assert_untouched(accounts, before)


# --- void_hold -------------------------------------------------------------------------


def test_void_before_expiry_releases_the_hold() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)

    voided, entries = void_hold(accounts, hold, LATER, "req-void")

    assert voided.state is TransferState.VOIDED
    assert voided.posted_amount_minor == 0
    assert voided.updated_at == LATER
    assert voided.history[-1] == TransferEvent(EventKind.VOIDED, 2_500, LATER, "req-void")
    assert len(voided.history) == 2
    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.PENDING_RELEASED, 2_500),
        (BOB, Direction.CREDIT, EntryKind.PENDING_RELEASED, 2_500),
    ]
    assert accounts[ALICE].balances == START
    assert accounts[BOB].balances == START
    assert (accounts[ALICE].version, accounts[BOB].version) == (3, 3)


@pytest.mark.parametrize("after_expiry", [timedelta(0), timedelta(days=2)])
def test_void_at_or_after_expiry_ends_expired(after_expiry: timedelta) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    at = NOW + TIMEOUT + after_expiry

    ended, entries = void_hold(accounts, hold, at, "req-void")

    assert ended.state is TransferState.EXPIRED
    assert ended.history[-1] == TransferEvent(EventKind.EXPIRED, 2_500, at, "")
    assert {e.kind for e in entries} == {EntryKind.PENDING_RELEASED}
    assert accounts[ALICE].balances == START
    assert accounts[BOB].balances == START


def test_void_releases_exactly_the_held_amount() -> None:
    accounts = fresh_book()
    first = open_hold(accounts, 2_500)
    open_hold(accounts, 1_200, transfer_id=OTHER_ID)

    _, entries = void_hold(accounts, first, LATER, "req-void")

    assert [e.amount_minor for e in entries] == [2_500, 2_500]
    assert accounts[ALICE].balances == replace(START, pending_debits_minor=1_200)
    assert accounts[BOB].balances == replace(START, pending_credits_minor=1_200)
    assert accounts[ALICE].balances.available(NormalBalance.CREDIT) == 8_800


@pytest.mark.parametrize("side", [ALICE, BOB])
def test_void_is_allowed_on_a_frozen_account(side: str) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    accounts[side] = replace(accounts[side], state=AccountState.FROZEN)

    voided, _ = void_hold(accounts, hold, LATER, "req-void")

    assert voided.state is TransferState.VOIDED
    assert accounts[side].state is AccountState.FROZEN
    assert accounts[ALICE].balances.pending_debits_minor == 0
    assert accounts[BOB].balances.pending_credits_minor == 0


@pytest.mark.parametrize("state", ENDED, ids=lambda s: s.value)
def test_void_of_an_ended_hold_is_not_pending(state: TransferState) -> None:
    accounts, ended = ended_hold(state)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        void_hold(accounts, ended, LATER, "req-void-again")

    assert caught.value.reason is Reason.TRANSFER_NOT_PENDING
    assert caught.value.metadata == {"transfer_id": HOLD_ID, "state": state.value}
    assert_untouched(accounts, before)


# --- expire_hold -----------------------------------------------------------------------


def test_expire_before_due_does_nothing() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    before = dict(accounts)

    assert expire_hold(accounts, hold, NOW + TIMEOUT - timedelta(microseconds=1)) is None
    assert_untouched(accounts, before)


@pytest.mark.parametrize("state", [TransferState.POSTED, TransferState.VOIDED])
def test_expire_of_an_ended_hold_does_nothing(state: TransferState) -> None:
    accounts, ended = ended_hold(state)
    before = dict(accounts)

    assert expire_hold(accounts, ended, NOW + TIMEOUT + timedelta(days=1)) is None
    assert_untouched(accounts, before)


@pytest.mark.parametrize("after_expiry", [timedelta(0), timedelta(days=5)])
def test_expire_when_due_releases_the_hold(after_expiry: timedelta) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    at = NOW + TIMEOUT + after_expiry

    result = expire_hold(accounts, hold, at)

    assert result is not None
    expired, entries = result
    assert expired.state is TransferState.EXPIRED
    assert expired.posted_amount_minor == 0
    assert expired.updated_at == at
    assert expired.history[-1] == TransferEvent(EventKind.EXPIRED, 2_500, at, "")
    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.PENDING_RELEASED, 2_500),
        (BOB, Direction.CREDIT, EntryKind.PENDING_RELEASED, 2_500),
    ]
    assert accounts[ALICE].balances == START
    assert accounts[BOB].balances == START


def test_expire_happens_exactly_once() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    result = expire_hold(accounts, hold, NOW + TIMEOUT)
    assert result is not None
    before = dict(accounts)

    assert expire_hold(accounts, result[0], NOW + TIMEOUT + timedelta(days=1)) is None
    assert_untouched(accounts, before)
