"""The payout state machine and its money, decided by the ledger alone (pure): holds at
creation, captures, voids and the return; the rail's reports taken in any order and any
number of times; inbound credits and their returns (docs/payouts.md)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from moneymovement.domain.accounts import Account, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.commands import (
    CancelPayout,
    CreateExternalAccount,
    CreatePayout,
    DisableExternalAccount,
    PostTransfer,
    ReceiveInbound,
    ReturnInbound,
    ReverseTransfer,
    SettlePayout,
    StartPayout,
    VoidTransfer,
)
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.events import EventType
from moneymovement.domain.funds import AvailabilityPolicy, FundsPolicy
from moneymovement.domain.ledger import Issued, Ledger
from moneymovement.domain.payouts import (
    ExternalAccount,
    InboundState,
    Payout,
    PayoutMethod,
    PayoutState,
    can_move,
    fingerprint,
    settlement_account_id,
)
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import TransferState
from tests.unit.ledger_builders import NOW, book, make_account

SELLER = "acct_sellersssssssssssssssssss"
SETTLEMENT = settlement_account_id("ten_test", "simulated", "USD")
FEES = "acct_feesfffffffffffffffffffff"
_requests = itertools.count()


def issued() -> Issued:
    return Issued(f"req-{next(_requests)}")


def accounts(**seller: object) -> dict[str, Account]:
    return book(
        make_account(SELLER, **seller),  # holds 10,000
        make_account(
            SETTLEMENT, normal_balance=NormalBalance.DEBIT,
            overdraft_mode=OverdraftMode.UNLIMITED, balances=Balances(),
        ),
        make_account(FEES, balances=Balances()),
    )  # fmt: skip


def next_transaction(state: Ledger, later: timedelta = timedelta(seconds=1)) -> Ledger:
    """The next transaction, seeing what `state` left, as storage would read it back."""
    return Ledger(
        state.now + later, state.accounts, state.transfers, {},
        funds=list(state.funds.values()), records=list(state.records.values()),
    )  # fmt: skip


def destination(state: Ledger) -> ExternalAccount:
    return state.apply(
        CreateExternalAccount(
            "simulated", "USD", "110000000", "6789", fingerprint("t", "1", "6789")
        ),
        issued(),
    )


def payout(state: Ledger, amount: int = 4_000, fee: int = 100) -> Payout:
    external = destination(state)
    return state.apply(
        CreatePayout(
            SELLER, external.id, amount, "USD", PayoutMethod.INSTANT,
            settlement_account_id=SETTLEMENT, fee_minor=fee, fee_account_id=FEES if fee else "",
        ),
        issued(),
    )  # fmt: skip


def settle(state: Ledger, made: Payout, to: PayoutState, reason: str = "") -> Payout | None:
    return state.apply(SettlePayout(made.id, made.transfer_ids, to, reason), issued())


def balance(state: Ledger, account_id: str) -> tuple[int, int]:
    account = state.accounts[account_id]
    normal = account.normal_balance
    return account.balances.posted(normal), account.balances.available(normal)


def test_the_states_go_only_forward() -> None:
    assert can_move(PayoutState.PENDING, PayoutState.PROCESSING)
    assert can_move(PayoutState.PENDING, PayoutState.CANCELED)
    assert can_move(PayoutState.POSTED, PayoutState.RETURNED)
    assert not can_move(PayoutState.PROCESSING, PayoutState.CANCELED)
    assert not can_move(PayoutState.POSTED, PayoutState.FAILED)
    assert not can_move(PayoutState.FAILED, PayoutState.POSTED)
    assert not can_move(PayoutState.RETURNED, PayoutState.POSTED)


def test_a_payout_holds_its_amount_and_fee_at_once_and_posts_both() -> None:
    state = Ledger(NOW, accounts(), {}, {})
    made = payout(state)
    assert made.state is PayoutState.PENDING
    assert balance(state, SELLER) == (10_000, 5_900)
    holds = [state.transfers[t] for t in made.transfer_ids]
    assert [(h.state, h.owner_id, h.expires_at) for h in holds] == [
        (TransferState.PENDING, made.id, None), (TransferState.PENDING, made.id, None),
    ]  # fmt: skip
    told = [e.type for e in state.events if e.payout is not None]
    state = next_transaction(state)
    started = state.apply(StartPayout(made.id, made.transfer_ids), issued())
    assert started is not None
    assert started.state is PayoutState.PROCESSING
    assert state.apply(StartPayout(made.id, made.transfer_ids), issued()) is None  # once
    posted = settle(state, started, PayoutState.POSTED)
    assert posted is not None
    assert posted.state is PayoutState.POSTED
    assert balance(state, SELLER) == (5_900, 5_900)
    assert balance(state, FEES) == (100, 100)
    assert balance(state, SETTLEMENT) == (-4_000, -4_000)
    assert settle(state, posted, PayoutState.POSTED) is None  # a repeated callback
    assert settle(state, posted, PayoutState.FAILED, "late") is None  # a stale one
    told += [e.type for e in state.events if e.payout is not None]
    assert told == [
        EventType.PAYOUT_CREATED, EventType.PAYOUT_PROCESSING, EventType.PAYOUT_POSTED,
    ]  # fmt: skip


def test_a_failed_payout_releases_both_holds_and_charges_nothing() -> None:
    state = Ledger(NOW, accounts(), {}, {})
    made = payout(state)
    started = state.apply(StartPayout(made.id, made.transfer_ids), issued())
    assert started is not None
    failed = settle(state, started, PayoutState.FAILED, "account_closed")
    assert failed is not None
    assert (failed.state, failed.failure_reason) == (PayoutState.FAILED, "account_closed")
    assert balance(state, SELLER) == (10_000, 10_000)
    assert balance(state, FEES) == (0, 0)
    assert {state.transfers[t].state for t in made.transfer_ids} == {TransferState.VOIDED}


def test_a_return_reported_before_the_posting_posts_then_returns() -> None:
    state = Ledger(NOW, accounts(), {}, {})
    made = payout(state)
    started = state.apply(StartPayout(made.id, made.transfer_ids), issued())
    assert started is not None
    returned = settle(state, started, PayoutState.RETURNED, "account_frozen")
    assert returned is not None
    assert (returned.state, returned.return_reason) == (PayoutState.RETURNED, "account_frozen")
    # The amount is back and available; the fee was earned when it posted.
    assert balance(state, SELLER) == (9_900, 9_900)
    assert balance(state, FEES) == (100, 100)
    assert balance(state, SETTLEMENT) == (0, 0)
    back = state.transfers[returned.return_transfer_id or ""]
    assert (back.reversal_of_id, back.owner_id) == (made.hold_transfer_id, made.id)
    kinds = [e.type for e in state.events if e.payout is not None]
    assert kinds[-2:] == [EventType.PAYOUT_POSTED, EventType.PAYOUT_RETURNED]
    assert settle(state, returned, PayoutState.POSTED) is None  # behind it: nothing


def test_cancel_only_while_pending_and_only_once() -> None:
    state = Ledger(NOW, accounts(), {}, {})
    made = payout(state, fee=0)
    canceled = state.apply(CancelPayout(made.id, made.transfer_ids), issued())
    assert canceled.state is PayoutState.CANCELED
    assert balance(state, SELLER) == (10_000, 10_000)
    assert state.apply(CancelPayout(made.id, made.transfer_ids), issued()) == canceled
    assert state.apply(StartPayout(made.id, made.transfer_ids), issued()) is None
    other = payout(state, fee=0)
    state.apply(StartPayout(other.id, other.transfer_ids), issued())
    with pytest.raises(Rejected) as refused:
        state.apply(CancelPayout(other.id, other.transfer_ids), issued())
    assert refused.value.reason is Reason.PAYOUT_NOT_CANCELABLE
    assert refused.value.metadata == {"payout_id": other.id, "state": "PROCESSING"}


def test_refusals() -> None:
    state = Ledger(NOW, accounts(), {}, {})
    with pytest.raises(Rejected) as above:
        payout(state, amount=10_001, fee=0)
    assert above.value.reason is Reason.INSUFFICIENT_FUNDS
    pending = Balances(posted_credits_minor=10_000, pending_availability_minor=6_000)
    policy = FundsPolicy(availability=AvailabilityPolicy(delay_days=2))
    waiting = Ledger(NOW, accounts(balances=pending, funds_policy=policy), {}, {})
    with pytest.raises(Rejected) as not_yet:
        payout(waiting, amount=5_000, fee=0)
    assert not_yet.value.reason is Reason.FUNDS_NOT_YET_AVAILABLE
    external = destination(state)
    state.apply(DisableExternalAccount(external.id), issued())
    with pytest.raises(Rejected) as disabled:
        state.apply(
            CreatePayout(SELLER, external.id, 1, "USD", PayoutMethod.INSTANT,
                         settlement_account_id=SETTLEMENT),
            issued(),
        )  # fmt: skip
    assert disabled.value.reason is Reason.EXTERNAL_ACCOUNT_DISABLED
    with pytest.raises(Rejected) as unknown:
        state.apply(CancelPayout("po_" + "a" * 26, ()), issued())
    assert unknown.value.reason is Reason.PAYOUT_NOT_FOUND
    made = payout(state, fee=0)
    with pytest.raises(Rejected) as other_holds:  # holds not its own: as unknown
        state.apply(CancelPayout(made.id, ("tr_" + "b" * 26,)), issued())
    assert other_holds.value.reason is Reason.PAYOUT_NOT_FOUND


@pytest.mark.parametrize(
    "command",
    [
        lambda hold: PostTransfer(hold),
        lambda hold: VoidTransfer(hold),
        lambda hold: ReverseTransfer(ReversalRequest(hold)),
    ],
)
def test_the_transfer_rpcs_never_move_a_payouts_holds(command: object) -> None:
    state = Ledger(NOW, accounts(), {}, {})
    made = payout(state, fee=0)
    with pytest.raises(Rejected) as owned:
        state.apply(command(made.hold_transfer_id), issued())  # type: ignore[operator]
    assert owned.value.reason is Reason.TRANSFER_OWNED
    assert owned.value.metadata["owner_id"] == made.id


def test_an_inbound_credit_and_its_return() -> None:
    policy = FundsPolicy(availability=AvailabilityPolicy(delay_days=2))
    state = Ledger(NOW, accounts(funds_policy=policy), {}, {})
    received = state.apply(
        ReceiveInbound("simulated", "wire-1", SELLER, SETTLEMENT, 3_000, "USD"), issued()
    )
    assert received.state is InboundState.RECEIVED
    assert balance(state, SELLER) == (13_000, 10_000)  # the policy applies: not available yet
    returned = state.apply(ReturnInbound(received.id, received.transfer_id, "R01"), issued())
    assert returned is not None
    assert returned.state is InboundState.RETURNED
    assert balance(state, SELLER) == (10_000, 10_000)  # taken from the pending part
    assert state.apply(ReturnInbound(received.id, received.transfer_id, "R01"), issued()) is None


def test_the_first_payout_opens_the_settlement_account_and_a_refused_one_nothing() -> None:
    everything = accounts()
    del everything[SETTLEMENT]
    state = Ledger(NOW, everything, {}, {})
    with pytest.raises(Rejected):
        payout(state, amount=10_001, fee=0)
    assert SETTLEMENT not in state.accounts
    assert state.writes().new_accounts == []
    made = payout(state, fee=0)
    opened = state.accounts[SETTLEMENT]
    assert (opened.normal_balance, opened.overdraft_mode) == (
        NormalBalance.DEBIT, OverdraftMode.UNLIMITED,
    )  # fmt: skip
    assert opened.external_id == "rail:simulated:settlement:USD"
    assert state.writes().new_accounts == [opened]
    assert made.settlement_account_id == SETTLEMENT


def test_a_payout_from_a_debit_normal_account_is_refused() -> None:
    state = Ledger(NOW, accounts(), {}, {})
    external = destination(state)
    with pytest.raises(Rejected) as refused:
        state.apply(
            CreatePayout(SETTLEMENT, external.id, 1, "USD", PayoutMethod.INSTANT,
                         settlement_account_id=SETTLEMENT, rail="simulated"),
            issued(),
        )  # fmt: skip
    assert refused.value.reason is Reason.INVALID_PAYOUT_SOURCE
    assert refused.value.metadata == {"account_id": SETTLEMENT, "normal_balance": "DEBIT"}


def test_a_hold_whose_capture_could_not_be_posted_is_refused_at_once() -> None:
    # Two holds of 2^62 on one account: each fits, but capturing both would take the
    # settlement account's posted credits past int64. The second is refused now, not
    # left for a capture that could never be booked.
    rich = accounts(overdraft_mode=OverdraftMode.UNLIMITED)
    state = Ledger(NOW, rich, {}, {})
    payout(state, amount=2**62, fee=0)
    with pytest.raises(Rejected) as refused:
        payout(state, amount=2**62, fee=0)
    assert refused.value.reason is Reason.BALANCE_OVERFLOW
