"""Funds accessibility, decided by the pure domain (docs/funds-availability.md): when a
credit becomes available, what a debit may spend, reserves, limits, reversals of credits
that are not available yet, early and due releases, monitors, the debit-only freeze and
the audit trail of policy changes. No database: each test builds a Ledger."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from moneymovement.domain.accounts import (
    Account,
    AccountChanges,
    AccountState,
    FreezeScope,
    OverdraftMode,
)
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.commands import (
    CreateAccount,
    CreateBalanceMonitor,
    CreateTransfer,
    CreateTransfers,
    DeleteBalanceMonitor,
    FreezeAccount,
    IncrementHold,
    PostTransfer,
    ReleaseDueFunds,
    ReleaseFunds,
    ReverseTransfer,
    UpdateAccount,
    VoidTransfer,
)
from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput, Reason, Rejected
from moneymovement.domain.events import EventType
from moneymovement.domain.funds import (
    AT_ONCE,
    NO_POLICY,
    Availability,
    AvailabilityPolicy,
    Calendar,
    DebitLimit,
    DebitUsage,
    EndKind,
    FundsKind,
    FundsPolicy,
    LimitWindow,
    Part,
    ReservePolicy,
    ScheduledFunds,
    parts_of_credit,
    policy_from_json,
    policy_to_json,
    validate_policy,
)
from moneymovement.domain.ledger import Issued, Ledger, PolicyChange
from moneymovement.domain.monitors import MonitorField, MonitorOperator
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import Transfer, TransferSpec, TransferState
from tests.unit.ledger_builders import ALICE, BOB, NOW, book, make_account

CREDIT = NormalBalance.CREDIT
DEBIT = NormalBalance.DEBIT
AVAILABILITY = FundsKind.AVAILABILITY
RESERVE = FundsKind.RESERVE
NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"

FUND = "acct_fundfffffffffffffffffffffff"  # DEBIT-normal, unlimited: where credits come from
SHOP = "acct_shopsssssssssssssssssssssss"  # CREDIT-normal, with a funds policy
FEES = "acct_feeseeeeeeeeeeeeeeeeeeeeeee"  # where early-release fees go

# NOW is Saturday 2025-03-01 12:00 UTC. Two calendar days after its date, at 00:00 UTC:
AVAILABLE_AT = datetime(2025, 3, 3, tzinfo=UTC)
RESERVE_UNTIL = NOW + timedelta(days=30)  # rolling days are 24 h each, from the credit

POLICY = FundsPolicy(
    availability=AvailabilityPolicy(delay_days=2),
    reserve=ReservePolicy(rolling_percent_bps=1_000, rolling_days=30),  # 10 % for 30 days
    early_release_allowed=True,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- builders ---------------------------------------------------------------------------


def funding() -> Account:
    return make_account(
        FUND,
        normal_balance=DEBIT,
        overdraft_mode=OverdraftMode.UNLIMITED,
        balances=Balances(),
    )


def shop(policy: FundsPolicy = POLICY, **changes: object) -> Account:
    """The merchant, empty unless `changes` give it balances."""
    return make_account(SHOP, funds_policy=policy, **{"balances": Balances(), **changes})


def fees() -> Account:
    return make_account(FEES, balances=Balances())


def ledger(
    *accounts: Account,
    now: datetime = NOW,
    usage: dict[str, DebitUsage] | None = None,
) -> Ledger:
    """A ledger at `now` with `accounts`, and the funding, fee, Alice and Bob accounts
    unless given."""
    given = book(*accounts)
    for default in (funding(), fees(), make_account(ALICE), make_account(BOB)):
        given.setdefault(default.id, default)
    return Ledger(now, given, {}, {}, usage=usage)


def later(state: Ledger, now: datetime, usage: dict[str, DebitUsage] | None = None) -> Ledger:
    """The next transaction, at `now`, seeing everything `state` left (as storage would
    read it back: the accounts, transfers, scheduled parts and monitors)."""
    return Ledger(
        now,
        state.accounts,
        state.transfers,
        {},
        funds=list(state.funds.values()),
        monitors=list(state.monitors.values()),
        usage=usage,
    )


_requests = itertools.count()


def issued() -> Issued:
    return Issued(f"req-{next(_requests)}")


def credit(state: Ledger, amount: int, to: str = SHOP, **changes: object) -> Transfer:
    """`amount` from the funding account to `to` (POSTED, unless `pending`)."""
    spec = TransferSpec(FUND, to, amount, "USD", **changes)  # type: ignore[arg-type]
    return state.apply(CreateTransfer(spec), issued())


def pay(
    state: Ledger, amount: int, source: str = SHOP, to: str = BOB, **changes: object
) -> Transfer:
    spec = TransferSpec(source, to, amount, "USD", **changes)  # type: ignore[arg-type]
    return state.apply(CreateTransfer(spec), issued())


def refused(state: Ledger, command: object) -> Rejected:
    """The rejection of `command`, asserting that it left the ledger as it was."""
    before = state.writes()
    with pytest.raises(Rejected) as caught:
        state.apply(command, issued())  # type: ignore[arg-type]
    assert state.writes() == before
    return caught.value


def parts_of(state: Ledger, transfer: Transfer) -> list[ScheduledFunds]:
    """The transfer's scheduled parts, open or ended, latest first (reserve, then delay)."""
    found = [f for f in state.funds.values() if f.transfer_id == transfer.id]
    return sorted(found, key=lambda f: (f.available_at, f.id), reverse=True)


def open_parts(state: Ledger, account_id: str = SHOP) -> list[ScheduledFunds]:
    found = [f for f in state.funds.values() if f.account_id == account_id and f.is_open]
    return sorted(found, key=lambda f: (f.available_at, f.id))


def totals(state: Ledger, account_id: str = SHOP) -> tuple[int, int, int, int]:
    """(posted, pending availability, reserved, available) of a credit-normal account."""
    b = state.accounts[account_id].balances
    return b.posted(CREDIT), b.pending_availability_minor, b.reserved_minor, b.available(CREDIT)


def types(events: Iterable[object]) -> list[EventType]:
    return [e.type for e in events]  # type: ignore[attr-defined]


# --- availability policy dates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "posted_at", "expected"),
    [
        # Calendar days in UTC: a Saturday noon credit, 2 days: Monday 00:00 UTC.
        (AvailabilityPolicy(2), NOW, utc(2025, 3, 3)),
        (AvailabilityPolicy(1), utc(2025, 3, 1, 23, 59, 59), utc(2025, 3, 2)),
        (AvailabilityPolicy(1), utc(2025, 3, 2), utc(2025, 3, 3)),  # at midnight: the next day
        # New York, calendar days across the start of daylight saving time (Sunday
        # 9 March 2025, 02:00): midnight is 05:00 UTC before it and 04:00 UTC after.
        (AvailabilityPolicy(1, Calendar.DAYS, NEW_YORK), utc(2025, 3, 8, 17), utc(2025, 3, 9, 5)),
        (AvailabilityPolicy(2, Calendar.DAYS, NEW_YORK), utc(2025, 3, 8, 17), utc(2025, 3, 10, 4)),
        # Friday 20:00 in New York is Saturday 01:00 UTC: its local date (Friday) counts.
        # 2 business days after Friday: Tuesday, 00:00 New York time.
        (
            AvailabilityPolicy(2, Calendar.BUSINESS_DAYS, NEW_YORK),
            utc(2025, 3, 8, 1),
            utc(2025, 3, 11, 4),
        ),
        # ... the same instant in UTC is a Saturday: Tuesday, but 00:00 UTC.
        (AvailabilityPolicy(2, Calendar.BUSINESS_DAYS), utc(2025, 3, 8, 1), utc(2025, 3, 11)),
        # New York midnight exactly (Tuesday 00:00 EDT) and a microsecond before it.
        (AvailabilityPolicy(1, Calendar.DAYS, NEW_YORK), utc(2025, 3, 11, 4), utc(2025, 3, 12, 4)),
        (
            AvailabilityPolicy(1, Calendar.DAYS, NEW_YORK),
            utc(2025, 3, 11, 4) - timedelta(microseconds=1),
            utc(2025, 3, 11, 4),
        ),
        # Tokyo (UTC+9, no daylight saving): Thursday 16:00 UTC is already Friday 01:00
        # there, so 1 business day is Monday 00:00 JST (Sunday 15:00 UTC), where a UTC
        # policy would say Friday 00:00 UTC.
        (
            AvailabilityPolicy(1, Calendar.BUSINESS_DAYS, TOKYO),
            utc(2025, 3, 6, 16),
            utc(2025, 3, 9, 15),
        ),
        (AvailabilityPolicy(1, Calendar.BUSINESS_DAYS), utc(2025, 3, 6, 16), utc(2025, 3, 7)),
        # Tokyo midnight: Sunday 23:59:59 JST waits one second; Monday 00:00 JST a day.
        (
            AvailabilityPolicy(1, Calendar.BUSINESS_DAYS, TOKYO),
            utc(2025, 3, 9, 14, 59, 59),
            utc(2025, 3, 9, 15),
        ),
        (
            AvailabilityPolicy(1, Calendar.BUSINESS_DAYS, TOKYO),
            utc(2025, 3, 9, 15),
            utc(2025, 3, 10, 15),
        ),
        (
            AvailabilityPolicy(3, Calendar.DAYS, TOKYO),
            utc(2025, 3, 9, 15),
            utc(2025, 3, 12, 15),
        ),
        # Santiago skips its midnight when daylight saving time starts (Sunday 8 September
        # 2024, 00:00 -04 becomes 01:00 -03): the day begins at 04:00 UTC.
        (
            AvailabilityPolicy(1, Calendar.DAYS, "America/Santiago"),
            utc(2024, 9, 7, 12),
            utc(2024, 9, 8, 4),
        ),
        # Business days skip Saturdays and Sundays wherever they fall in the count.
        (AvailabilityPolicy(1, Calendar.BUSINESS_DAYS), utc(2025, 3, 7, 10), utc(2025, 3, 10)),
        (AvailabilityPolicy(1, Calendar.BUSINESS_DAYS), utc(2025, 3, 8, 10), utc(2025, 3, 10)),
        (AvailabilityPolicy(1, Calendar.BUSINESS_DAYS), utc(2025, 3, 9, 10), utc(2025, 3, 10)),
        (AvailabilityPolicy(3, Calendar.BUSINESS_DAYS), utc(2025, 3, 5, 10), utc(2025, 3, 10)),
        (AvailabilityPolicy(5, Calendar.BUSINESS_DAYS), utc(2025, 3, 7, 10), utc(2025, 3, 14)),
        (AvailabilityPolicy(10, Calendar.BUSINESS_DAYS), utc(2025, 3, 3, 10), utc(2025, 3, 17)),
    ],
)
def test_availability_policy_dates(
    policy: AvailabilityPolicy, posted_at: datetime, expected: datetime
) -> None:
    available_at = policy.available_at(posted_at)
    assert available_at == expected
    assert available_at is not None
    assert available_at.utcoffset() == timedelta(0)


def test_a_policy_of_zero_days_makes_credits_available_at_once() -> None:
    assert AvailabilityPolicy(0, Calendar.BUSINESS_DAYS, TOKYO).available_at(NOW) is None
    assert parts_of_credit(CREDIT, FundsPolicy(), 1_000, AT_ONCE, NOW) == []


# --- the parts of a credit --------------------------------------------------------------


def test_the_reserve_is_rounded_down_and_the_rest_waits_for_the_policy() -> None:
    parts = parts_of_credit(CREDIT, POLICY, 1_999, AT_ONCE, NOW)

    assert parts == [
        Part(RESERVE, 199, RESERVE_UNTIL),  # 10 % of 1,999 is 199.9
        Part(AVAILABILITY, 1_800, AVAILABLE_AT),
    ]


@pytest.mark.parametrize(
    ("bps", "amount", "reserved"),
    [(1_000, 9, 0), (1_000, 10, 1), (250, 39, 0), (250, 40, 1), (250, 1_000, 25), (1, 9_999, 0)],
)
def test_a_reserve_that_rounds_down_to_nothing_is_no_part(
    bps: int, amount: int, reserved: int
) -> None:
    policy = FundsPolicy(reserve=ReservePolicy(rolling_percent_bps=bps, rolling_days=7))

    parts = parts_of_credit(CREDIT, policy, amount, AT_ONCE, NOW)

    assert parts == ([Part(RESERVE, reserved, NOW + timedelta(days=7))] if reserved else [])


def test_a_full_reserve_leaves_nothing_to_delay() -> None:
    policy = replace(POLICY, reserve=ReservePolicy(rolling_percent_bps=10_000, rolling_days=1))

    assert parts_of_credit(CREDIT, policy, 500, AT_ONCE, NOW) == [
        Part(RESERVE, 500, NOW + timedelta(days=1))
    ]


@pytest.mark.parametrize(
    ("asked", "available_at"),
    [
        (Availability(delay=timedelta(hours=6)), NOW + timedelta(hours=6)),  # sooner
        (Availability(at=NOW + timedelta(days=10)), NOW + timedelta(days=10)),  # later
        (Availability(at=NOW + timedelta(microseconds=1)), NOW + timedelta(microseconds=1)),
    ],
)
def test_the_transfers_own_availability_overrides_the_policy(
    asked: Availability, available_at: datetime
) -> None:
    parts = parts_of_credit(CREDIT, POLICY, 1_000, asked, NOW)

    # The reserve is the account's either way.
    assert parts == [Part(RESERVE, 100, RESERVE_UNTIL), Part(AVAILABILITY, 900, available_at)]


@pytest.mark.parametrize("at", [NOW, NOW - timedelta(seconds=1), NOW - timedelta(days=3)])
def test_an_availability_time_at_or_before_the_posting_is_available_at_once(at: datetime) -> None:
    assert parts_of_credit(CREDIT, POLICY, 1_000, Availability(at=at), NOW) == [
        Part(RESERVE, 100, RESERVE_UNTIL)
    ]
    assert parts_of_credit(CREDIT, NO_POLICY, 1_000, Availability(at=at), NOW) == []


def test_a_transfer_may_ask_for_availability_without_a_policy() -> None:
    asked = Availability(delay=timedelta(hours=1))

    assert parts_of_credit(CREDIT, NO_POLICY, 1_000, asked, NOW) == [
        Part(AVAILABILITY, 1_000, NOW + timedelta(hours=1))
    ]


def test_availability_asked_for_a_debit_normal_account_is_refused() -> None:
    asked = Availability(delay=timedelta(hours=1))
    with pytest.raises(Rejected) as caught:
        parts_of_credit(DEBIT, NO_POLICY, 1_000, asked, NOW)
    assert caught.value.reason is Reason.AVAILABILITY_NOT_APPLICABLE
    # Without asking, a debit-normal account's credits are simply available.
    assert parts_of_credit(DEBIT, POLICY, 1_000, AT_ONCE, NOW) == []

    state = ledger(shop(balances=Balances(posted_credits_minor=5_000)))
    error = refused(state, CreateTransfer(TransferSpec(SHOP, FUND, 100, "USD", availability=asked)))
    assert error.reason is Reason.AVAILABILITY_NOT_APPLICABLE
    hold = TransferSpec(SHOP, FUND, 100, "USD", pending=True, availability=asked)
    assert refused(state, CreateTransfer(hold)).reason is Reason.AVAILABILITY_NOT_APPLICABLE


def test_a_credit_is_scheduled_in_its_parts() -> None:
    state = ledger(shop())

    transfer = credit(state, 1_000)

    reserve, delayed = parts_of(state, transfer)
    assert (reserve.kind, reserve.amount_minor, reserve.available_at) == (
        RESERVE, 100, RESERVE_UNTIL,
    )  # fmt: skip
    assert (delayed.kind, delayed.amount_minor, delayed.available_at) == (
        AVAILABILITY, 900, AVAILABLE_AT,
    )  # fmt: skip
    for part in (reserve, delayed):
        assert (part.account_id, part.transfer_id, part.created_at) == (SHOP, transfer.id, NOW)
        assert part.is_open
        assert part.remainder_of_id is None
    assert totals(state) == (1_000, 900, 100, 0)
    assert state.writes().new_funds == [reserve, delayed]
    # The credit's entry carries the new totals.
    [shop_entry] = [e for e in state.writes().entries if e.account_id == SHOP]
    assert (
        shop_entry.balances_after.pending_availability_minor,
        shop_entry.balances_after.reserved_minor,
    ) == (900, 100)


def test_a_hold_schedules_nothing_until_captured_and_its_delay_counts_from_the_capture() -> None:
    state = ledger(shop())
    asked = Availability(delay=timedelta(hours=1))
    hold = credit(state, 1_000, pending=True, availability=asked)
    assert parts_of(state, hold) == []
    assert totals(state) == (0, 0, 0, 0)

    capture_at = NOW + timedelta(hours=5)
    state = later(state, capture_at)
    state.apply(PostTransfer(hold.id, 600), issued())

    assert [(p.kind, p.amount_minor, p.available_at) for p in parts_of(state, hold)] == [
        (RESERVE, 60, capture_at + timedelta(days=30)),
        (AVAILABILITY, 540, capture_at + timedelta(hours=1)),
    ]
    assert totals(state) == (600, 540, 60, 0)


# --- what a debit may spend -------------------------------------------------------------


def test_a_debit_cannot_spend_pending_or_reserved_funds() -> None:
    state = ledger(shop())
    credit(state, 1_000)

    error = refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 1, "USD")))

    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert error.metadata == {
        "account_id": SHOP,
        "asked_minor": "1",
        "floor_minor": "0",
        "available_minor": "0",
        "pending_availability_minor": "900",
        "reserved_minor": "100",
        "minimum_reserve_minor": "0",
    }
    hold = TransferSpec(SHOP, BOB, 1, "USD", pending=True)
    assert refused(state, CreateTransfer(hold)).reason is Reason.INSUFFICIENT_FUNDS


def test_a_debit_can_spend_what_is_available_and_no_more() -> None:
    state = ledger(shop())
    credit(state, 1_000)
    credit(state, 1_000, availability=Availability(at=NOW - timedelta(hours=1)))
    assert totals(state) == (2_000, 900, 200, 900)

    error = refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 901, "USD")))
    assert (error.reason, error.metadata["available_minor"]) == (Reason.INSUFFICIENT_FUNDS, "900")
    pay(state, 900)
    assert totals(state) == (1_100, 900, 200, 0)


def test_funds_released_when_due_can_be_spent() -> None:
    state = ledger(shop())
    credit(state, 1_000)

    state = later(state, AVAILABLE_AT)
    state.apply(ReleaseDueFunds(SHOP), issued())

    assert totals(state) == (1_000, 0, 100, 900)
    pay(state, 900)
    assert refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 1, "USD"))).reason is (
        Reason.INSUFFICIENT_FUNDS
    )


# --- the minimum reserve ----------------------------------------------------------------


def minimum(amount: int) -> FundsPolicy:
    return FundsPolicy(reserve=ReservePolicy(minimum_minor=amount))


def test_a_debit_may_not_take_available_below_the_minimum_reserve() -> None:
    state = ledger(shop(minimum(300), balances=Balances(posted_credits_minor=1_000)))

    error = refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 701, "USD")))
    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert error.metadata == {
        "account_id": SHOP,
        "asked_minor": "701",
        "floor_minor": "300",
        "available_minor": "1000",
        "pending_availability_minor": "0",
        "reserved_minor": "0",
        "minimum_reserve_minor": "300",
    }
    pay(state, 700)
    assert totals(state) == (300, 0, 0, 300)
    assert refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 1, "USD"))).reason is (
        Reason.INSUFFICIENT_FUNDS
    )
    hold = TransferSpec(SHOP, BOB, 1, "USD", pending=True)
    assert refused(state, CreateTransfer(hold)).reason is Reason.INSUFFICIENT_FUNDS


def test_an_account_below_its_minimum_reserve_still_receives_money() -> None:
    state = ledger(shop(minimum(300), balances=Balances(posted_credits_minor=300)))
    # The minimum is raised above what the account holds: allowed, only debits stop.
    state.apply(UpdateAccount(SHOP, changes=AccountChanges(funds_policy=minimum(500))), issued())
    assert totals(state) == (300, 0, 0, 300)

    credit(state, 100)
    assert totals(state) == (400, 0, 0, 400)
    assert refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 1, "USD"))).reason is (
        Reason.INSUFFICIENT_FUNDS
    )
    credit(state, 150)
    pay(state, 50)  # exactly down to the minimum
    assert totals(state) == (500, 0, 0, 500)
    assert refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 1, "USD"))).reason is (
        Reason.INSUFFICIENT_FUNDS
    )


def test_the_minimum_reserve_raises_the_overdraft_floor() -> None:
    account = shop(minimum(200), overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=500)
    state = ledger(account)

    pay(state, 300)  # floor: -500 + 200
    assert totals(state) == (-300, 0, 0, -300)
    assert refused(state, CreateTransfer(TransferSpec(SHOP, BOB, 1, "USD"))).reason is (
        Reason.INSUFFICIENT_FUNDS
    )


def test_an_unlimited_overdraft_has_no_floor_whatever_the_minimum() -> None:
    state = ledger(shop(minimum(1_000), overdraft_mode=OverdraftMode.UNLIMITED))

    pay(state, 1_000_000)

    assert totals(state) == (-1_000_000, 0, 0, -1_000_000)


# --- the maximum balance ----------------------------------------------------------------


def test_a_credit_may_not_raise_the_posted_balance_above_the_maximum() -> None:
    policy = FundsPolicy(max_balance_minor=12_000)
    state = ledger(shop(policy, balances=Balances(posted_credits_minor=10_000)))

    credit(state, 2_000)  # exactly the maximum
    error = refused(state, CreateTransfer(TransferSpec(FUND, SHOP, 1, "USD")))

    assert error.reason is Reason.BALANCE_LIMIT_EXCEEDED
    assert error.metadata == {
        "account_id": SHOP,
        "max_balance_minor": "12000",
        "posted_minor": "12000",
    }
    pay(state, 500)  # debits are not limited
    credit(state, 500)
    assert totals(state) == (12_000, 0, 0, 12_000)


def test_the_maximum_counts_credits_that_are_not_available_yet() -> None:
    policy = replace(POLICY, max_balance_minor=1_000)
    state = ledger(shop(policy))

    credit(state, 1_000)
    assert totals(state) == (1_000, 900, 100, 0)
    error = refused(state, CreateTransfer(TransferSpec(FUND, SHOP, 1, "USD")))
    assert (error.reason, error.metadata["posted_minor"]) == (
        Reason.BALANCE_LIMIT_EXCEEDED, "1000",
    )  # fmt: skip


def test_a_hold_credit_is_limited_when_captured() -> None:
    policy = FundsPolicy(max_balance_minor=1_000)
    state = ledger(shop(policy, balances=Balances(posted_credits_minor=800)))
    hold = credit(state, 500, pending=True)  # posts nothing yet

    error = refused(state, PostTransfer(hold.id))
    assert error.reason is Reason.BALANCE_LIMIT_EXCEEDED
    state.apply(PostTransfer(hold.id, 200), issued())
    assert totals(state) == (1_000, 0, 0, 1_000)


def test_a_maximum_lowered_below_the_balance_refuses_any_credit_but_not_debits() -> None:
    policy = FundsPolicy(max_balance_minor=5_000)
    state = ledger(shop(policy, balances=Balances(posted_credits_minor=10_000)))

    error = refused(state, CreateTransfer(TransferSpec(FUND, SHOP, 1, "USD")))
    assert error.metadata == {
        "account_id": SHOP,
        "max_balance_minor": "5000",
        "posted_minor": "10000",
    }
    pay(state, 100)
    assert totals(state) == (9_900, 0, 0, 9_900)


# --- debit limits -----------------------------------------------------------------------


def limited(*limits: DebitLimit) -> Account:
    return make_account(ALICE, funds_policy=FundsPolicy(debit_limits=limits))


def limit_refusal(state: Ledger, amount: int) -> dict[str, str]:
    error = refused(state, CreateTransfer(TransferSpec(ALICE, BOB, amount, "USD")))
    assert error.reason is Reason.DEBIT_LIMIT_EXCEEDED
    return dict(error.metadata)


def test_exactly_max_count_debits_pass_in_a_window() -> None:
    state = ledger(limited(DebitLimit(LimitWindow.DAY, max_count=3)))

    for _ in range(3):
        pay(state, 1, source=ALICE)

    assert limit_refusal(state, 1) == {
        "account_id": ALICE,
        "window": "DAY",
        "measure": "count",
        "limit": "3",
        "used": "3",
        "remaining": "0",
    }
    assert len(state.writes().new_transfers) == 3
    assert state.accounts[ALICE].balances.posted(CREDIT) == 9_997


def test_exactly_max_amount_passes_in_a_window() -> None:
    state = ledger(limited(DebitLimit(LimitWindow.WEEK, max_amount_minor=1_000)))
    pay(state, 400, source=ALICE)
    pay(state, 400, source=ALICE)

    assert limit_refusal(state, 201) == {
        "account_id": ALICE,
        "window": "WEEK",
        "measure": "amount",
        "limit": "1000",
        "used": "800",
        "remaining": "200",
    }
    pay(state, 200, source=ALICE)
    assert limit_refusal(state, 1) == {
        "account_id": ALICE,
        "window": "WEEK",
        "measure": "amount",
        "limit": "1000",
        "used": "1000",
        "remaining": "0",
    }
    credit(state, 5_000, to=ALICE)  # credits are not debits
    assert limit_refusal(state, 1)["used"] == "1000"


def test_debit_limits_start_from_what_the_window_used_before() -> None:
    limits = (
        DebitLimit(LimitWindow.DAY, max_amount_minor=1_000, max_count=3),
        DebitLimit(LimitWindow.DAYS_30, max_count=10),
    )
    usage = {ALICE: DebitUsage({LimitWindow.DAY: (900, 2), LimitWindow.DAYS_30: (5_000, 9)})}
    state = ledger(limited(*limits), usage=usage)

    assert limit_refusal(state, 101)["remaining"] == "100"
    pay(state, 100, source=ALICE)  # the 3rd today, the 10th in 30 days
    refusal = limit_refusal(state, 1)
    assert (refusal["window"], refusal["measure"], refusal["used"]) == ("DAY", "amount", "1000")


def test_a_hold_counts_against_the_limit() -> None:
    state = ledger(limited(DebitLimit(LimitWindow.DAY, max_amount_minor=1_000, max_count=2)))
    pay(state, 600, source=ALICE, pending=True)

    refusal = limit_refusal(state, 401)
    assert (refusal["measure"], refusal["used"], refusal["remaining"]) == ("amount", "600", "400")
    pay(state, 400, source=ALICE)
    refusal = limit_refusal(state, 1)
    assert (refusal["measure"], refusal["used"]) == ("amount", "1000")


def test_a_batch_past_the_limit_is_refused_whole_naming_the_item() -> None:
    state = ledger(limited(DebitLimit(LimitWindow.DAY, max_count=3)))
    specs = [TransferSpec(ALICE, BOB, 10, "USD")] * 4

    error = refused(state, CreateTransfers(specs))

    assert error.reason is Reason.DEBIT_LIMIT_EXCEEDED
    assert (error.metadata["item_index"], error.metadata["used"]) == ("3", "3")
    state.apply(CreateTransfers(specs[:3]), issued())
    assert limit_refusal(state, 1)["used"] == "3"


# --- reversals of credits that are not available yet -----------------------------------


def test_a_reversal_takes_the_latest_unreleased_part_first_and_leaves_available_alone() -> None:
    state = ledger(shop(balances=Balances(posted_credits_minor=10_000)))
    original = credit(state, 1_000)
    reserve, delayed = parts_of(state, original)
    assert totals(state) == (11_000, 900, 100, 10_000)

    reversal, _ = state.apply(ReverseTransfer(ReversalRequest(original.id, 300)), issued())

    assert (reversal.debit_account_id, reversal.credit_account_id) == (SHOP, FUND)
    assert totals(state) == (10_700, 700, 0, 10_000)
    ended_reserve, ended_delayed = (state.funds[reserve.id], state.funds[delayed.id])
    assert (ended_reserve.end_kind, ended_reserve.ended_amount_minor) == (EndKind.REVERSED, 100)
    assert ended_reserve.remainder_id is None
    assert (ended_delayed.end_kind, ended_delayed.ended_amount_minor) == (EndKind.REVERSED, 200)
    assert ended_delayed.ended_at == NOW
    assert ended_delayed.end_request_id is not None
    assert ended_delayed.remainder_id is not None
    remainder = state.funds[ended_delayed.remainder_id]
    assert remainder == replace(
        delayed, id=remainder.id, amount_minor=700, remainder_of_id=delayed.id
    )

    # The rest of the credit: all of it from the remainder.
    state.apply(ReverseTransfer(ReversalRequest(original.id)), issued())
    assert totals(state) == (10_000, 0, 0, 10_000)
    assert (state.funds[remainder.id].end_kind, state.funds[remainder.id].ended_amount_minor) == (
        EndKind.REVERSED, 700,
    )  # fmt: skip
    assert state.funds[remainder.id].remainder_id is None
    assert open_parts(state) == []


def test_a_reversal_takes_the_rest_from_the_available_balance() -> None:
    state = ledger(shop(balances=Balances(posted_credits_minor=10_000)))
    original = credit(state, 1_000)
    state.apply(ReleaseFunds(SHOP, amount_minor=900), issued())
    assert totals(state) == (11_000, 0, 100, 10_900)

    state.apply(ReverseTransfer(ReversalRequest(original.id)), issued())

    assert totals(state) == (10_000, 0, 0, 10_000)  # 100 from the reserve, 900 available
    assert open_parts(state) == []


def test_a_reversal_needing_more_than_is_available_is_refused() -> None:
    state = ledger(shop())
    original = credit(state, 1_000)
    state.apply(ReleaseFunds(SHOP, amount_minor=900), issued())
    pay(state, 900)
    assert totals(state) == (100, 0, 100, 0)

    error = refused(state, ReverseTransfer(ReversalRequest(original.id)))
    assert (error.reason, error.metadata["available_minor"]) == (Reason.INSUFFICIENT_FUNDS, "0")

    state.apply(ReverseTransfer(ReversalRequest(original.id, 100)), issued())  # the reserve only
    assert totals(state) == (0, 0, 0, 0)


def test_a_reversal_gives_back_available_money() -> None:
    payer = make_account(ALICE, funds_policy=POLICY)
    state = ledger(payer, shop())
    original = pay(state, 1_000, source=ALICE, to=SHOP)
    assert totals(state, ALICE) == (9_000, 0, 0, 9_000)

    reversal, _ = state.apply(ReverseTransfer(ReversalRequest(original.id, 400)), issued())

    assert parts_of(state, reversal) == []  # nothing held back from the payer
    assert totals(state, ALICE) == (9_400, 0, 0, 9_400)
    assert totals(state) == (600, 600, 0, 0)  # 100 reserve, then 300 of the 900 delayed


# --- early release ----------------------------------------------------------------------


def test_release_of_named_parts() -> None:
    state = ledger(shop())
    first = credit(state, 1_000)
    second = credit(state, 2_000, availability=Availability(delay=timedelta(hours=1)))
    first_reserve, first_delayed = parts_of(state, first)
    second_reserve, second_delayed = parts_of(state, second)
    assert totals(state) == (3_000, 2_700, 300, 0)

    result = state.apply(ReleaseFunds(SHOP, funds_ids=(first_delayed.id,)), issued())

    assert result.released_minor == 900
    assert result.fee_transfer is None
    [ended] = result.released
    assert ended == replace(
        first_delayed,
        ended_at=NOW,
        end_kind=EndKind.RELEASED_EARLY,
        ended_amount_minor=900,
        end_request_id=ended.end_request_id,
    )
    assert totals(state) == (3_000, 1_800, 300, 900)
    assert result.account == state.accounts[SHOP]
    reserves = sorted([first_reserve, second_reserve], key=lambda f: f.id)
    assert open_parts(state) == [second_delayed, *reserves]
    event = state.writes().events[-1]
    assert (event.type, event.funds, event.accounts) == (
        EventType.FUNDS_RELEASED, (ended,), (state.accounts[SHOP],),
    )  # fmt: skip


def test_release_of_an_amount_takes_the_oldest_parts_first_and_splits_the_last() -> None:
    state = ledger(shop())
    later_credit = credit(state, 1_000)  # available Monday 00:00
    sooner_credit = credit(state, 1_000, availability=Availability(at=NOW + timedelta(days=1)))
    _, later_part = parts_of(state, later_credit)
    _, sooner_part = parts_of(state, sooner_credit)
    writes_before = state.writes()

    result = state.apply(ReleaseFunds(SHOP, amount_minor=1_200), issued())

    assert result.released_minor == 1_200
    first, second = result.released
    assert (first.id, first.ended_amount_minor, first.remainder_id) == (sooner_part.id, 900, None)
    assert (second.id, second.ended_amount_minor) == (later_part.id, 300)
    assert second.end_kind is EndKind.RELEASED_EARLY
    assert second.remainder_id is not None
    remainder = state.funds[second.remainder_id]
    assert remainder == replace(
        later_part, id=remainder.id, amount_minor=600, remainder_of_id=later_part.id
    )
    assert totals(state) == (2_000, 600, 200, 1_200)
    assert result.schedule == (  # what is left, summed by time and kind
        Part(AVAILABILITY, 600, AVAILABLE_AT),
        Part(RESERVE, 200, RESERVE_UNTIL),
    )
    # All four parts and the remainder are new in this transaction: written once each,
    # the two released ones as they ended.
    new_funds = state.writes().new_funds
    assert [f.id for f in new_funds] == [*(f.id for f in writes_before.new_funds), remainder.id]
    assert [f.end_kind for f in new_funds] == [
        None, EndKind.RELEASED_EARLY, None, EndKind.RELEASED_EARLY, None,
    ]  # fmt: skip
    assert state.writes().ended_funds == []


def test_release_pays_its_fee_from_what_it_released_in_the_same_command() -> None:
    state = ledger(shop())
    credit(state, 1_000)

    result = state.apply(
        ReleaseFunds(SHOP, amount_minor=900, fee_minor=25, fee_account_id=FEES), issued()
    )

    fee = result.fee_transfer
    assert fee is not None
    assert (fee.debit_account_id, fee.credit_account_id, fee.amount_minor, fee.state) == (
        SHOP, FEES, 25, TransferState.POSTED,
    )  # fmt: skip
    assert totals(state) == (975, 0, 100, 875)
    assert totals(state, FEES) == (25, 0, 0, 25)
    assert result.account.balances.available(CREDIT) == 875
    released, created = state.writes().events[-2:]
    assert (released.type, created.type) == (EventType.FUNDS_RELEASED, EventType.TRANSFER_CREATED)
    assert released.accounts[0].balances.available(CREDIT) == 900  # before the fee


def test_a_fee_larger_than_what_is_available_refuses_the_whole_release() -> None:
    state = ledger(shop())
    credit(state, 1_000)

    error = refused(state, ReleaseFunds(SHOP, amount_minor=900, fee_minor=901, fee_account_id=FEES))

    assert error.reason is Reason.INSUFFICIENT_FUNDS
    assert totals(state) == (1_000, 900, 100, 0)


def test_early_release_needs_the_policy_to_allow_it() -> None:
    state = ledger(shop(replace(POLICY, early_release_allowed=False)))
    transfer = credit(state, 1_000)
    _, delayed = parts_of(state, transfer)

    for command in (ReleaseFunds(SHOP, amount_minor=1), ReleaseFunds(SHOP, (delayed.id,))):
        error = refused(state, command)
        assert (error.reason, error.metadata) == (
            Reason.EARLY_RELEASE_NOT_ALLOWED, {"account_id": SHOP},
        )  # fmt: skip


def test_a_release_may_not_exceed_the_pending_availability() -> None:
    state = ledger(shop())
    credit(state, 1_000)

    error = refused(state, ReleaseFunds(SHOP, amount_minor=901))  # the reserve is not counted

    assert error.reason is Reason.RELEASE_EXCEEDS_PENDING
    assert error.metadata == {"account_id": SHOP, "pending_availability_minor": "900"}
    assert state.apply(ReleaseFunds(SHOP, amount_minor=900), issued()).released_minor == 900


def test_a_reserve_is_never_released_early() -> None:
    state = ledger(shop())
    reserve, _ = parts_of(state, credit(state, 1_000))

    error = refused(state, ReleaseFunds(SHOP, (reserve.id,)))

    assert error.reason is Reason.FUNDS_NOT_SCHEDULED
    assert error.metadata == {"funds_id": reserve.id, "kind": "RESERVE", "state": "SCHEDULED"}


def test_a_released_part_cannot_be_released_again() -> None:
    state = ledger(shop())
    _, delayed = parts_of(state, credit(state, 1_000))
    state.apply(ReleaseFunds(SHOP, (delayed.id,)), issued())

    error = refused(state, ReleaseFunds(SHOP, (delayed.id,)))

    assert error.reason is Reason.FUNDS_NOT_SCHEDULED
    assert error.metadata == {
        "funds_id": delayed.id,
        "kind": "AVAILABILITY",
        "state": "RELEASED_EARLY",
    }


def test_a_part_of_another_account_or_of_none_is_not_found() -> None:
    other = make_account(ALICE, funds_policy=POLICY)
    state = ledger(shop(), other)
    _, alices = parts_of(state, credit(state, 1_000, to=ALICE))

    for funds_id in (alices.id, "funds_nonenonenonenonenonenonen"):
        error = refused(state, ReleaseFunds(SHOP, (funds_id,)))
        assert (error.reason, error.metadata) == (
            Reason.FUNDS_NOT_FOUND, {"funds_id": funds_id, "account_id": SHOP},
        )  # fmt: skip


def test_a_part_named_twice_is_released_once() -> None:
    state = ledger(shop())
    _, delayed = parts_of(state, credit(state, 1_000))

    result = state.apply(ReleaseFunds(SHOP, (delayed.id, delayed.id)), issued())

    assert result.released_minor == 900
    assert [f.id for f in result.released] == [delayed.id]
    assert totals(state) == (1_000, 0, 100, 900)
    assert [f.id for f in state.funds.values() if not f.is_open] == [delayed.id]
    assert len(state.funds) == 2  # no remainder


# --- release when due -------------------------------------------------------------------


def test_due_release_ends_only_the_parts_whose_time_has_come_and_each_once() -> None:
    first = ledger(shop())
    transfer = credit(first, 1_000)
    reserve, delayed = parts_of(first, transfer)
    version = first.accounts[SHOP].version

    just_before = later(first, AVAILABLE_AT - timedelta(microseconds=1))
    assert just_before.apply(ReleaseDueFunds(SHOP), issued()) == ()
    assert not just_before.writes()

    state = later(first, AVAILABLE_AT)
    released = state.apply(ReleaseDueFunds(SHOP), issued())

    assert released == (
        replace(
            delayed,
            ended_at=AVAILABLE_AT,
            end_kind=EndKind.RELEASED,
            ended_amount_minor=900,
        ),
    )
    assert totals(state) == (1_000, 0, 100, 900)
    assert state.accounts[SHOP].version == version + 1
    # Again in the same transaction: nothing is due any more.
    assert state.apply(ReleaseDueFunds(SHOP), issued()) == ()
    writes = state.writes()
    assert writes.ended_funds == [released[0]]
    assert writes.new_funds == []
    assert types(writes.events) == [EventType.FUNDS_RELEASED]
    assert [a.id for a in writes.changed_accounts] == [SHOP]
    assert state.accounts[SHOP].version == version + 1

    # The reserve's turn, 30 days of 24 h after the credit.
    final = later(state, RESERVE_UNTIL)
    [ended] = final.apply(ReleaseDueFunds(SHOP), issued())
    assert (ended.id, ended.end_kind, ended.ended_amount_minor) == (
        reserve.id, EndKind.RELEASED, 100,
    )  # fmt: skip
    assert totals(final) == (1_000, 0, 0, 1_000)
    assert final.apply(ReleaseDueFunds(SHOP), issued()) == ()


def test_due_release_of_an_unknown_account_does_nothing() -> None:
    state = ledger(shop())
    assert state.apply(ReleaseDueFunds("acct_gonegggggggggggggggggggggggg"), issued()) == ()
    assert not state.writes()


def test_due_release_includes_a_remainder_and_a_debit_freeze_does_not_stop_releases() -> None:
    state = ledger(shop())
    credit(state, 1_000)
    state.apply(ReleaseFunds(SHOP, amount_minor=400), issued())
    state.apply(FreezeAccount(SHOP, scope=FreezeScope.DEBITS, reason="review"), issued())
    state.apply(ReleaseFunds(SHOP, amount_minor=100), issued())
    assert totals(state) == (1_000, 400, 100, 500)

    state = later(state, AVAILABLE_AT)
    [ended] = state.apply(ReleaseDueFunds(SHOP), issued())

    assert (ended.amount_minor, ended.ended_amount_minor) == (400, 400)
    assert ended.remainder_of_id is not None
    assert totals(state) == (1_000, 0, 100, 900)


# --- balance monitors -------------------------------------------------------------------


def monitor_events(state: Ledger) -> list[tuple[EventType, bool]]:
    return [(e.type, e.monitor.triggered) for e in state.writes().events if e.monitor is not None]


def test_a_monitor_is_told_once_per_crossing_each_way() -> None:
    state = ledger()
    below = CreateBalanceMonitor(ALICE, MonitorField.AVAILABLE, MonitorOperator.BELOW, 500)
    created = state.apply(below, issued())
    assert not created.triggered
    assert monitor_events(state) == []

    pay(state, 9_600, source=ALICE)  # 400: crossed
    pay(state, 100, source=ALICE)  # 300: still below
    pay(state, 150, source=BOB, to=ALICE)  # 450: still below
    assert monitor_events(state) == [(EventType.BALANCE_MONITOR_TRIGGERED, True)]
    [triggered] = [e for e in state.writes().events if e.monitor is not None]
    assert triggered.monitor is not None
    assert triggered.monitor.id == created.id
    assert triggered.accounts[0].balances.available(CREDIT) == 400

    pay(state, 50, source=BOB, to=ALICE)  # 500: no longer below
    pay(state, 1, source=BOB, to=ALICE)
    assert monitor_events(state) == [
        (EventType.BALANCE_MONITOR_TRIGGERED, True),
        (EventType.BALANCE_MONITOR_CLEARED, False),
    ]
    assert [m.triggered for m in state.writes().monitors] == [False]


def test_a_monitor_already_true_is_triggered_at_creation() -> None:
    state = ledger()
    above = CreateBalanceMonitor(ALICE, MonitorField.POSTED, MonitorOperator.AT_OR_ABOVE, 10_000)

    created = state.apply(above, issued())

    assert created.triggered
    assert monitor_events(state) == [(EventType.BALANCE_MONITOR_TRIGGERED, True)]
    pay(state, 1, source=BOB, to=ALICE)  # still true: nothing
    assert len(monitor_events(state)) == 1
    pay(state, 2, source=ALICE)  # 9,999
    assert monitor_events(state)[-1] == (EventType.BALANCE_MONITOR_CLEARED, False)


def test_a_monitor_watches_pending_availability_through_credits_and_releases() -> None:
    state = ledger(shop())
    watch = CreateBalanceMonitor(
        SHOP, MonitorField.PENDING_AVAILABILITY, MonitorOperator.AT_OR_ABOVE, 900
    )
    state.apply(watch, issued())

    credit(state, 1_000)  # 900 pending
    state.apply(ReleaseFunds(SHOP, amount_minor=1), issued())  # 899

    assert monitor_events(state) == [
        (EventType.BALANCE_MONITOR_TRIGGERED, True),
        (EventType.BALANCE_MONITOR_CLEARED, False),
    ]


def test_a_refused_change_or_a_deleted_monitor_tells_nothing() -> None:
    state = ledger()
    below = CreateBalanceMonitor(ALICE, MonitorField.AVAILABLE, MonitorOperator.BELOW, 500)
    created = state.apply(below, issued())

    refused(state, CreateTransfer(TransferSpec(ALICE, BOB, 20_000, "USD")))
    state.apply(DeleteBalanceMonitor(created.id), issued())
    pay(state, 9_600, source=ALICE)

    assert monitor_events(state) == []


def test_at_most_twenty_live_monitors_per_account() -> None:
    state = ledger()
    watch = CreateBalanceMonitor(ALICE, MonitorField.POSTED, MonitorOperator.BELOW, 0)
    created = [state.apply(watch, issued()) for _ in range(20)]

    error = refused(state, watch)

    assert (error.reason, error.metadata) == (
        Reason.MONITOR_LIMIT_REACHED, {"account_id": ALICE, "limit": "20"},
    )  # fmt: skip
    state.apply(DeleteBalanceMonitor(created[0].id), issued())
    state.apply(watch, issued())


# --- the debit-only freeze --------------------------------------------------------------


def test_a_debit_freeze_lets_credits_in_and_refuses_debits_with_its_reason() -> None:
    state = ledger()
    frozen = state.apply(
        FreezeAccount(ALICE, scope=FreezeScope.DEBITS, reason="chargeback review"), issued()
    )
    assert (frozen.state, frozen.freeze_scope, frozen.freeze_reason) == (
        AccountState.FROZEN, FreezeScope.DEBITS, "chargeback review",
    )  # fmt: skip

    pay(state, 100, source=BOB, to=ALICE)
    pay(state, 100, source=BOB, to=ALICE, pending=True)
    assert totals(state, ALICE) == (10_100, 0, 0, 10_100)

    for spec in (
        TransferSpec(ALICE, BOB, 1, "USD"),
        TransferSpec(ALICE, BOB, 1, "USD", pending=True),
    ):
        error = refused(state, CreateTransfer(spec))
        assert error.reason is Reason.ACCOUNT_FROZEN
        assert error.metadata == {
            "account_id": ALICE,
            "scope": "DEBITS",
            "freeze_reason": "chargeback review",
        }
        assert "chargeback review" in error.message


def test_a_full_freeze_refuses_credits_too() -> None:
    state = ledger()
    state.apply(FreezeAccount(ALICE, reason="closed by support"), issued())

    error = refused(state, CreateTransfer(TransferSpec(BOB, ALICE, 1, "USD")))

    assert error.reason is Reason.ACCOUNT_FROZEN
    assert error.metadata == {
        "account_id": ALICE,
        "scope": "ALL",
        "freeze_reason": "closed by support",
    }


def test_a_debit_freeze_stops_the_capture_of_a_hold_on_the_account_but_not_its_void() -> None:
    state = ledger()
    first = pay(state, 100, source=ALICE, pending=True)
    second = pay(state, 100, source=ALICE, pending=True)
    state.apply(FreezeAccount(ALICE, scope=FreezeScope.DEBITS), issued())

    assert refused(state, PostTransfer(first.id)).reason is Reason.ACCOUNT_FROZEN
    assert state.apply(VoidTransfer(second.id), issued()).state is TransferState.VOIDED


# --- policy changes ---------------------------------------------------------------------


def test_each_policy_change_is_recorded_with_who_asked() -> None:
    state = ledger()
    account = state.apply(
        CreateAccount("USD", CREDIT, funds_policy=POLICY), Issued("create", "t" * 32)
    )
    state.apply(CreateAccount("USD", CREDIT), Issued("no-policy"))  # none to record
    stricter = replace(POLICY, availability=AvailabilityPolicy(5))
    state.apply(
        UpdateAccount(account.id, changes=AccountChanges(funds_policy=stricter)), Issued("update")
    )
    state.apply(  # the same policy again: no change
        UpdateAccount(account.id, changes=AccountChanges(funds_policy=stricter)), Issued("same")
    )
    state.apply(UpdateAccount(account.id, changes=AccountChanges(name="x")), Issued("rename"))
    state.apply(
        UpdateAccount(account.id, changes=AccountChanges(funds_policy=NO_POLICY)), Issued("clear")
    )

    assert state.writes().policy_changes == [
        PolicyChange(account.id, 1, NO_POLICY, POLICY, "create", "t" * 32, NOW),
        PolicyChange(account.id, 2, POLICY, stricter, "update", None, NOW),
        PolicyChange(account.id, 4, stricter, NO_POLICY, "clear", None, NOW),
    ]
    assert state.accounts[account.id].funds_policy == NO_POLICY


def test_a_policy_change_applies_to_later_credits_only() -> None:
    state = ledger(shop())
    before = credit(state, 1_000)
    stricter = replace(POLICY, availability=AvailabilityPolicy(5))
    state.apply(UpdateAccount(SHOP, changes=AccountChanges(funds_policy=stricter)), issued())
    after = credit(state, 1_000)

    assert parts_of(state, before)[1].available_at == AVAILABLE_AT
    assert parts_of(state, after)[1].available_at == utc(2025, 3, 6)


def test_a_policy_for_a_debit_normal_account_is_refused_on_update() -> None:
    state = ledger()
    with pytest.raises(InvalidInput):
        state.apply(UpdateAccount(FUND, changes=AccountChanges(funds_policy=POLICY)), issued())


def test_a_policy_on_a_debit_normal_account_names_the_policy_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_policy(FundsPolicy(early_release_allowed=True), DEBIT)
    assert caught.value.violations == [
        FieldViolation(
            "funds_policy",
            FieldReason.OUT_OF_RANGE,
            "a funds policy applies to credit-normal accounts",
        )
    ]


def test_a_policy_out_of_range_is_refused_naming_each_field() -> None:
    policy = FundsPolicy(
        availability=AvailabilityPolicy(91, Calendar.DAYS, "Nowhere/Atlantis"),
        reserve=ReservePolicy(rolling_percent_bps=10_001, rolling_days=366, minimum_minor=-1),
        debit_limits=(
            DebitLimit(LimitWindow.DAY, max_amount_minor=1),
            DebitLimit(LimitWindow.DAY),
            DebitLimit(LimitWindow.WEEK, max_amount_minor=-1, max_count=1),
        ),
        max_balance_minor=-1,
    )

    with pytest.raises(InvalidInput) as caught:
        validate_policy(policy, CREDIT)

    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("funds_policy.availability.delay_days", FieldReason.OUT_OF_RANGE),
        ("funds_policy.availability.time_zone", FieldReason.INVALID_FORMAT),
        ("funds_policy.reserve.rolling_percent_bps", FieldReason.OUT_OF_RANGE),
        ("funds_policy.reserve.rolling_days", FieldReason.OUT_OF_RANGE),
        ("funds_policy.reserve.minimum_minor", FieldReason.OUT_OF_RANGE),
        ("funds_policy.debit_limits[1].window", FieldReason.DUPLICATE),
        ("funds_policy.debit_limits[1]", FieldReason.REQUIRED),
        ("funds_policy.debit_limits[2]", FieldReason.OUT_OF_RANGE),
        ("funds_policy.max_balance_minor", FieldReason.OUT_OF_RANGE),
    ]


@pytest.mark.parametrize(
    "reserve", [ReservePolicy(rolling_percent_bps=5), ReservePolicy(rolling_days=5)]
)
def test_a_rolling_reserve_needs_both_its_percentage_and_its_days(reserve: ReservePolicy) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_policy(FundsPolicy(reserve=reserve), CREDIT)
    assert [v.field for v in caught.value.violations] == ["funds_policy.reserve.rolling_days"]


def test_the_widest_valid_policy_passes_and_survives_storage() -> None:
    policy = FundsPolicy(
        availability=AvailabilityPolicy(90, Calendar.BUSINESS_DAYS, TOKYO),
        reserve=ReservePolicy(rolling_percent_bps=10_000, rolling_days=365, minimum_minor=0),
        early_release_allowed=True,
        debit_limits=tuple(DebitLimit(w, max_amount_minor=5, max_count=6) for w in LimitWindow),
        max_balance_minor=99,
    )
    validate_policy(policy, CREDIT)
    validate_policy(NO_POLICY, DEBIT)

    assert policy_from_json(policy_to_json(policy)) == policy
    assert policy_to_json(policy)["debit_limits"][2]["window"] == "30_DAYS"
    assert policy_to_json(NO_POLICY) == {}
    assert policy_from_json({}) == NO_POLICY


# --- found while writing these tests (bugs since fixed) ---------------------------------


@pytest.mark.parametrize(
    ("normal", "policy"),
    [
        (DEBIT, FundsPolicy(reserve=ReservePolicy(minimum_minor=100))),
        (CREDIT, FundsPolicy(availability=AvailabilityPolicy(1, time_zone="Mars/Olympus_Mons"))),
        (CREDIT, FundsPolicy(availability=AvailabilityPolicy(10_000))),
        (CREDIT, FundsPolicy(reserve=ReservePolicy(rolling_percent_bps=20_000, rolling_days=1))),
    ],
)
def test_create_account_validates_its_funds_policy(
    normal: NormalBalance, policy: FundsPolicy
) -> None:
    state = ledger()
    with pytest.raises(InvalidInput):
        state.apply(CreateAccount("USD", normal, funds_policy=policy), issued())


def test_a_hold_voided_in_the_same_transaction_stops_counting_against_the_limit() -> None:
    limit = DebitLimit(LimitWindow.DAY, max_amount_minor=1_000)
    state = ledger(limited(limit))
    hold = pay(state, 1_000, source=ALICE, pending=True)
    # In a later transaction the void and the payment pass (storage counts no voided
    # hold); when the pipeline batches both into one transaction they must pass too.
    state = later(
        state, NOW + timedelta(minutes=1), {ALICE: DebitUsage({LimitWindow.DAY: (1_000, 1)})}
    )
    state.apply(VoidTransfer(hold.id), issued())
    pay(state, 1_000, source=ALICE)


def test_a_hold_grown_later_counts_only_in_the_windows_it_was_made_in() -> None:
    # A hold of 800 made two days ago: the DAY window no longer counts it (storage reads
    # only today's 700 of other debits there), the WEEK window does. Its increment
    # counts where the hold does: not in today's window, so today's 700 + 500 passes.
    day = DebitLimit(LimitWindow.DAY, max_amount_minor=1_000)
    week = DebitLimit(LimitWindow.WEEK, max_amount_minor=1_000)
    for limit, usage, allowed in (
        (day, DebitUsage({LimitWindow.DAY: (700, 1)}), True),
        (week, DebitUsage({LimitWindow.WEEK: (800, 1)}), False),
    ):
        state = ledger(limited(limit))
        hold = pay(state, 800, source=ALICE, pending=True)
        state = later(state, NOW + timedelta(days=2), {ALICE: usage})
        if allowed:
            assert state.apply(IncrementHold(hold.id, 500), issued()).amount_minor == 1_300
        else:
            error = refused(state, IncrementHold(hold.id, 500))
            assert (error.reason, error.metadata["window"], error.metadata["remaining"]) == (
                Reason.DEBIT_LIMIT_EXCEEDED, "WEEK", "200",
            )  # fmt: skip


def test_an_over_capture_past_the_debit_limit_is_refused_and_leaves_the_hold() -> None:
    state = ledger(limited(DebitLimit(LimitWindow.DAY, max_amount_minor=1_000)))
    hold = pay(state, 1_000, source=ALICE, pending=True, over_capture_bps=2_000)

    error = refused(state, PostTransfer(hold.id, 1_100))

    assert (error.reason, error.metadata["measure"], error.metadata["remaining"]) == (
        Reason.DEBIT_LIMIT_EXCEEDED, "amount", "0",
    )  # fmt: skip
    assert state.transfers[hold.id] == hold
    assert state.apply(PostTransfer(hold.id, 1_000), issued()).posted_amount_minor == 1_000
