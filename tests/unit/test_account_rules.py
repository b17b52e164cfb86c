"""Account rules: the overdraft floor, the lifecycle, versions and UpdateAccount."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from moneymovement.domain import accounts
from moneymovement.domain.accounts import (
    Account,
    AccountChanges,
    AccountState,
    OverdraftMode,
)
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.commands import CreateAccount
from moneymovement.domain.errors import FieldReason, InvalidInput, Reason, Rejected
from moneymovement.domain.ledger import Issued, Ledger

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_account(**changes: object) -> Account:
    base = Account(
        id="acct_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        currency_code="EUR",
        normal_balance=NormalBalance.CREDIT,
        overdraft_mode=OverdraftMode.NONE,
        overdraft_limit_minor=0,
        state=AccountState.ACTIVE,
        version=7,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)


def credit_balance(available_minor: int) -> Balances:
    """Totals of a CREDIT-normal account whose available balance is `available_minor`."""
    return Balances(posted_debits_minor=1_000, posted_credits_minor=1_000 + available_minor)


def reason_of(caught: pytest.ExceptionInfo[Rejected]) -> Reason:
    return caught.value.reason


# --- require_within_policy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "limit", "floor"),
    [(OverdraftMode.NONE, 0, 0), (OverdraftMode.LIMITED, 500, -500)],
)
def test_policy_allows_exactly_the_floor_and_refuses_one_below(
    mode: OverdraftMode, limit: int, floor: int
) -> None:
    account = make_account(overdraft_mode=mode, overdraft_limit_minor=limit)
    before = credit_balance(100)

    accounts.require_within_policy(account, before, credit_balance(floor))
    with pytest.raises(Rejected) as caught:
        accounts.require_within_policy(account, before, credit_balance(floor - 1))
    assert reason_of(caught) is Reason.INSUFFICIENT_FUNDS
    assert caught.value.metadata == {
        "account_id": account.id,
        "asked_minor": str(100 - (floor - 1)),  # the change's cut of the available balance
        "floor_minor": str(floor),
        "available_minor": "100",
        "pending_availability_minor": "0",
        "reserved_minor": "0",
        "minimum_reserve_minor": "0",
    }


def test_unlimited_overdraft_has_no_floor() -> None:
    account = make_account(overdraft_mode=OverdraftMode.UNLIMITED)

    accounts.require_within_policy(account, credit_balance(0), credit_balance(-(10**15)))


def test_policy_refuses_any_change_that_leaves_available_below_the_floor() -> None:
    # As the database constraint does: even a change that raises the balance is refused
    # if it stays below the floor (no account can get there; the rules must agree anyway).
    account = make_account(overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=50)

    with pytest.raises(Rejected) as caught:
        accounts.require_within_policy(account, credit_balance(-300), credit_balance(-200))
    assert reason_of(caught) is Reason.INSUFFICIENT_FUNDS


def test_policy_refuses_a_change_that_lowers_available_further_below_the_floor() -> None:
    account = make_account(overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=50)

    with pytest.raises(Rejected) as caught:
        accounts.require_within_policy(account, credit_balance(-300), credit_balance(-301))
    assert reason_of(caught) is Reason.INSUFFICIENT_FUNDS


def test_policy_of_a_debit_normal_account_uses_its_own_sign() -> None:
    account = make_account(normal_balance=NormalBalance.DEBIT)
    before = Balances(posted_debits_minor=100)

    accounts.require_within_policy(
        account, before, Balances(posted_debits_minor=100, posted_credits_minor=100)
    )
    with pytest.raises(Rejected):
        accounts.require_within_policy(
            account, before, Balances(posted_debits_minor=100, posted_credits_minor=101)
        )


# --- transfers and lifecycle -----------------------------------------------------------


def test_active_account_is_open_for_transfers() -> None:
    accounts.require_open_for_debits(make_account())
    accounts.require_open_for_credits(make_account())


@pytest.mark.parametrize(
    ("state", "reason"),
    [(AccountState.FROZEN, Reason.ACCOUNT_FROZEN), (AccountState.CLOSED, Reason.ACCOUNT_CLOSED)],
)
def test_not_open_for_transfers(state: AccountState, reason: Reason) -> None:
    account = make_account(state=state)

    expected = {"account_id": account.id}
    if state is AccountState.FROZEN:
        expected |= {"scope": "ALL", "freeze_reason": ""}
    for check in (accounts.require_open_for_debits, accounts.require_open_for_credits):
        with pytest.raises(Rejected) as caught:
            check(account)
        assert reason_of(caught) is reason
        assert caught.value.metadata == expected


def test_freeze_then_unfreeze_raise_the_version_each_time() -> None:
    frozen = accounts.freeze(make_account())
    active = accounts.unfreeze(frozen)

    assert (frozen.state, frozen.version) == (AccountState.FROZEN, 8)
    assert (active.state, active.version) == (AccountState.ACTIVE, 9)


def test_freeze_frozen_and_unfreeze_active_are_no_ops() -> None:
    frozen = make_account(state=AccountState.FROZEN)
    active = make_account()

    assert accounts.freeze(frozen) is frozen
    assert accounts.unfreeze(active) is active


@pytest.mark.parametrize("transition", [accounts.freeze, accounts.unfreeze])
def test_closed_account_cannot_be_frozen_or_unfrozen(
    transition: Callable[[Account], Account],
) -> None:
    with pytest.raises(Rejected) as caught:
        transition(make_account(state=AccountState.CLOSED))
    assert reason_of(caught) is Reason.ACCOUNT_CLOSED


@pytest.mark.parametrize("state", [AccountState.ACTIVE, AccountState.FROZEN])
def test_close_an_empty_account(state: AccountState) -> None:
    settled = Balances(posted_debits_minor=4_000, posted_credits_minor=4_000)

    closed = accounts.close(make_account(state=state, balances=settled))

    assert (closed.state, closed.version) == (AccountState.CLOSED, 8)


def test_close_a_closed_account_is_a_no_op() -> None:
    closed = make_account(state=AccountState.CLOSED)

    assert accounts.close(closed) is closed


@pytest.mark.parametrize(
    "balances",
    [
        Balances(posted_credits_minor=1),
        Balances(pending_credits_minor=1),
        Balances(pending_debits_minor=1),
    ],
    ids=["posted", "pending-inbound", "pending-outbound"],
)
def test_close_refuses_a_non_empty_account(balances: Balances) -> None:
    with pytest.raises(Rejected) as caught:
        accounts.close(make_account(balances=balances))
    assert reason_of(caught) is Reason.ACCOUNT_NOT_EMPTY


def test_require_version() -> None:
    account = make_account(version=7)

    accounts.require_version(account, None)
    accounts.require_version(account, 7)
    with pytest.raises(Rejected) as caught:
        accounts.require_version(account, 6)
    assert reason_of(caught) is Reason.VERSION_MISMATCH
    assert caught.value.metadata["current_version"] == "7"


# --- update ----------------------------------------------------------------------------


def test_update_merges_metadata_and_an_empty_value_deletes_a_key() -> None:
    account = make_account(metadata={"team": "ops", "region": "eu"})
    changes = AccountChanges(metadata_patch={"region": "", "tier": "gold"})

    updated = accounts.update(account, changes, metadata_limit=50)

    assert updated.metadata == {"team": "ops", "tier": "gold"}
    assert updated.version == 8


def test_update_refuses_too_many_metadata_keys_after_the_merge() -> None:
    account = make_account(metadata={"a": "1", "b": "2"})

    with pytest.raises(InvalidInput) as caught:
        accounts.update(account, AccountChanges(metadata_patch={"c": "3"}), metadata_limit=2)
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("metadata", FieldReason.TOO_MANY)
    ]


def test_update_deleting_keys_can_make_room() -> None:
    account = make_account(metadata={"a": "1", "b": "2"})

    updated = accounts.update(
        account, AccountChanges(metadata_patch={"a": "", "c": "3"}), metadata_limit=2
    )

    assert updated.metadata == {"b": "2", "c": "3"}


@pytest.mark.parametrize("mode", [OverdraftMode.NONE, OverdraftMode.UNLIMITED])
def test_update_refuses_a_limit_without_limited_mode(mode: OverdraftMode) -> None:
    changes = AccountChanges(overdraft_mode=mode, overdraft_limit_minor=100)

    with pytest.raises(InvalidInput) as caught:
        accounts.update(make_account(), changes, metadata_limit=50)
    assert [v.field for v in caught.value.violations] == ["overdraft_limit_minor"]


def test_update_sets_a_limited_overdraft() -> None:
    changes = AccountChanges(overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=900)

    updated = accounts.update(make_account(), changes, metadata_limit=50)

    assert (updated.overdraft_mode, updated.overdraft_limit_minor) == (OverdraftMode.LIMITED, 900)
    assert updated.floor_minor() == -900


def test_update_leaving_limited_mode_resets_the_limit() -> None:
    account = make_account(overdraft_mode=OverdraftMode.LIMITED, overdraft_limit_minor=900)

    updated = accounts.update(
        account, AccountChanges(overdraft_mode=OverdraftMode.UNLIMITED), metadata_limit=50
    )

    assert (updated.overdraft_mode, updated.overdraft_limit_minor) == (OverdraftMode.UNLIMITED, 0)


def test_update_refuses_to_lower_a_limit_below_what_is_in_use() -> None:
    account = make_account(
        overdraft_mode=OverdraftMode.LIMITED,
        overdraft_limit_minor=1_000,
        balances=credit_balance(-600),
    )

    assert accounts.update(account, AccountChanges(overdraft_limit_minor=600), 50).version == 8
    with pytest.raises(Rejected) as caught:
        accounts.update(account, AccountChanges(overdraft_limit_minor=599), metadata_limit=50)
    assert reason_of(caught) is Reason.OVERDRAFT_LIMIT_IN_USE
    assert caught.value.metadata["available_minor"] == "-600"


def test_update_refuses_a_closed_account() -> None:
    with pytest.raises(Rejected) as caught:
        accounts.update(
            make_account(state=AccountState.CLOSED), AccountChanges(name="x"), metadata_limit=50
        )
    assert reason_of(caught) is Reason.ACCOUNT_CLOSED


def test_update_that_changes_nothing_keeps_the_version() -> None:
    account = make_account(
        name="Payroll",
        metadata={"team": "ops"},
        overdraft_mode=OverdraftMode.LIMITED,
        overdraft_limit_minor=300,
    )
    same = AccountChanges(
        name="Payroll",
        metadata_patch={"team": "ops", "absent": ""},
        overdraft_mode=OverdraftMode.LIMITED,
        overdraft_limit_minor=300,
    )

    assert accounts.update(account, same, metadata_limit=50) is account
    assert accounts.update(account, AccountChanges(), metadata_limit=50) is account


def test_update_renames() -> None:
    updated = accounts.update(make_account(), AccountChanges(name="Savings"), metadata_limit=50)

    assert (updated.name, updated.version) == ("Savings", 8)


def test_an_external_id_taken_names_the_account_that_has_it() -> None:
    # One read from the database, one opened earlier in the same batch.
    state = Ledger(NOW, {}, {}, {"cust:1": "acct_" + "a" * 26})
    opened = state.apply(
        CreateAccount("USD", NormalBalance.CREDIT, external_id="cust:2"), Issued("r-1")
    )
    for external_id, holder in (("cust:1", "acct_" + "a" * 26), ("cust:2", opened.id)):
        with pytest.raises(Rejected) as taken:
            state.apply(
                CreateAccount("USD", NormalBalance.CREDIT, external_id=external_id), Issued("r-2")
            )
        assert taken.value.reason is Reason.EXTERNAL_ID_TAKEN
        assert taken.value.metadata == {"external_id": external_id, "account_id": holder}
