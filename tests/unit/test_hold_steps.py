"""Holds in several steps: partial captures, increments, extensions, over-capture."""

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from moneymovement.domain.balances import Direction, EntryKind, NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.holds import (
    capture_limit,
    expire_hold,
    extend_hold,
    increment_hold,
    post_hold,
    void_hold,
)
from moneymovement.domain.transfers import MAX_HOLD, EventKind, TransferEvent, TransferState
from tests.unit.ledger_builders import ALICE, BOB, LATER, NOW, START
from tests.unit.test_hold_rules import (
    HOLD_ID,
    TIMEOUT,
    assert_balanced_per_kind,
    assert_untouched,
    fresh_book,
    open_hold,
    summary,
)

CREDIT = NormalBalance.CREDIT


def test_partial_captures_leave_the_rest_held_until_the_final_one() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)

    first, entries1, _ = post_hold(accounts, hold, 1_000, LATER, "cap-1", final=False)
    second, entries2, _ = post_hold(accounts, first, 500, LATER, "cap-2", final=False)

    assert second.state is TransferState.PENDING
    assert second.posted_amount_minor == 1_500
    assert second.held_minor == 1_000
    assert summary(entries1 + entries2) == [
        (ALICE, Direction.DEBIT, EntryKind.CAPTURED, 1_000),
        (BOB, Direction.CREDIT, EntryKind.CAPTURED, 1_000),
        (ALICE, Direction.DEBIT, EntryKind.CAPTURED, 500),
        (BOB, Direction.CREDIT, EntryKind.CAPTURED, 500),
    ]
    # Posted moved by the captures; still held: the rest; available as the hold left it.
    assert accounts[ALICE].balances == replace(
        START, posted_debits_minor=1_500, pending_debits_minor=1_000
    )
    assert accounts[ALICE].balances.available(CREDIT) == 10_000 - 2_500
    assert accounts[BOB].balances.posted(CREDIT) == 10_000 + 1_500

    final, entries3, _ = post_hold(accounts, second, 200, LATER, "cap-3")

    assert final.state is TransferState.POSTED
    assert final.posted_amount_minor == 1_700
    assert summary(entries3) == [
        (ALICE, Direction.DEBIT, EntryKind.CAPTURED, 200),
        (BOB, Direction.CREDIT, EntryKind.CAPTURED, 200),
        (ALICE, Direction.DEBIT, EntryKind.PENDING_RELEASED, 800),
        (BOB, Direction.CREDIT, EntryKind.PENDING_RELEASED, 800),
    ]
    assert accounts[ALICE].balances == replace(START, posted_debits_minor=1_700)
    assert accounts[ALICE].balances.available(CREDIT) == 10_000 - 1_700
    assert [step.kind for step in final.history] == [
        EventKind.CREATED,
        EventKind.CAPTURED,
        EventKind.CAPTURED,
        EventKind.POSTED,
    ]
    assert [step.amount_minor for step in final.history] == [2_500, 1_000, 500, 200]
    assert_balanced_per_kind(entries1 + entries2 + entries3)


def test_a_capture_that_takes_all_that_is_held_ends_the_hold() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    part, _, _ = post_hold(accounts, hold, 1_000, LATER, "cap-1", final=False)

    rest, entries, _ = post_hold(accounts, part, 0, LATER, "cap-2", final=False)

    assert rest.state is TransferState.POSTED
    assert rest.posted_amount_minor == 2_500
    assert rest.history[-1] == TransferEvent(EventKind.POSTED, 1_500, LATER, "cap-2")
    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.CAPTURED, 1_500),
        (BOB, Direction.CREDIT, EntryKind.CAPTURED, 1_500),
    ]


def test_a_capture_that_is_not_final_may_not_take_more_than_is_held() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500, over_capture_bps=2_000)
    part, _, _ = post_hold(accounts, hold, 1_000, LATER, "cap-1", final=False)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, part, 1_501, LATER, "cap-2", final=False)

    assert caught.value.reason is Reason.POST_EXCEEDS_HOLD
    assert caught.value.metadata == {
        "transfer_id": HOLD_ID,
        "held_minor": "1500",
        "capturable_minor": "1500",
    }
    assert_untouched(accounts, before)


@pytest.mark.parametrize("final", [True, False])
def test_void_after_captures_ends_posted_and_releases_only_the_rest(final: bool) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    part, _, _ = post_hold(accounts, hold, 600, LATER, "cap-1", final=False)

    when = LATER if final else NOW + TIMEOUT  # a void, or a void that comes too late
    ended, entries = void_hold(accounts, part, when, "void-1")

    assert ended.state is TransferState.POSTED  # money moved
    assert ended.posted_amount_minor == 600
    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.PENDING_RELEASED, 1_900),
        (BOB, Direction.CREDIT, EntryKind.PENDING_RELEASED, 1_900),
    ]
    kind = EventKind.VOIDED if final else EventKind.EXPIRED
    assert ended.history[-1] == TransferEvent(kind, 1_900, when, "void-1" if final else "")
    assert accounts[ALICE].balances == replace(START, posted_debits_minor=600)


def test_expiry_after_captures_ends_posted_and_releases_the_rest() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    part, _, _ = post_hold(accounts, hold, 600, LATER, "cap-1", final=False)

    ended = expire_hold(accounts, part, NOW + TIMEOUT)

    assert ended is not None
    expired, _ = ended
    assert expired.state is TransferState.POSTED
    assert expired.history[-1] == TransferEvent(EventKind.EXPIRED, 1_900, NOW + TIMEOUT, "")
    assert accounts[ALICE].balances == replace(START, posted_debits_minor=600)


@pytest.mark.parametrize(("bps", "limit"), [(0, 2_500), (1_000, 2_750), (2_000, 3_000)])
def test_the_final_capture_may_go_past_the_hold_within_its_tolerance(bps: int, limit: int) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500, over_capture_bps=bps)
    assert capture_limit(hold) == limit
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, hold, limit + 1, LATER, "cap")
    assert caught.value.reason is Reason.POST_EXCEEDS_HOLD
    assert caught.value.metadata["capturable_minor"] == str(limit)
    assert_untouched(accounts, before)

    posted, entries, _ = post_hold(accounts, hold, limit, LATER, "cap")

    assert posted.state is TransferState.POSTED
    assert posted.posted_amount_minor == limit
    # The excess is held first (checked as a new hold), then captured with the rest: no
    # entry ever shows available above what it was.
    expected = [
        (ALICE, Direction.DEBIT, EntryKind.CAPTURED, limit),
        (BOB, Direction.CREDIT, EntryKind.CAPTURED, limit),
    ]
    if limit > 2_500:
        expected = [
            (ALICE, Direction.DEBIT, EntryKind.PENDING, limit - 2_500),
            (BOB, Direction.CREDIT, EntryKind.PENDING, limit - 2_500),
            *expected,
        ]
    assert summary(entries) == expected
    available_before = 10_000 - 2_500
    for entry in entries:
        if entry.account_id == ALICE:
            assert entry.balances_after.available(CREDIT) <= available_before
    assert accounts[ALICE].balances == replace(START, posted_debits_minor=limit)


def test_an_over_capture_the_debit_account_cannot_pay_is_refused() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 9_000, over_capture_bps=2_000)  # 1,000 left available
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        post_hold(accounts, hold, 10_001, LATER, "cap")

    assert caught.value.reason is Reason.INSUFFICIENT_FUNDS
    assert caught.value.metadata["account_id"] == ALICE
    assert_untouched(accounts, before)
    posted, _, _ = post_hold(accounts, hold, 10_000, LATER, "cap")
    assert accounts[ALICE].balances.available(CREDIT) == 0
    assert posted.posted_amount_minor == 10_000


def test_increment_holds_more_and_raises_the_amount() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)

    raised, entries = increment_hold(accounts, hold, 700, LATER, "inc-1")

    assert raised.state is TransferState.PENDING
    assert raised.amount_minor == 3_200
    assert raised.held_minor == 3_200
    assert raised.history[-1] == TransferEvent(EventKind.INCREMENTED, 700, LATER, "inc-1")
    assert summary(entries) == [
        (ALICE, Direction.DEBIT, EntryKind.PENDING, 700),
        (BOB, Direction.CREDIT, EntryKind.PENDING, 700),
    ]
    assert accounts[ALICE].balances.available(CREDIT) == 10_000 - 3_200
    posted, _, _ = post_hold(accounts, raised, 0, LATER, "cap")
    assert posted.posted_amount_minor == 3_200


def test_increment_past_the_available_balance_is_refused() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    before = dict(accounts)

    with pytest.raises(Rejected) as caught:
        increment_hold(accounts, hold, 7_501, LATER, "inc-1")

    assert caught.value.reason is Reason.INSUFFICIENT_FUNDS
    assert_untouched(accounts, before)


@pytest.mark.parametrize("step", ["increment", "extend", "capture"])
def test_an_expired_hold_cannot_be_changed(step: str) -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    late = NOW + TIMEOUT
    steps: dict[str, Callable[[], object]] = {
        "increment": lambda: increment_hold(accounts, hold, 1, late, "r"),
        "extend": lambda: extend_hold(hold, late + timedelta(hours=1), late, "r"),
        "capture": lambda: post_hold(accounts, hold, 1, late, "r", final=False),
    }

    with pytest.raises(Rejected) as caught:
        steps[step]()

    assert caught.value.reason is Reason.HOLD_EXPIRED


def test_extend_moves_the_expiry_later_without_moving_money() -> None:
    accounts = fresh_book()
    hold = open_hold(accounts, 2_500)
    later = NOW + timedelta(days=10)

    extended = extend_hold(hold, later, LATER, "ext-1")

    assert extended.expires_at == later
    assert extended.amount_minor == 2_500
    assert extended.history[-1] == TransferEvent(
        EventKind.EXTENDED, 0, LATER, "ext-1", expires_at=later
    )
    # It no longer expires at its first time.
    assert expire_hold(accounts, extended, NOW + TIMEOUT) is None
    assert extend_hold(extended, NOW + MAX_HOLD, LATER, "ext-2").expires_at == NOW + MAX_HOLD


@pytest.mark.parametrize(
    "to", [NOW + TIMEOUT, NOW + TIMEOUT - timedelta(seconds=1), NOW + MAX_HOLD + timedelta(1)]
)
def test_extend_out_of_range_is_refused_naming_the_bounds(to: object) -> None:
    hold = open_hold(fresh_book(), 2_500)

    with pytest.raises(Rejected) as caught:
        extend_hold(hold, to, LATER, "ext")  # type: ignore[arg-type]

    assert caught.value.reason is Reason.HOLD_EXTENSION_OUT_OF_RANGE
    assert caught.value.metadata == {
        "transfer_id": HOLD_ID,
        "expire_time": (NOW + TIMEOUT).isoformat().replace("+00:00", "Z"),
        "max_expire_time": (NOW + MAX_HOLD).isoformat().replace("+00:00", "Z"),
    }
