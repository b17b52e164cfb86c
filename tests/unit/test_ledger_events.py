"""The events the ledger records for each command: their types, order and the resources
as they were right after each change (pure: no database)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from moneymovement.domain.commands import (
    CreateTransfer,
    CreateTransfers,
    FreezeAccount,
    PostTransfer,
    VoidTransfer,
)
from moneymovement.domain.errors import Rejected
from moneymovement.domain.events import EventType
from moneymovement.domain.ledger import Issued, Ledger
from moneymovement.domain.transfers import TransferSpec, TransferState
from tests.unit.ledger_builders import ALICE, BOB, NOW, book, make_account


def ledger() -> Ledger:
    return Ledger(NOW, book(make_account(ALICE), make_account(BOB)), {}, {})


def spec(amount: int, **changes: object) -> TransferSpec:
    return TransferSpec(ALICE, BOB, amount, "USD", **changes)  # type: ignore[arg-type]


def test_each_transfer_tells_its_accounts_as_they_were_right_after_it() -> None:
    state = ledger()
    state.apply(CreateTransfer(spec(100)), Issued("r1", "t" * 32))
    state.apply(CreateTransfer(spec(200)), Issued("r2"))
    first, second = state.writes().events
    assert (first.type, first.request_id, first.trace_id) == (
        EventType.TRANSFER_CREATED, "r1", "t" * 32,
    )  # fmt: skip
    # The first event shows Alice after 100 left, not after both transfers.
    assert {a.id: a.balances.posted_debits_minor for a in first.accounts}[ALICE] == 100
    assert {a.id: a.balances.posted_debits_minor for a in second.accounts}[ALICE] == 300
    assert [a.id for a in first.accounts] == sorted([ALICE, BOB])


def test_a_rejected_command_tells_nothing() -> None:
    state = ledger()
    with pytest.raises(Rejected):
        state.apply(CreateTransfer(spec(10**9)), Issued("too-much"))
    state.apply(FreezeAccount(BOB, None), Issued("f"))
    state.apply(FreezeAccount(BOB, None), Issued("f-again"))  # changes nothing: no event
    assert [e.type for e in state.writes().events] == [EventType.ACCOUNT_FROZEN]


def test_a_batch_tells_each_item_then_the_batch_with_every_account_after_all() -> None:
    state = ledger()
    state.apply(CreateTransfers((spec(1), spec(2))), Issued("b"))
    events = state.writes().events
    assert [e.type for e in events] == [
        EventType.TRANSFER_CREATED, EventType.TRANSFER_CREATED, EventType.BATCH_COMMITTED,
    ]  # fmt: skip
    assert [t.amount_minor for e in events[:2] for t in e.transfers] == [1, 2]
    assert events[-1].item_ids == tuple(e.transfers[0].id for e in events[:2])
    assert events[-1].transfers == ()
    assert {a.id: a.balances.posted_debits_minor for a in events[-1].accounts}[ALICE] == 3


def test_a_void_of_a_hold_already_past_its_expiry_is_told_as_its_expiry() -> None:
    state = ledger()
    held = state.apply(CreateTransfer(spec(50, pending=True, hold_timeout_s=60)), Issued("h"))
    later = Ledger(NOW + timedelta(minutes=5), state.accounts, {held.id: held}, {})
    voided = later.apply(VoidTransfer(held.id), Issued("v"))
    assert voided.state is TransferState.EXPIRED
    (event,) = later.writes().events
    assert (event.type, event.request_id) == (EventType.TRANSFER_EXPIRED, "")


def test_a_capture_is_told_with_what_it_posted() -> None:
    state = ledger()
    held = state.apply(CreateTransfer(spec(50, pending=True)), Issued("h"))
    state.apply(PostTransfer(held.id, 20), Issued("p"))
    posted = state.writes().events[-1]
    assert posted.type is EventType.TRANSFER_POSTED
    assert posted.transfers[0].posted_amount_minor == 20
