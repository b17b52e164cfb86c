"""Account use cases: open, read, list, change, freeze, unfreeze, close."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from moneymovement.domain import accounts as rules
from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountChanges, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.errors import Reason, Rejected, account_not_found
from moneymovement.domain.queries import AccountQuery
from moneymovement.domain.validation import MAX_METADATA_KEYS
from moneymovement.service.outcomes import account_from_json, account_to_json
from moneymovement.service.pages import Page, newest_first
from moneymovement.service.requests import Codec, run_once
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.accounts import NOT_WRITTEN
from moneymovement.storage.session import Session

_ACCOUNT = Codec(account_to_json, account_from_json)


@dataclass(frozen=True)
class NewAccount:
    """CreateAccount's command, validated."""

    currency_code: str
    normal_balance: NormalBalance
    overdraft_mode: OverdraftMode = OverdraftMode.NONE
    overdraft_limit_minor: int = 0
    external_id: str | None = None
    name: str = ""
    holder_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


class AccountService:
    """The account use cases."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def create(self, caller: Caller, request_id: str, new: NewAccount) -> Account:
        """Opens an account.

        Raises:
            Rejected: EXTERNAL_ID_TAKEN.
        """

        async def work(session: Session) -> Account:
            draft = Account(
                id=ids.new_id(ids.ACCOUNT),
                external_id=new.external_id,
                name=new.name,
                currency_code=new.currency_code,
                normal_balance=new.normal_balance,
                overdraft_mode=new.overdraft_mode,
                overdraft_limit_minor=new.overdraft_limit_minor,
                holder_id=new.holder_id,
                metadata=new.metadata,
                state=rules.AccountState.ACTIVE,
                version=1,
                created_at=NOT_WRITTEN,
                updated_at=NOT_WRITTEN,
            )
            created = await session.accounts.insert(draft)
            if created is None:
                raise Rejected(
                    Reason.EXTERNAL_ID_TAKEN,
                    "another account has this external_id",
                    {"external_id": new.external_id or ""},
                )
            return created

        return await run_once(self._uow, caller, request_id, "CreateAccount", new, _ACCOUNT, work)

    async def get(self, caller: Caller, account_id: str) -> Account:
        """Reads one account.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND.
        """

        async def work(session: Session) -> Account:
            account = await session.accounts.get(account_id)
            if account is None:
                raise account_not_found(account_id)
            return account

        return await self._uow.read(caller, work)

    async def list(
        self, caller: Caller, where: AccountQuery, size: int, token: str
    ) -> Page[Account]:
        """A page of accounts, newest first."""
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
    ) -> Account:
        """Changes name, metadata or overdraft policy."""
        command = (account_id, changes, expected_version)
        return await self._change(
            caller,
            request_id,
            "UpdateAccount",
            command,
            account_id,
            expected_version,
            lambda account: rules.update(account, changes, MAX_METADATA_KEYS),
        )

    async def freeze(
        self, caller: Caller, request_id: str, account_id: str, expected_version: int | None
    ) -> Account:
        """Freezes an account."""
        return await self._change(
            caller,
            request_id,
            "FreezeAccount",
            (account_id, expected_version),
            account_id,
            expected_version,
            rules.freeze,
        )

    async def unfreeze(
        self, caller: Caller, request_id: str, account_id: str, expected_version: int | None
    ) -> Account:
        """Unfreezes an account."""
        return await self._change(
            caller,
            request_id,
            "UnfreezeAccount",
            (account_id, expected_version),
            account_id,
            expected_version,
            rules.unfreeze,
        )

    async def close(
        self, caller: Caller, request_id: str, account_id: str, expected_version: int | None
    ) -> Account:
        """Closes an empty account."""
        return await self._change(
            caller,
            request_id,
            "CloseAccount",
            (account_id, expected_version),
            account_id,
            expected_version,
            rules.close,
        )

    async def _change(
        self,
        caller: Caller,
        request_id: str,
        method: str,
        command: object,
        account_id: str,
        expected_version: int | None,
        change: Callable[[Account], Account],
    ) -> Account:
        async def work(session: Session) -> Account:
            locked, _ = await session.accounts.lock([account_id])
            account = locked.get(account_id)
            if account is None:
                raise account_not_found(account_id)
            rules.require_version(account, expected_version)
            changed = change(account)
            if changed is account:
                return account
            return await session.accounts.save(changed)

        return await run_once(self._uow, caller, request_id, method, command, _ACCOUNT, work)
