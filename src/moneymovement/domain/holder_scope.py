"""Acting for one holder (docs/platforms.md, "Acting for a holder"): what a call acting
for a holder may see and change.

A call acts for a holder when its token is scoped to one, or when a platform token sends
the holder's id in the "mm-holder" metadata. Such a call sees the holder's accounts and
what touches them, as if nothing else existed: another holder's or the platform's ids
answer exactly as ids that do not exist. It may also credit the platform accounts the
platform opened to holders (`open_to_holders`: a fee account, say), never read or debit
them, and it may not do what only the platform decides (freezing, policies, releases,
assets, holders, bank destinations and payouts, reconciliation).

Pure rules: the services and the ledger apply them where the rows are.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import replace

from moneymovement.domain.accounts import Account, AccountChanges, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import CreateAccount
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.events import EventFilter, EventType, RecordedEvent
from moneymovement.domain.holders import holder_not_found

# A request id as recorded for a call acting for a holder: its own namespace, so that
# one holder's request ids never meet another's or the platform's (a caller's request
# id cannot contain "/", so a namespaced one can never be sent as such).
_REQUEST_SEPARATOR = "/"


def recorded_request_id(holder_id: str | None, request_id: str) -> str:
    """The request id under which a call's outcome is recorded and its effects written:
    the caller's own for the platform, "<holder id>/<request id>" acting for a holder."""
    if holder_id is None or not request_id:
        return request_id
    return f"{holder_id}{_REQUEST_SEPARATOR}{request_id}"


def owns(holder_id: str, account: Account) -> bool:
    """Whether `account` is one of the holder's."""
    return account.holder_id == holder_id


def may_name_in_movement(holder_id: str, account: Account, reserves: Set[str]) -> bool:
    """Whether a call acting for the holder may name `account` in a movement: its own,
    a platform account open to holders, or the negative-balance reserve of one of its
    accounts (`reserves`: its accounts show the reserve's id; it repays its debt). It
    may only credit these: a reserve's cover is the platform's to make."""
    return owns(holder_id, account) or account.open_to_holders or account.id in reserves


def forbidden(holder_id: str, what: str, account_id: str = "") -> Rejected:
    """HOLDER_SCOPE_FORBIDS: only the platform may do `what`."""
    metadata = {"holder_id": holder_id}
    if account_id:
        metadata["account_id"] = account_id
    return Rejected(
        Reason.HOLDER_SCOPE_FORBIDS,
        f"a call acting for holder {holder_id} may not {what}: only the platform may",
        metadata,
    )


def mismatch(token_holder_id: str) -> Rejected:
    """HOLDER_SCOPE_MISMATCH: mm-holder names another holder than the token's."""
    return Rejected(
        Reason.HOLDER_SCOPE_MISMATCH,
        f"the token acts for holder {token_holder_id} only; mm-holder names another",
        {"holder_id": token_holder_id},
    )


def require_holder_account_shape(
    holder_id: str, normal_balance: NormalBalance, overdraft_mode: OverdraftMode
) -> None:
    """An account opened acting for a holder is money owed to the holder: CREDIT-normal
    and without overdraft. Any other kind would let the holder mint money it does not
    have (a DEBIT-normal account pays without limit), which only the platform decides.

    Raises:
        Rejected: HOLDER_SCOPE_FORBIDS.
    """
    if normal_balance is not NormalBalance.CREDIT or overdraft_mode is not OverdraftMode.NONE:
        raise forbidden(holder_id, "open an account other than CREDIT-normal without overdraft")


def for_holder(holder_id: str, command: CreateAccount) -> CreateAccount:
    """CreateAccount acting for a holder: the account is the holder's (a holder_id naming
    another holder, or a free-form one, is answered as a holder that does not exist),
    money owed to it (require_holder_account_shape), and without a funds policy or
    openness to holders (the platform's to decide).

    Raises:
        Rejected: HOLDER_NOT_FOUND, HOLDER_SCOPE_FORBIDS.
    """
    if command.holder_id not in ("", holder_id):
        raise holder_not_found(command.holder_id)
    require_holder_account_shape(holder_id, command.normal_balance, command.overdraft_mode)
    if (
        command.funds_policy
        or command.open_to_holders
        or command.negative_balance_reserve_account_id
    ):
        raise forbidden(
            holder_id,
            "set a funds policy or a negative-balance reserve, or open an account to holders",
        )
    return replace(command, holder_id=holder_id)


def require_holder_changes(holder_id: str, changes: AccountChanges) -> None:
    """UpdateAccount acting for a holder changes the name and metadata only: overdraft,
    funds policy, negative-balance reserve and openness are the platform's to decide.

    Raises:
        Rejected: HOLDER_SCOPE_FORBIDS.
    """
    platform_only = (
        changes.overdraft_mode,
        changes.overdraft_limit_minor,
        changes.funds_policy,
        changes.open_to_holders,
        changes.negative_balance_reserve_account_id,
    )
    if any(change is not None for change in platform_only):
        raise forbidden(
            holder_id, "change an account's overdraft, funds policy, reserve or openness"
        )


# A holder filter nothing matches: no holder_id has a "/" (the edge refuses one).
_NOBODY = "/"


def holder_filter(holder_id: str, named: str | None) -> str:
    """A listing's holder filter acting for `holder_id`: the holder itself (a filter
    naming another holder finds nothing, as one naming a holder nobody has)."""
    return holder_id if named in (None, holder_id) else _NOBODY


def events_filter(holder_id: str, where: EventFilter) -> EventFilter:
    """The events a call acting for a holder may read: the holder's own."""
    return replace(where, holder_id=holder_filter(holder_id, where.holder_id))


def event_for_holder(recorded: RecordedEvent, holder_id: str) -> RecordedEvent | None:
    """An event as a call acting for the holder sees it: without the accounts that are not
    the holder's (their balances are not its to see); None for a batch that also moved
    others' accounts (its item ids name their transfers; each of the holder's items has
    its own TRANSFER_CREATED)."""
    event = recorded.event
    accounts = tuple(a for a in event.accounts if owns(holder_id, a))
    if len(accounts) == len(event.accounts):
        return recorded
    if event.type is EventType.BATCH_COMMITTED:
        return None
    return RecordedEvent(recorded.position, recorded.occurred_at, replace(event, accounts=accounts))
