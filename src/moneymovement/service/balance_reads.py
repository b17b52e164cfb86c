"""Concurrent balance reads of one tenant, coalesced into one statement.

Balance reads are the most frequent call, and each cost a round trip and a statement of
its own. Here a read that arrives while another read of the same tenant is in the
database waits for it to finish, and then goes with every read that arrived meanwhile, in
ONE statement (get_balances takes any number of ids). No timer: a lone read goes at once.
Each caller gets the balances it asked for, all from one snapshot; and because a read
only ever joins a statement that starts after it arrived, it sees every write committed
before it was asked (read-your-writes holds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from moneymovement.domain.balances import BalanceSnapshot
from moneymovement.domain.errors import DomainError, database_unavailable, deadline_exceeded
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session

# Ids in one statement: a few batches' worth; more wait for the next statement.
MAX_IDS = 1_000


@dataclass(eq=False)
class _Read:
    caller: Caller
    account_ids: Sequence[str]
    answer: asyncio.Future[dict[str, BalanceSnapshot]]


class BalanceReads:
    """Coalesces current-balance reads per tenant (one instance per process)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._waiting: dict[str, list[_Read]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    async def balances(
        self, caller: Caller, account_ids: Sequence[str]
    ) -> dict[str, BalanceSnapshot]:
        """The current balances of the existing accounts among `account_ids`.

        Raises:
            DomainError: DEADLINE_EXCEEDED, DATABASE_UNAVAILABLE.
        """
        read = _Read(caller, account_ids, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(caller.tenant_id, []).append(read)
        if caller.tenant_id not in self._running:
            task = asyncio.create_task(self._run(caller.tenant_id), name="balance-reads")
            self._running[caller.tenant_id] = task
        try:
            async with asyncio.timeout_at(caller.deadline):
                return await read.answer  # cancelled with its caller: the others go on
        except TimeoutError as error:
            raise deadline_exceeded() from error

    async def _run(self, tenant_id: str) -> None:
        try:
            while self._waiting.get(tenant_id):
                group = self._next_group(tenant_id)
                if group:
                    await self._read(tenant_id, group)
        finally:
            del self._running[tenant_id]
            for read in self._waiting.pop(tenant_id, []):  # only if this task was cancelled
                if not read.answer.done():
                    read.answer.set_exception(database_unavailable())

    def _next_group(self, tenant_id: str) -> list[_Read]:
        waiting = [r for r in self._waiting.pop(tenant_id) if not r.answer.done()]
        group: list[_Read] = []
        size = 0
        for index, read in enumerate(waiting):
            if group and size + len(read.account_ids) > MAX_IDS:
                self._waiting[tenant_id] = waiting[index:]
                break
            group.append(read)
            size += len(read.account_ids)
        return group

    async def _read(self, tenant_id: str, group: list[_Read]) -> None:
        deadlines = [r.caller.deadline for r in group]
        latest = None if None in deadlines else max(d for d in deadlines if d is not None)
        wanted = {a for r in group for a in r.account_ids}

        async def work(session: Session) -> dict[str, BalanceSnapshot]:
            return await session.accounts.balances(list(wanted))

        try:
            found = await self._uow.read(Caller(tenant_id, latest), work)
        except Exception as error:  # every caller of the group gets it, none is left waiting
            for read in group:
                if not read.answer.done():
                    read.answer.set_exception(_own_copy(error))
            return
        for read in group:
            if not read.answer.done():
                read.answer.set_result({a: found[a] for a in read.account_ids if a in found})


def _own_copy(error: Exception) -> Exception:
    """The error for one caller: a domain error of its own, so that callers raising it
    in their own tasks do not share one traceback."""
    if isinstance(error, DomainError):
        return DomainError(error.reason, error.message, dict(error.metadata))
    return error
