"""Holder rules (domain/holders.py, domain/holder_ledger.py): changes and their
refusals, the restriction of debits, and closing counted within one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import (
    CloseAccount,
    CreateAccount,
    CreateHolder,
    UpdateHolder,
)
from moneymovement.domain.errors import InvalidInput, Reason, Rejected
from moneymovement.domain.events import EventType
from moneymovement.domain.holders import (
    Holder,
    HolderChanges,
    HolderReads,
    HolderState,
    changed,
    is_holder_id,
    require_may_debit,
)
from moneymovement.domain.ledger import Issued, Ledger

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def holder(state: HolderState = HolderState.ACTIVE) -> Holder:
    return Holder(ids.new_id(ids.HOLDER), "seller-1", "Ada", {"tier": "gold"}, state, 1, NOW, NOW)


def account(owner: str, state: AccountState = AccountState.ACTIVE) -> Account:
    return Account(
        id=ids.new_id(ids.ACCOUNT), external_id=None, name="", currency_code="USD",
        normal_balance=NormalBalance.CREDIT, overdraft_mode=OverdraftMode.NONE,
        overdraft_limit_minor=0, holder_id=owner, state=state, version=1, created_at=NOW,
        updated_at=NOW,
    )  # fmt: skip


def test_only_hld_ids_name_holders() -> None:
    assert is_holder_id(ids.new_id(ids.HOLDER))
    assert not is_holder_id("seller-42")
    assert not is_holder_id("hld_short")
    assert not is_holder_id(ids.new_id(ids.ACCOUNT))


def test_a_change_merges_metadata_and_raises_the_version() -> None:
    before = holder()
    after = changed(before, HolderChanges(name="Ada L.", metadata={"tier": "", "x": "1"}), 0, NOW)
    assert (after.name, dict(after.metadata), after.version) == ("Ada L.", {"x": "1"}, 2)
    assert changed(before, HolderChanges(name="Ada"), 0, NOW) is before  # nothing changed


def test_too_much_metadata_is_invalid() -> None:
    many = {f"k{n}": "v" for n in range(50)}
    with pytest.raises(InvalidInput):
        changed(holder(), HolderChanges(metadata=many), 0, NOW)


def test_closing_needs_no_open_account_and_is_for_good() -> None:
    before = holder()
    with pytest.raises(Rejected) as refused:
        changed(before, HolderChanges(state=HolderState.CLOSED), 2, NOW)
    assert refused.value.reason is Reason.HOLDER_NOT_EMPTY
    assert refused.value.metadata == {"holder_id": before.id, "open_account_count": "2"}
    closed = changed(before, HolderChanges(state=HolderState.CLOSED), 0, NOW)
    with pytest.raises(Rejected) as again:
        changed(closed, HolderChanges(state=HolderState.ACTIVE), 0, NOW)
    assert again.value.reason is Reason.HOLDER_CLOSED


def test_a_restricted_holder_refuses_debits_only() -> None:
    restricted = holder(HolderState.RESTRICTED)
    wallet = account(restricted.id)
    with pytest.raises(Rejected) as refused:
        require_may_debit(restricted, wallet)
    assert refused.value.reason is Reason.HOLDER_RESTRICTED
    assert refused.value.metadata == {"holder_id": restricted.id, "account_id": wallet.id}
    require_may_debit(holder(), wallet)
    require_may_debit(None, wallet)


def test_a_holder_created_then_named_by_an_account_in_one_transaction() -> None:
    ledger = Ledger(NOW, {}, {}, {})
    created = ledger.apply(CreateHolder(external_id="seller-1"), Issued("r1"))
    opened = ledger.apply(
        CreateAccount(currency_code="USD", normal_balance=NormalBalance.CREDIT,
                      holder_id=created.id),
        Issued("r2"),
    )  # fmt: skip
    assert opened.holder_id == created.id
    with pytest.raises(Rejected) as taken:
        ledger.apply(CreateHolder(external_id="seller-1"), Issued("r3"))
    assert taken.value.metadata == {"external_id": "seller-1", "holder_id": created.id}
    # The account opened just before counts against closing, in the same transaction.
    with pytest.raises(Rejected) as busy:
        ledger.apply(
            UpdateHolder(created.id, HolderChanges(state=HolderState.CLOSED)), Issued("r4")
        )
    assert busy.value.metadata["open_account_count"] == "1"
    writes = ledger.writes()
    assert [h.id for h in writes.holders] == [created.id]
    assert [e.type for e in writes.events] == [EventType.HOLDER_CREATED, EventType.ACCOUNT_CREATED]


def test_closing_counts_accounts_closed_earlier_in_the_transaction() -> None:
    owner = holder()
    wallet = account(owner.id)
    ledger = Ledger(
        NOW, {wallet.id: wallet}, {}, {},
        holders=HolderReads(holders=[owner], open_accounts={owner.id: 1}),
    )  # fmt: skip
    ledger.apply(CloseAccount(wallet.id), Issued("c1"))
    closed = ledger.apply(
        UpdateHolder(owner.id, HolderChanges(state=HolderState.CLOSED)), Issued("c2")
    )
    assert closed.state is HolderState.CLOSED


def test_an_account_for_an_unknown_or_closed_holder_is_refused() -> None:
    gone = holder(HolderState.CLOSED)
    ledger = Ledger(NOW, {}, {}, {}, holders=HolderReads(holders=[gone]))
    for named, reason in (
        (ids.new_id(ids.HOLDER), Reason.HOLDER_NOT_FOUND),
        (gone.id, Reason.HOLDER_CLOSED),
    ):
        with pytest.raises(Rejected) as refused:
            ledger.apply(
                CreateAccount(currency_code="USD", normal_balance=NormalBalance.CREDIT,
                              holder_id=named),
                Issued("a"),
            )  # fmt: skip
        assert refused.value.reason is reason
    # A free-form holder_id is no holder's, as before holders existed.
    free = ledger.apply(
        CreateAccount(currency_code="USD", normal_balance=NormalBalance.CREDIT,
                      holder_id="seller-42"),
        Issued("b"),
    )  # fmt: skip
    assert free.holder_id == "seller-42"
