"""Accounts and clocks shared by the pure domain tests of holds and reversals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
ALICE = "acct_aliceaaaaaaaaaaaaaaaaaaaa"
BOB = "acct_bobbbbbbbbbbbbbbbbbbbbbbbb"
START = Balances(posted_credits_minor=10_000)


def make_account(account_id: str, **changes: object) -> Account:
    """An ACTIVE CREDIT-normal USD account holding START, with `changes` applied."""
    base = Account(
        id=account_id,
        currency_code="USD",
        normal_balance=NormalBalance.CREDIT,
        overdraft_mode=OverdraftMode.NONE,
        overdraft_limit_minor=0,
        state=AccountState.ACTIVE,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        balances=START,
    )
    return replace(base, **changes)


def book(*accounts: Account) -> dict[str, Account]:
    """Accounts keyed by id, as the domain functions take them."""
    return {account.id: account for account in accounts}
