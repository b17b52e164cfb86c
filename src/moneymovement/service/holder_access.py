"""What a call acting for a holder may read (domain/holder_scope.py): the holder's own
accounts and what touches them. Whatever else it names is answered as if it did not
exist, by the same refusals an unknown id gets.

The holder of an account never changes, so which accounts a call may see can be read
apart from (before) the read it guards.
"""

from __future__ import annotations

from collections.abc import Collection

from moneymovement.domain.accounts import Account
from moneymovement.domain.holder_scope import owns
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


def sees_account(caller: Caller, account: Account) -> bool:
    """Whether the caller may see `account` (the platform sees every account)."""
    return caller.holder_id is None or owns(caller.holder_id, account)


async def hidden_accounts(
    uow: UnitOfWork, caller: Caller, account_ids: Collection[str]
) -> set[str]:
    """The accounts among `account_ids` the caller may not see: none for the platform;
    acting for a holder, all but the holder's own (unknown ids included)."""
    if caller.holder_id is None or not account_ids:
        return set()
    holders = await uow.read(caller, lambda session: session.accounts.holders(list(account_ids)))
    return {a for a in account_ids if holders.get(a) != caller.holder_id}


async def sees_in(session: Session, caller: Caller, account_ids: Collection[str]) -> bool:
    """Whether the caller may see at least one of `account_ids`, read in the caller's
    own read (`session`), no round trip of its own for the platform."""
    if caller.holder_id is None:
        return True
    holders = await session.accounts.holders(list(account_ids))
    return caller.holder_id in holders.values()
