"""Holder use cases: create, read, list, change (name, metadata, state), and the sums
of a holder's accounts per currency (docs/platforms.md).

Every change is a command for the write pipeline (service/pipeline.py): idempotent by
request id, decided in the write transaction against the holder's row.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from moneymovement.domain.commands import CreateHolder, UpdateHolder
from moneymovement.domain.holders import Holder, HolderBalance, HolderQuery, holder_not_found
from moneymovement.service.pages import Page, newest_first
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


class HolderService:
    """The holder use cases."""

    def __init__(self, pipeline: WritePipeline, uow: UnitOfWork) -> None:
        self._pipeline = pipeline
        self._uow = uow

    async def create(self, caller: Caller, request_id: str, command: CreateHolder) -> Holder:
        """Creates a holder.

        Raises:
            Rejected: HOLDER_EXTERNAL_ID_TAKEN.
        """
        return await self._pipeline.submit(caller, request_id, command)

    async def update(self, caller: Caller, request_id: str, command: UpdateHolder) -> Holder:
        """Changes a holder's name, metadata or state.

        Raises:
            Rejected: HOLDER_NOT_FOUND, HOLDER_CLOSED, HOLDER_NOT_EMPTY.
        """
        return await self._pipeline.submit(caller, request_id, command)

    async def get(self, caller: Caller, holder_id: str) -> Holder:
        """Reads one holder.

        Raises:
            Rejected: HOLDER_NOT_FOUND.
        """

        async def work(session: Session) -> Holder:
            holder = await session.holders.get(holder_id)
            if holder is None:
                raise holder_not_found(holder_id)
            return holder

        _require_seen(caller, holder_id)
        return await self._uow.read(caller, work)

    async def balances(
        self, caller: Caller, holder_id: str
    ) -> tuple[datetime, list[HolderBalance]]:
        """The read time and the sums of the holder's accounts per currency, by code,
        read in one statement (one snapshot).

        Raises:
            Rejected: HOLDER_NOT_FOUND.
        """

        async def work(session: Session) -> tuple[datetime, list[HolderBalance]]:
            found = await session.holders.balances(holder_id)
            if found is None:
                raise holder_not_found(holder_id)
            return found

        _require_seen(caller, holder_id)
        return await self._uow.read(caller, work)

    async def list(self, caller: Caller, where: HolderQuery, size: int, token: str) -> Page[Holder]:
        """A page of holders, newest first (acting for a holder, itself alone)."""
        if caller.holder_id is not None:
            where = replace(where, holder_id=caller.holder_id)
        return await newest_first(
            self._uow,
            caller,
            "holders",
            where,
            size,
            token,
            lambda session, after, limit: session.holders.search(where, after, limit),
        )


def _require_seen(caller: Caller, holder_id: str) -> None:
    """Acting for a holder, another holder answers as one that does not exist."""
    if caller.holder_id not in (None, holder_id):
        raise holder_not_found(holder_id)
