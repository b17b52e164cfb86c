"""Balance use cases: balances now or as of a time, and account statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from moneymovement.domain.accounts import Account
from moneymovement.domain.balances import BalanceSnapshot
from moneymovement.domain.errors import Reason, Rejected, account_not_found
from moneymovement.domain.transfers import Entry
from moneymovement.service.balance_reads import BalanceReads
from moneymovement.service.pages import Page, decode_version_cursor, paginate, scope_of
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


class BalanceService:
    """The balance use cases."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._current = BalanceReads(uow)

    async def get_many(self, caller: Caller, account_ids: Sequence[str]) -> list[BalanceSnapshot]:
        """The current balances of each account, in the order asked, from one snapshot
        (read together with other callers' concurrent reads: service/balance_reads.py).

        Raises:
            Rejected: ACCOUNT_NOT_FOUND naming the first missing account (`account_id`)
                and every one (`missing_account_ids`, comma-separated, in the order asked).
        """

        found = await self._current.balances(caller, account_ids)
        missing = list(dict.fromkeys(a for a in account_ids if a not in found))
        if missing:
            refusal = account_not_found(missing[0])
            if len(missing) > 1:
                # The ids go in the metadata only: repeated in the message too, a full
                # batch of them would pass the 8 KiB of trailers clients accept.
                refusal = Rejected(
                    Reason.ACCOUNT_NOT_FOUND,
                    f"{len(missing)} accounts not found, the first {missing[0]}: see "
                    "missing_account_ids",
                    {"account_id": missing[0], "missing_account_ids": ",".join(missing)},
                )
            else:
                refusal.metadata["missing_account_ids"] = missing[0]
            raise refusal
        return [found[account_id] for account_id in account_ids]

    async def get_as_of(self, caller: Caller, account_id: str, as_of: datetime) -> BalanceSnapshot:
        """The balances after every entry written at or before `as_of`.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND.
        """

        async def work(session: Session) -> BalanceSnapshot | None:
            return await session.accounts.balance_as_of(account_id, as_of)

        snapshot = await self._uow.read(caller, work)
        if snapshot is None:
            raise account_not_found(account_id)
        return snapshot

    async def statement(
        self,
        caller: Caller,
        account_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        oldest_first: bool,
        size: int,
        token: str,
    ) -> tuple[Account, Page[Entry]]:
        """A page of an account's entries, ordered by account version, and the account.

        The page token holds the last version served, so pages neither skip nor repeat
        entries however many arrive meanwhile.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND.
        """
        scope = scope_of("entries", account_id, start, end, oldest_first)
        after = decode_version_cursor(token, scope)

        async def work(session: Session) -> tuple[Account | None, list[Entry]]:
            account = await session.accounts.get(account_id)
            if account is None:
                return None, []
            rows = await session.transfers.entries(
                account_id,
                start=start,
                end=end,
                oldest_first=oldest_first,
                after_version=after,
                limit=size + 1,
            )
            return account, rows

        account, rows = await self._uow.read(caller, work, statements=2)
        if account is None:
            raise account_not_found(account_id)
        return account, paginate(rows, size, lambda e: [e.account_version], scope)
