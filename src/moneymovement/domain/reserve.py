"""The negative-balance reserve: a platform account that pays what a holder's account
cannot when a reversal (a refund, a bank return) takes more than it has, and is paid
back from the account's next credits (docs/platforms.md).

The rules here are pure: which account may be whose reserve, how much a reversal needs
covered, and how much of a credit repays the debt. domain/ledger.py moves the money, each
cover and each recovery an ordinary balanced transfer in the same transaction.
"""

from __future__ import annotations

from moneymovement.domain.accounts import Account, AccountState, FreezeScope
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.holders import is_holder_id

FIELD = "negative_balance_reserve_account_id"
# The metadata key that tells a caller which transfers are the reserve's, with its
# movement (COVER or RECOVERY); the transfer's stored reserve_movement is what counts.
METADATA_KEY = "negative_balance_reserve"


def require_eligible(
    account: Account, reserve_id: str, reserve: Account | None, field: str = FIELD
) -> None:
    """Refuses `reserve` (found by `reserve_id`, None: no such account) as the reserve
    of `account`: the reserve is a platform account (no holder) of the same currency,
    open, without a reserve of its own; the account is a holder's, and both are
    CREDIT-normal (a debit lowers what is available only on such an account). The
    account has no funds policy, so a cover and a credit are available at once.

    Raises:
        Rejected: RESERVE_ACCOUNT_INELIGIBLE, naming the rule broken.
    """
    rule = _broken_rule(account, reserve_id, reserve)
    if rule is not None:
        raise ineligible(account, reserve_id, rule, field)


def _broken_rule(account: Account, reserve_id: str, reserve: Account | None) -> str | None:
    if reserve is None:
        return "NOT_FOUND"
    if reserve.id == account.id:
        return "SELF"
    if not is_holder_id(account.holder_id):
        return "NOT_HOLDER_ACCOUNT"
    if is_holder_id(reserve.holder_id):
        return "HOLDER_OWNED"
    if reserve.currency_code != account.currency_code:
        return "CURRENCY"
    if NormalBalance.DEBIT in (account.normal_balance, reserve.normal_balance):
        return "NORMAL_BALANCE"
    if reserve.state is AccountState.CLOSED:
        return "CLOSED"
    if reserve.negative_balance_reserve_account_id:
        return "HAS_RESERVE"
    if account.funds_policy:
        return "FUNDS_POLICY"
    return None


def ineligible(account: Account, reserve_id: str, rule: str, field: str) -> Rejected:
    """RESERVE_ACCOUNT_INELIGIBLE for `rule`, naming the request's `field`."""
    return Rejected(
        Reason.RESERVE_ACCOUNT_INELIGIBLE,
        f"account {reserve_id} cannot be the negative-balance reserve of account "
        f"{account.id}: {rule}",
        {"account_id": account.id, "reserve_account_id": reserve_id, "rule": rule, "field": field},
    )


def shortfall_minor(account: Account, debit_minor: int) -> int:
    """How much of a reversal's debit of `debit_minor` from `account`'s available balance
    the account cannot pay: what goes past its spending floor (0 with no floor)."""
    floor = account.spending_floor_minor()
    if floor is None or debit_minor <= 0:
        return 0
    spendable = max(0, account.balances.available(account.normal_balance) - floor)
    return max(0, debit_minor - spendable)


def recovery_minor(account: Account, reserve: Account | None, credited_minor: int) -> int:
    """How much of a credit of `credited_minor` just posted to `account` goes back to its
    reserve: min(credit, debt), and never more than the account can spend after the
    credit (so a recovery never overdraws it). Nothing while the account is frozen or
    the reserve cannot take credits (closed, or frozen for all): the debt then waits for
    a later credit."""
    if credited_minor <= 0 or account.reserve_debt_minor <= 0 or reserve is None:
        return 0
    if account.state is not AccountState.ACTIVE or not _takes_credits(reserve):
        return 0
    amount = min(credited_minor, account.reserve_debt_minor)
    floor = account.spending_floor_minor()
    if floor is None:
        return amount
    return min(amount, max(0, account.balances.available(account.normal_balance) - floor))


def _takes_credits(account: Account) -> bool:
    """As require_open_for_credits lets a credit in: active, or frozen for debits only."""
    if account.state is AccountState.FROZEN:
        return account.freeze_scope is FreezeScope.DEBITS
    return account.state is AccountState.ACTIVE
