"""Account use cases: open, read, list, change, freeze, unfreeze, close.

Every change is a command for the write pipeline (service/pipeline.py).
"""

from __future__ import annotations

from dataclasses import replace

from moneymovement.domain.accounts import Account, AccountChanges
from moneymovement.domain.commands import (
    CloseAccount,
    CreateAccount,
    FreezeAccount,
    UnfreezeAccount,
    UpdateAccount,
)
from moneymovement.domain.errors import account_not_found
from moneymovement.domain.holder_scope import for_holder, holder_filter, require_holder_changes
from moneymovement.domain.queries import AccountQuery
from moneymovement.service.holder_access import sees_account
from moneymovement.service.pages import Page, newest_first
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


class AccountService:
    """The account use cases."""

    def __init__(self, pipeline: WritePipeline, uow: UnitOfWork) -> None:
        self._pipeline = pipeline
        self._uow = uow

    async def create(self, caller: Caller, request_id: str, new: CreateAccount) -> Account:
        """Opens an account.

        Raises:
            Rejected: EXTERNAL_ID_TAKEN; acting for a holder, HOLDER_NOT_FOUND for
                another holder, HOLDER_SCOPE_FORBIDS for what only the platform opens.
        """
        if caller.holder_id is not None:
            new = for_holder(caller.holder_id, new)
        return await self._pipeline.submit(caller, request_id, new)

    async def get(self, caller: Caller, account_id: str) -> Account:
        """Reads one account.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND.
        """

        async def work(session: Session) -> Account:
            account = await session.accounts.get(account_id)
            if account is None or not sees_account(caller, account):
                raise account_not_found(account_id)
            return account

        return await self._uow.read(caller, work)

    async def list(
        self, caller: Caller, where: AccountQuery, size: int, token: str
    ) -> Page[Account]:
        """A page of accounts, newest first (acting for a holder, of the holder only: a
        filter naming another holder finds nothing, as one naming nobody)."""
        if caller.holder_id is not None:
            where = replace(where, holder_id=holder_filter(caller.holder_id, where.holder_id))
        return await newest_first(
            self._uow,
            caller,
            "accounts",
            where,
            size,
            token,
            lambda session, after, limit: session.accounts.search(where, after, limit),
        )

    async def update(
        self,
        caller: Caller,
        request_id: str,
        account_id: str,
        changes: AccountChanges,
        expected_version: int | None,
        expected_attributes_version: int | None = None,
    ) -> Account:
        """Changes name, metadata or overdraft policy (acting for a holder, name and
        metadata only)."""
        if caller.holder_id is not None:
            require_holder_changes(caller.holder_id, changes)
        command = UpdateAccount(
            account_id=account_id,
            expected_version=expected_version,
            expected_attributes_version=expected_attributes_version,
            changes=changes,
        )
        return await self._pipeline.submit(caller, request_id, command)

    async def freeze(self, caller: Caller, request_id: str, command: FreezeAccount) -> Account:
        """Freezes an account, for everything or for debits, with a reason."""
        return await self._pipeline.submit(caller, request_id, command)

    async def unfreeze(
        self,
        caller: Caller,
        request_id: str,
        account_id: str,
        expected_version: int | None,
        expected_attributes_version: int | None = None,
    ) -> Account:
        """Unfreezes an account."""
        command = UnfreezeAccount(account_id, expected_version, expected_attributes_version)
        return await self._pipeline.submit(caller, request_id, command)

    async def close(
        self,
        caller: Caller,
        request_id: str,
        account_id: str,
        expected_version: int | None,
        expected_attributes_version: int | None = None,
    ) -> Account:
        """Closes an empty account."""
        command = CloseAccount(account_id, expected_version, expected_attributes_version)
        return await self._pipeline.submit(caller, request_id, command)
