"""Balance use cases: balances now or as of a time, and account statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from moneymovement.domain.accounts import Account
from moneymovement.domain.balances import BalanceSnapshot
from moneymovement.domain.errors import Reason, Rejected, account_not_found
from moneymovement.domain.transfers import Entry
from moneymovement.service.balance_reads import BalanceReads
from moneymovement.service.holder_access import hidden_accounts, sees_account
from moneymovement.service.pages import Page, decode_version_cursor, paginate, scope_of
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


class BalanceService:
    """The balance use cases."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._current = BalanceReads(uow)

    async def get_many(
        self, caller: Caller, account_ids: Sequence[str], as_of: datetime | None = None
    ) -> list[BalanceSnapshot]:
        """The balances of each account, in the order asked, from one snapshot: now (read
        together with other callers' concurrent reads: service/balance_reads.py), or as
        of `as_of` (after every entry written at or before it; zero before any).

        Raises:
            Rejected: ACCOUNT_NOT_FOUND naming the first missing account (`account_id`)
                and every one (`missing_account_ids`, comma-separated, in the order asked).
        """
        hidden = await hidden_accounts(self._uow, caller, account_ids)
        if as_of is None:
            found = await self._current.balances(caller, account_ids)
        else:
            found = await self._as_of(caller, account_ids, as_of)
        found = {a: snapshot for a, snapshot in found.items() if a not in hidden}
        missing = list(dict.fromkeys(a for a in account_ids if a not in found))
        if missing:
            raise _not_found(missing)
        return [found[account_id] for account_id in account_ids]

    async def _as_of(
        self, caller: Caller, account_ids: Sequence[str], as_of: datetime
    ) -> dict[str, BalanceSnapshot]:
        """The existing accounts' balances as of `as_of`, in one statement: past balances
        are not coalesced with current reads (service/balance_reads.py), which they
        would not share a statement with."""

        async def work(session: Session) -> dict[str, BalanceSnapshot]:
            return await session.accounts.balances_as_of(account_ids, as_of)

        return await self._uow.read(caller, work)

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
        if account is None or not sees_account(caller, account):
            raise account_not_found(account_id)
        return account, paginate(rows, size, lambda e: [e.account_version], scope)


def _not_found(missing: list[str]) -> Rejected:
    """ACCOUNT_NOT_FOUND for the ids `missing` (at least one, in the order asked)."""
    refusal = account_not_found(missing[0])
    if len(missing) > 1:
        # The ids go in the metadata only: repeated in the message too, a full batch of
        # them would pass the 8 KiB of trailers clients accept.
        refusal = Rejected(
            Reason.ACCOUNT_NOT_FOUND,
            f"{len(missing)} accounts not found, the first {missing[0]}: see missing_account_ids",
            {"account_id": missing[0], "missing_account_ids": ",".join(missing)},
        )
    else:
        refusal.metadata["missing_account_ids"] = missing[0]
    return refusal
