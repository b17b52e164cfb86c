"""Money movement use cases: transfers, holds, reversals, batches; reads and lists.

Every mutation is a command for the write pipeline (service/pipeline.py), which commits
it with whatever else is waiting, in one SERIALIZABLE transaction, and records its
outcome with the request id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from moneymovement.domain.commands import (
    BatchItem,
    CreateTransfer,
    CreateTransfers,
    ExpireHold,
    ExtendHold,
    IncrementHold,
    PostTransfer,
    ReverseTransfer,
    VoidTransfer,
)
from moneymovement.domain.errors import account_not_found, transfer_not_found
from moneymovement.domain.queries import TransferQuery
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import Transfer, TransferSpec
from moneymovement.service.holder_access import sees_account, sees_in
from moneymovement.service.pages import Page, TimeCursor, newest_first
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session


class TransferService:
    """The money movement use cases."""

    def __init__(self, pipeline: WritePipeline, uow: UnitOfWork) -> None:
        self._pipeline = pipeline
        self._uow = uow

    async def create(self, caller: Caller, request_id: str, spec: TransferSpec) -> Transfer:
        """Moves money at once (POSTED), or places a hold (PENDING) when `spec.pending`.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND, ACCOUNT_FROZEN, ACCOUNT_CLOSED, CURRENCY_MISMATCH,
                INSUFFICIENT_FUNDS, BALANCE_OVERFLOW.
        """
        return await self._pipeline.submit(caller, request_id, CreateTransfer(spec))

    async def create_batch(
        self,
        caller: Caller,
        request_id: str,
        items: Sequence[BatchItem],
        *,
        operations: bool = False,
    ) -> list[Transfer]:
        """Applies all of `items` (new transfers, captures and voids of holds) atomically,
        in order, or none of them; `operations`: they came as the request's operations.

        Raises:
            Rejected: the first failing item's rejection, with metadata item_index.
            InvalidInput: an item's hold expiry out of range, named by its field path.
        """
        command = CreateTransfers(list(items), operations)
        return await self._pipeline.submit(caller, request_id, command)

    async def post(
        self,
        caller: Caller,
        request_id: str,
        transfer_id: str,
        amount_minor: int,
        *,
        final: bool = True,
    ) -> Transfer:
        """Captures a hold fully (amount 0) or partly; a final capture releases the rest,
        one that is not leaves it held.

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_PENDING, HOLD_EXPIRED,
                POST_EXCEEDS_HOLD, ACCOUNT_FROZEN, and for an over-capture's excess
                INSUFFICIENT_FUNDS, DEBIT_LIMIT_EXCEEDED.
        """
        return await self._pipeline.submit(
            caller, request_id, PostTransfer(transfer_id, amount_minor, final)
        )

    async def increment(
        self, caller: Caller, request_id: str, transfer_id: str, amount_minor: int
    ) -> Transfer:
        """Raises a hold by `amount_minor`.

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_PENDING, HOLD_EXPIRED,
                INSUFFICIENT_FUNDS, DEBIT_LIMIT_EXCEEDED, ACCOUNT_FROZEN, ACCOUNT_CLOSED.
        """
        return await self._pipeline.submit(
            caller, request_id, IncrementHold(transfer_id, amount_minor)
        )

    async def extend(self, caller: Caller, request_id: str, command: ExtendHold) -> Transfer:
        """Moves a hold's expiry later.

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_PENDING, HOLD_EXPIRED,
                HOLD_EXTENSION_OUT_OF_RANGE.
        """
        return await self._pipeline.submit(caller, request_id, command)

    async def void(self, caller: Caller, request_id: str, transfer_id: str) -> Transfer:
        """Releases a hold.

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_PENDING.
        """
        return await self._pipeline.submit(caller, request_id, VoidTransfer(transfer_id))

    async def expire(self, caller: Caller, transfer_id: str) -> Transfer | None:
        """Releases a hold whose time is up (the sweeper's call). None when there is
        nothing to do: not due, or already ended, by another sweeper too."""
        return await self._pipeline.submit(caller, "", ExpireHold(transfer_id))

    async def reverse(
        self, caller: Caller, request_id: str, request: ReversalRequest
    ) -> tuple[Transfer, Transfer]:
        """Moves posted money back by a new transfer; returns (reversal, original).

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_POSTED, REVERSAL_EXCEEDS_ORIGINAL,
                and the rejections of a transfer.
        """
        return await self._pipeline.submit(caller, request_id, ReverseTransfer(request))

    async def get(self, caller: Caller, transfer_id: str) -> Transfer:
        """Reads one transfer with its history.

        Raises:
            Rejected: TRANSFER_NOT_FOUND.
        """

        async def work(session: Session) -> Transfer:
            transfer = await session.transfers.get(transfer_id)
            accounts = () if transfer is None else (transfer.debit_account_id,
                                                     transfer.credit_account_id)  # fmt: skip
            if transfer is None or not await sees_in(session, caller, accounts):
                raise transfer_not_found(transfer_id)
            return transfer

        # Acting for a holder, the transfer's accounts are read in the same snapshot.
        return await self._uow.read(caller, work, statements=1 if caller.holder_id is None else 2)

    async def list(
        self, caller: Caller, where: TransferQuery, size: int, token: str
    ) -> Page[Transfer]:
        """A page of transfers, newest first.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND for an account filter naming no account of the
                tenant (a typo must not look like an account without activity), as
                ListEntries does.
        """
        account_id = where.account_id
        if caller.holder_id is not None:
            where = replace(where, holder_id=caller.holder_id)

        async def fetch(session: Session, after: TimeCursor | None, limit: int) -> list[Transfer]:
            if account_id is not None:
                account = await session.accounts.get(account_id)
                if account is None or not sees_account(caller, account):
                    raise account_not_found(account_id)
            return await session.transfers.search(where, after, limit)

        return await newest_first(
            self._uow,
            caller,
            "transfers",
            where,
            size,
            token,
            fetch,
            statements=1 if account_id is None else 2,
        )
