"""Funds accessibility use cases: early release, the scheduled parts of an account,
balance monitors and the funds policy's audit trail (docs/funds-availability.md).

Every change is a command for the write pipeline (service/pipeline.py); reads name an
account and answer ACCOUNT_NOT_FOUND for one that does not exist (or is another
tenant's), never an empty list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from moneymovement.domain.commands import (
    CreateBalanceMonitor,
    DeleteBalanceMonitor,
    FundsRelease,
    ReleaseDueFunds,
    ReleaseFunds,
)
from moneymovement.domain.errors import account_not_found
from moneymovement.domain.funds import ScheduledFunds
from moneymovement.domain.ledger import PolicyChange
from moneymovement.domain.monitors import BalanceMonitor, monitor_not_found
from moneymovement.service.holder_access import hidden_accounts, sees_account
from moneymovement.service.pages import (
    Page,
    decode_time_cursor,
    decode_version_cursor,
    paginate,
    scope_of,
    time_position,
)
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session

T = TypeVar("T")


class FundsService:
    """The funds accessibility use cases."""

    def __init__(self, pipeline: WritePipeline, uow: UnitOfWork) -> None:
        self._pipeline = pipeline
        self._uow = uow

    async def release(self, caller: Caller, request_id: str, command: ReleaseFunds) -> FundsRelease:
        """Makes pending funds available now, with an optional fee, in one transaction.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND, EARLY_RELEASE_NOT_ALLOWED, FUNDS_NOT_FOUND,
                FUNDS_NOT_SCHEDULED, RELEASE_EXCEEDS_PENDING, and a fee transfer's.
        """
        return await self._pipeline.submit(caller, request_id, command)

    async def release_due(self, caller: Caller, account_id: str) -> tuple[ScheduledFunds, ...]:
        """The sweeper's: releases every part of the account whose time has come."""
        return await self._pipeline.submit(caller, "", ReleaseDueFunds(account_id))

    async def create_monitor(
        self, caller: Caller, request_id: str, command: CreateBalanceMonitor
    ) -> BalanceMonitor:
        """Starts watching a balance; told at once when the condition already holds.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND, MONITOR_LIMIT_REACHED.
        """
        return await self._pipeline.submit(caller, request_id, command)

    async def delete_monitor(
        self, caller: Caller, request_id: str, monitor_id: str
    ) -> BalanceMonitor:
        """Stops a monitor.

        Raises:
            Rejected: MONITOR_NOT_FOUND.
        """
        if caller.holder_id is not None:
            # Acting for a holder: only a monitor of its own accounts (a monitor's
            # account never changes, so reading it first is enough).
            monitor = await self._uow.read(
                caller, lambda s: s.funds.monitor(monitor_id), statements=2
            )
            if monitor is None or await hidden_accounts(self._uow, caller, [monitor.account_id]):
                raise monitor_not_found(monitor_id)
        return await self._pipeline.submit(caller, request_id, DeleteBalanceMonitor(monitor_id))

    async def scheduled(
        self, caller: Caller, account_id: str, include_ended: bool, size: int, token: str
    ) -> Page[ScheduledFunds]:
        """A page of an account's scheduled parts, soonest first."""
        scope = scope_of("scheduled_funds", account_id, include_ended)
        after = decode_time_cursor(token, scope)

        async def work(session: Session) -> list[ScheduledFunds]:
            return await session.funds.scheduled(account_id, include_ended, after, size + 1)

        rows = await self._of_account(caller, account_id, work)
        return paginate(rows, size, lambda f: time_position(f.available_at, f.id), scope)

    async def monitors(self, caller: Caller, account_id: str) -> list[BalanceMonitor]:
        """An account's live monitors, oldest first."""

        async def work(session: Session) -> list[BalanceMonitor]:
            return await session.funds.monitors(account_id)

        return await self._of_account(caller, account_id, work)

    async def policy_changes(
        self, caller: Caller, account_id: str, size: int, token: str
    ) -> Page[PolicyChange]:
        """A page of an account's funds policy changes, newest first."""
        scope = scope_of("policy_changes", account_id)
        before = decode_version_cursor(token, scope)

        async def work(session: Session) -> list[PolicyChange]:
            return await session.funds.policy_changes(account_id, before, size + 1)

        rows = await self._of_account(caller, account_id, work)
        return paginate(rows, size, lambda change: [change.version], scope)

    async def _of_account(
        self, caller: Caller, account_id: str, work: Callable[[Session], Awaitable[T]]
    ) -> T:
        """`work` in one snapshot with the account, which must exist."""

        async def checked(session: Session) -> T:
            account = await session.accounts.get(account_id)
            if account is None or not sees_account(caller, account):
                raise account_not_found(account_id)
            return await work(session)

        return await self._uow.read(caller, checked, statements=2)
