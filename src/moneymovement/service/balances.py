"""Balance use cases: one account's balances, or many in one snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from moneymovement.domain.balances import BalanceSnapshot
from moneymovement.domain.errors import account_not_found
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


class BalanceService:
    """The balance use cases."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def get_many(self, caller: Caller, account_ids: Sequence[str]) -> list[BalanceSnapshot]:
        """The current balances of each account, in the order asked, from one snapshot.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND naming the first missing account.
        """

        async def work(session: Session) -> dict[str, BalanceSnapshot]:
            return await session.accounts.balances(account_ids)

        found = await self._uow.read(caller, work)
        for account_id in account_ids:
            if account_id not in found:
                raise account_not_found(account_id)
        return [found[account_id] for account_id in account_ids]
