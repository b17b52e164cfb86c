"""Acting for a holder (domain/holder_scope.py, domain/ledger.py): request ids of their
own, what may be opened and changed, what a command may see and debit, events as seen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountChanges, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.commands import CreateAccount, CreateTransfer, UpdateAccount
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.events import Event, EventFilter, EventType, RecordedEvent
from moneymovement.domain.holder_scope import (
    event_for_holder,
    events_filter,
    for_holder,
    recorded_request_id,
    require_holder_changes,
)
from moneymovement.domain.holders import Holder, HolderReads, HolderState
from moneymovement.domain.ledger import Issued, Ledger
from moneymovement.domain.transfers import TransferSpec

NOW = datetime(2026, 12, 3, tzinfo=UTC)
SELLER, OTHER = ids.new_id(ids.HOLDER), ids.new_id(ids.HOLDER)


def account(owner: str = "", *, open_to_holders: bool = False, money: int = 0) -> Account:
    return Account(
        id=ids.new_id(ids.ACCOUNT), external_id=None, name="", currency_code="USD",
        normal_balance=NormalBalance.CREDIT, overdraft_mode=OverdraftMode.NONE,
        overdraft_limit_minor=0, holder_id=owner, state=AccountState.ACTIVE, version=1,
        created_at=NOW, updated_at=NOW,
        balances=Balances(posted_credits_minor=money), open_to_holders=open_to_holders,
    )  # fmt: skip


def ledger(*accounts: Account) -> Ledger:
    holders = HolderReads(
        holders=tuple(
            Holder(h, h, "", {}, HolderState.ACTIVE, 1, NOW, NOW) for h in (SELLER, OTHER)
        )
    )
    return Ledger(NOW, {a.id: a for a in accounts}, {}, {}, holders=holders)


def pay(debit: Account, credit: Account, amount: int = 10) -> CreateTransfer:
    return CreateTransfer(TransferSpec(debit.id, credit.id, amount, "USD"))


def test_request_ids_acting_for_a_holder_are_its_own() -> None:
    assert recorded_request_id(None, "r-1") == "r-1"
    assert recorded_request_id(SELLER, "r-1") == f"{SELLER}/r-1"
    assert recorded_request_id(SELLER, "r-1") != recorded_request_id(OTHER, "r-1")
    assert recorded_request_id(SELLER, "") == ""  # the sweeper's, recorded nowhere


def test_an_account_opened_for_a_holder_is_money_owed_to_it() -> None:
    opened = for_holder(SELLER, CreateAccount("USD", NormalBalance.CREDIT))
    assert opened.holder_id == SELLER
    for refused in (
        CreateAccount("USD", NormalBalance.DEBIT),
        CreateAccount("USD", NormalBalance.CREDIT, OverdraftMode.LIMITED, 100),
        CreateAccount("USD", NormalBalance.CREDIT, open_to_holders=True),
    ):
        with pytest.raises(Rejected) as forbidden:
            for_holder(SELLER, refused)
        assert forbidden.value.reason is Reason.HOLDER_SCOPE_FORBIDS
    with pytest.raises(Rejected) as other:
        for_holder(SELLER, CreateAccount("USD", NormalBalance.CREDIT, holder_id=OTHER))
    assert (other.value.reason, other.value.metadata) == (
        Reason.HOLDER_NOT_FOUND, {"holder_id": OTHER},
    )  # fmt: skip


def test_a_holder_changes_names_and_metadata_only() -> None:
    require_holder_changes(SELLER, AccountChanges(name="x", metadata_patch={"a": "b"}))
    for changes in (
        AccountChanges(overdraft_mode=OverdraftMode.UNLIMITED),
        AccountChanges(overdraft_limit_minor=0),
        AccountChanges(open_to_holders=False),
    ):
        with pytest.raises(Rejected) as forbidden:
            require_holder_changes(SELLER, changes)
        assert forbidden.value.reason is Reason.HOLDER_SCOPE_FORBIDS


def test_a_command_acting_for_a_holder_sees_its_accounts_and_credits_open_ones() -> None:
    mine, theirs = account(SELLER, money=100), account(OTHER, money=100)
    fees, treasury = account(open_to_holders=True, money=100), account(money=100)
    book = ledger(mine, theirs, fees, treasury)
    as_seller = Issued("r", holder_id=SELLER)
    book.apply(pay(mine, fees), as_seller)  # credits an open platform account
    for hidden in (theirs, treasury):
        for command in (pay(mine, hidden), pay(hidden, mine)):
            with pytest.raises(Rejected) as unseen:
                book.apply(command, as_seller)
            assert (unseen.value.reason, unseen.value.metadata["account_id"]) == (
                Reason.ACCOUNT_NOT_FOUND, hidden.id,
            )  # fmt: skip
        with pytest.raises(Rejected) as unseen:
            book.apply(UpdateAccount(hidden.id, None, changes=AccountChanges(name="x")), as_seller)
        assert unseen.value.reason is Reason.ACCOUNT_NOT_FOUND
    with pytest.raises(Rejected) as debit:
        book.apply(pay(fees, mine), as_seller)
    assert (debit.value.reason, debit.value.metadata) == (
        Reason.HOLDER_SCOPE_FORBIDS, {"holder_id": SELLER, "account_id": fees.id},
    )  # fmt: skip
    with pytest.raises(Rejected) as closed_for_change:  # open to credit, not to change
        book.apply(UpdateAccount(fees.id, None, changes=AccountChanges(name="x")), as_seller)
    assert closed_for_change.value.reason is Reason.ACCOUNT_NOT_FOUND
    book.apply(pay(theirs, treasury), Issued("r2"))  # the platform sees everything
    assert len(book.writes().new_transfers) == 2


def test_events_as_a_holder_sees_them() -> None:
    mine, fees = account(SELLER), account(open_to_holders=True)
    paid = RecordedEvent(1, NOW, Event(EventType.TRANSFER_CREATED, "r", None, (), (fees, mine)))
    seen = event_for_holder(paid, SELLER)
    assert seen is not None
    assert seen.event.accounts == (mine,)
    assert event_for_holder(replace(paid, event=replace(paid.event, accounts=(mine,))), SELLER)
    batch = RecordedEvent(2, NOW, Event(EventType.BATCH_COMMITTED, "r", None, (), (fees, mine)))
    assert event_for_holder(batch, SELLER) is None
    assert events_filter(SELLER, EventFilter()).holder_id == SELLER
    assert events_filter(SELLER, EventFilter(holder_id=SELLER)).holder_id == SELLER
    nobody = events_filter(SELLER, EventFilter(holder_id=OTHER)).holder_id
    assert nobody not in (SELLER, OTHER)
    assert not (nobody or "").startswith("hld_")
