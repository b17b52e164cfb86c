"""Balances: the four stored totals, the amounts derived from them, and one entry at a time."""

import pytest

from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.money import INT64_MAX

CREDIT = NormalBalance.CREDIT
DEBIT = NormalBalance.DEBIT

# Every total differs, so a derived amount that reads the wrong total gives a wrong answer.
SAMPLE = Balances(
    posted_debits_minor=1_250,
    posted_credits_minor=10_000,
    pending_debits_minor=300,
    pending_credits_minor=4_000,
)


def test_credit_normal_derived_amounts() -> None:
    assert SAMPLE.posted(CREDIT) == 8_750
    assert SAMPLE.pending_inbound(CREDIT) == 4_000
    assert SAMPLE.pending_outbound(CREDIT) == 300
    assert SAMPLE.available(CREDIT) == 8_450


def test_debit_normal_derived_amounts() -> None:
    assert SAMPLE.posted(DEBIT) == -8_750
    assert SAMPLE.pending_inbound(DEBIT) == 300
    assert SAMPLE.pending_outbound(DEBIT) == 4_000
    assert SAMPLE.available(DEBIT) == -12_750


@pytest.mark.parametrize(
    ("direction", "kind", "expected"),
    [
        (Direction.DEBIT, EntryKind.POSTED, Balances(1_275, 10_000, 300, 4_000)),
        (Direction.CREDIT, EntryKind.POSTED, Balances(1_250, 10_025, 300, 4_000)),
        (Direction.DEBIT, EntryKind.PENDING, Balances(1_250, 10_000, 325, 4_000)),
        (Direction.CREDIT, EntryKind.PENDING, Balances(1_250, 10_000, 300, 4_025)),
        (Direction.DEBIT, EntryKind.PENDING_RELEASED, Balances(1_250, 10_000, 275, 4_000)),
        (Direction.CREDIT, EntryKind.PENDING_RELEASED, Balances(1_250, 10_000, 300, 3_975)),
        # A capture moves held money to posted in one step, on its own side only.
        (Direction.DEBIT, EntryKind.CAPTURED, Balances(1_275, 10_000, 275, 4_000)),
        (Direction.CREDIT, EntryKind.CAPTURED, Balances(1_250, 10_025, 300, 3_975)),
    ],
)
def test_after_changes_only_the_matching_total(
    direction: Direction, kind: EntryKind, expected: Balances
) -> None:
    assert SAMPLE.after(direction, kind, 25) == expected


def test_after_leaves_the_original_unchanged() -> None:
    SAMPLE.after(Direction.CREDIT, EntryKind.POSTED, 25)

    assert SAMPLE.posted_credits_minor == 10_000


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("kind", [EntryKind.POSTED, EntryKind.PENDING])
def test_after_refuses_a_total_beyond_int64(direction: Direction, kind: EntryKind) -> None:
    full = Balances(INT64_MAX - 5, INT64_MAX - 5)

    assert full.after(direction, kind, 5).committed(direction) == INT64_MAX
    with pytest.raises(Rejected) as caught:
        full.after(direction, kind, 6)
    assert caught.value.reason is Reason.BALANCE_OVERFLOW


@pytest.mark.parametrize("direction", list(Direction))
def test_a_hold_whose_capture_would_overflow_is_refused_though_it_fits(
    direction: Direction,
) -> None:
    # Half the range posted, half held: a second hold fits pending_*, but capturing all
    # of them could never be posted.
    half = 2**62
    held = Balances(half, half, half - 2, half - 2)
    assert held.committed(direction) == INT64_MAX - 1
    assert held.after(direction, EntryKind.PENDING, 1).committed(direction) == INT64_MAX
    with pytest.raises(Rejected) as caught:
        held.after(direction, EntryKind.PENDING, 2)
    assert caught.value.reason is Reason.BALANCE_OVERFLOW
    assert held.after(direction, EntryKind.PENDING_RELEASED, 1).committed(direction) == (
        INT64_MAX - 2
    )


@pytest.mark.parametrize("direction", list(Direction))
def test_release_larger_than_the_hold_raises(direction: Direction) -> None:
    held = Balances(pending_debits_minor=100, pending_credits_minor=100)

    released = held.after(direction, EntryKind.PENDING_RELEASED, 100)
    assert released.pending_debits_minor + released.pending_credits_minor == 100
    with pytest.raises(ValueError, match="negative"):
        held.after(direction, EntryKind.PENDING_RELEASED, 101)
    with pytest.raises(ValueError, match="negative"):
        held.after(direction, EntryKind.CAPTURED, 101)


@pytest.mark.parametrize(
    ("balances", "zero"),
    [
        (Balances(), True),
        (Balances(posted_debits_minor=700, posted_credits_minor=700), True),
        (Balances(posted_debits_minor=700, posted_credits_minor=699), False),
        (Balances(pending_debits_minor=1), False),
        (Balances(pending_credits_minor=1), False),
    ],
)
def test_is_zero(balances: Balances, zero: bool) -> None:
    assert balances.is_zero() is zero
