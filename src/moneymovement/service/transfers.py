"""Money movement use cases: transfers, holds, reversals, batches; reads and lists.

Each mutation is one SERIALIZABLE transaction that locks what it changes (a transfer
first, then its accounts in id order), lets the domain decide, and writes everything in
one statement. Its outcome is recorded with the request id in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account
from moneymovement.domain.errors import (
    FieldViolation,
    InvalidInput,
    Rejected,
    account_not_found,
    transfer_not_found,
)
from moneymovement.domain.holds import expire_hold, post_hold, void_hold
from moneymovement.domain.queries import TransferQuery
from moneymovement.domain.reversals import ReversalRequest, reverse
from moneymovement.domain.transfers import (
    Entry,
    NewTransfer,
    Postings,
    Transfer,
    TransferSpec,
    TransferState,
    open_transfer,
)
from moneymovement.service import events
from moneymovement.service.hot_accounts import HotAccounts
from moneymovement.service.outcomes import transfer_from_json, transfer_to_json
from moneymovement.service.pages import Page, newest_first
from moneymovement.service.requests import Codec, run_once
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session

CREATE_TRANSFER = "CreateTransfer"  # in fingerprints: grouped or alone, the same
_TRANSFER = Codec(transfer_to_json, transfer_from_json)
_TRANSFERS: Codec[list[Transfer]] = Codec(
    lambda items: [transfer_to_json(t) for t in items],
    lambda data: [transfer_from_json(t) for t in data],
)
_REVERSAL: Codec[tuple[Transfer, Transfer]] = Codec(
    lambda pair: [transfer_to_json(pair[0]), transfer_to_json(pair[1])],
    lambda data: (transfer_from_json(data[0]), transfer_from_json(data[1])),
)


class TransferService:
    """The money movement use cases."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._hot = HotAccounts(uow, CREATE_TRANSFER, _TRANSFER)

    async def create(self, caller: Caller, request_id: str, spec: TransferSpec) -> Transfer:
        """Moves money at once (POSTED), or places a hold (PENDING) when `spec.pending`.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND, ACCOUNT_FROZEN, ACCOUNT_CLOSED, CURRENCY_MISMATCH,
                INSUFFICIENT_FUNDS, BALANCE_OVERFLOW.
        """

        busy = self._hot.busy_account(caller.tenant_id, spec)
        if busy is not None:  # a hot account: written with the others waiting for it
            grouped = await self._hot.create(caller, request_id, spec, busy)
            if grouped is not None:
                return grouped

        async def work(session: Session) -> Transfer:
            [transfer] = await self._open(session, caller, request_id, [spec], batch_id=None)
            return transfer

        return await run_once(
            self._uow, caller, request_id, CREATE_TRANSFER, spec, _TRANSFER, work,
            lambda transfer: events.transfers_created([transfer]),
            accounts=(spec.debit_account_id, spec.credit_account_id),
        )  # fmt: skip

    async def create_batch(
        self, caller: Caller, request_id: str, specs: Sequence[TransferSpec]
    ) -> list[Transfer]:
        """Creates all of `specs` atomically, in order, or none of them.

        Raises:
            Rejected: the first failing item's rejection, with metadata item_index.
            InvalidInput: an item's hold expiry out of range, named transfers[i].field.
        """

        async def work(session: Session) -> list[Transfer]:
            batch_id = ids.new_id(ids.BATCH)
            return await self._open(session, caller, request_id, specs, batch_id=batch_id)

        return await run_once(
            self._uow, caller, request_id, "CreateTransfers", list(specs), _TRANSFERS, work,
            events.transfers_created,
            accounts={a for s in specs for a in (s.debit_account_id, s.credit_account_id)},
        )  # fmt: skip

    async def _open(
        self,
        session: Session,
        caller: Caller,
        request_id: str,
        specs: Sequence[TransferSpec],
        batch_id: str | None,
    ) -> list[Transfer]:
        wanted = {a for s in specs for a in (s.debit_account_id, s.credit_account_id)}
        accounts, now = await session.accounts.lock(wanted)
        postings = Postings()
        for index, spec in enumerate(specs):
            try:
                if now is None:
                    raise account_not_found(spec.debit_account_id)
                new = NewTransfer(
                    ids.new_id(ids.TRANSFER), request_id, now, caller.trace_id, batch_id
                )
                transfer, entries = open_transfer(accounts, spec, new)
            except (Rejected, InvalidInput) as error:
                raise _for_item(error, index) if batch_id else error from None
            postings.new_transfers.append(transfer)
            postings.entries += entries
        postings.accounts = Postings.changed_accounts(accounts, postings.entries)
        await session.transfers.write(postings)
        return postings.new_transfers

    async def post(
        self, caller: Caller, request_id: str, transfer_id: str, amount_minor: int
    ) -> Transfer:
        """Captures a hold fully (amount 0) or partly; the rest is released.

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_PENDING, HOLD_EXPIRED,
                POST_EXCEEDS_HOLD, ACCOUNT_FROZEN.
        """

        async def work(session: Session) -> Transfer:
            hold, now, accounts = await self._lock_hold(session, transfer_id)
            posted, entries = post_hold(accounts, hold, amount_minor, now, request_id)
            await self._write_change(session, accounts, posted, entries)
            return posted

        command = (transfer_id, amount_minor)
        return await run_once(
            self._uow, caller, request_id, "PostTransfer", command, _TRANSFER, work,
            events.hold_ended,
        )  # fmt: skip

    async def void(self, caller: Caller, request_id: str, transfer_id: str) -> Transfer:
        """Releases a hold.

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_PENDING.
        """

        async def work(session: Session) -> Transfer:
            hold, now, accounts = await self._lock_hold(session, transfer_id)
            voided, entries = void_hold(accounts, hold, now, request_id)
            await self._write_change(session, accounts, voided, entries)
            return voided

        return await run_once(
            self._uow, caller, request_id, "VoidTransfer", transfer_id, _TRANSFER, work,
            events.hold_ended,
        )  # fmt: skip

    async def expire(self, caller: Caller, transfer_id: str) -> Transfer | None:
        """Releases a hold whose time is up (the sweeper's call). None when there is
        nothing to do: not due, or already ended, by another sweeper too."""

        async def work(session: Session) -> Transfer | None:
            hold, now, accounts = await self._lock_hold(session, transfer_id)
            ended = expire_hold(accounts, hold, now)
            if ended is None:
                return None
            expired, entries = ended
            await self._write_change(session, accounts, expired, entries)
            return expired

        expired = await self._uow.write(caller, work)
        if expired is not None:
            events.hold_ended(expired)
        return expired

    async def reverse(
        self, caller: Caller, request_id: str, request: ReversalRequest
    ) -> tuple[Transfer, Transfer]:
        """Moves posted money back by a new transfer; returns (reversal, original).

        Raises:
            Rejected: TRANSFER_NOT_FOUND, TRANSFER_NOT_POSTED, REVERSAL_EXCEEDS_ORIGINAL,
                and the rejections of a transfer.
        """

        async def work(session: Session) -> tuple[Transfer, Transfer]:
            original, now = await session.transfers.lock(request.transfer_id)
            if original is None or now is None:
                raise transfer_not_found(request.transfer_id)
            pair = (original.credit_account_id, original.debit_account_id)
            accounts, _ = await session.accounts.lock(
                pair if original.state is TransferState.POSTED else ()
            )
            new = NewTransfer(ids.new_id(ids.TRANSFER), request_id, now, caller.trace_id)
            reversal, updated, entries = reverse(accounts, original, request, new)
            postings = Postings(
                Postings.changed_accounts(accounts, entries), [reversal], [updated], entries
            )
            await session.transfers.write(postings)
            return reversal, updated

        return await run_once(
            self._uow, caller, request_id, "ReverseTransfer", request, _REVERSAL, work,
            lambda pair: events.transfers_created([pair[0]]),
        )  # fmt: skip

    async def _lock_hold(
        self, session: Session, transfer_id: str
    ) -> tuple[Transfer, datetime, dict[str, Account]]:
        hold, now = await session.transfers.lock(transfer_id)
        if hold is None or now is None:
            raise transfer_not_found(transfer_id)
        # A hold that already ended needs no account locks: the domain refuses it at once.
        wanted = (hold.debit_account_id, hold.credit_account_id)
        accounts, _ = await session.accounts.lock(
            wanted if hold.state is TransferState.PENDING else ()
        )
        return hold, now, accounts

    async def _write_change(
        self,
        session: Session,
        accounts: dict[str, Account],
        changed: Transfer,
        entries: list[Entry],
    ) -> None:
        postings = Postings(Postings.changed_accounts(accounts, entries), [], [changed], entries)
        await session.transfers.write(postings)

    async def get(self, caller: Caller, transfer_id: str) -> Transfer:
        """Reads one transfer with its history.

        Raises:
            Rejected: TRANSFER_NOT_FOUND.
        """

        async def work(session: Session) -> Transfer:
            transfer = await session.transfers.get(transfer_id)
            if transfer is None:
                raise transfer_not_found(transfer_id)
            return transfer

        return await self._uow.read(caller, work)

    async def list(
        self, caller: Caller, where: TransferQuery, size: int, token: str
    ) -> Page[Transfer]:
        """A page of transfers, newest first."""
        return await newest_first(
            self._uow,
            caller,
            "transfers",
            where,
            size,
            token,
            lambda session, after, limit: session.transfers.search(where, after, limit),
        )


def _for_item(error: Rejected | InvalidInput, index: int) -> Rejected | InvalidInput:
    """The error of batch item `index`, naming it."""
    if isinstance(error, InvalidInput):
        return InvalidInput(
            [
                FieldViolation(f"transfers[{index}].{v.field}", v.reason, v.description)
                for v in error.violations
            ]
        )
    return Rejected(
        error.reason,
        f"transfers[{index}]: {error.message}",
        {**error.metadata, "item_index": str(index)},
    )
