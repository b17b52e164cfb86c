"""Transfer use cases: move money, read transfers, list them."""

from __future__ import annotations

from dataclasses import replace

from moneymovement.domain import ids
from moneymovement.domain.errors import DomainError, Reason, transfer_not_found
from moneymovement.domain.queries import TransferQuery
from moneymovement.domain.transfers import (
    EventKind,
    Transfer,
    TransferEvent,
    TransferSpec,
    TransferState,
    plan_transfer,
)
from moneymovement.service.outcomes import transfer_from_json, transfer_to_json
from moneymovement.service.pages import Page, decode_token, paginate, scope_of
from moneymovement.service.requests import Codec, run_once
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.repositories import NOT_WRITTEN, NewTransfer
from moneymovement.storage.session import Session

_TRANSFER = Codec(transfer_to_json, transfer_from_json)


class TransferService:
    """The money movement use cases."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def create(self, caller: Caller, request_id: str, spec: TransferSpec) -> Transfer:
        """Moves money at once (a POSTED transfer).

        One SERIALIZABLE transaction: lock both accounts in id order, let the domain check
        and apply the transfer, then write the transfer, both entries and both balances
        in one statement.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND, ACCOUNT_FROZEN, ACCOUNT_CLOSED, CURRENCY_MISMATCH,
                INSUFFICIENT_FUNDS, BALANCE_OVERFLOW.
            DomainError: NOT_IMPLEMENTED for holds (pending transfers).
        """
        if spec.pending:
            raise DomainError(
                Reason.NOT_IMPLEMENTED, "holds (pending transfers) are not served yet"
            )

        async def work(session: Session) -> Transfer:
            accounts = await session.accounts.lock([spec.debit_account_id, spec.credit_account_id])
            transfer_id = ids.new_id(ids.TRANSFER)
            entries = plan_transfer(accounts, transfer_id, spec)
            touched = [accounts[spec.debit_account_id], accounts[spec.credit_account_id]]
            draft = Transfer(
                id=transfer_id,
                request_id=request_id,
                debit_account_id=spec.debit_account_id,
                credit_account_id=spec.credit_account_id,
                amount_minor=spec.amount_minor,
                currency_code=spec.currency_code,
                state=TransferState.POSTED,
                description=spec.description,
                metadata=spec.metadata,
                posted_amount_minor=spec.amount_minor,
                trace_id=caller.trace_id,
                created_at=NOT_WRITTEN,
                updated_at=NOT_WRITTEN,
            )
            written_at = await session.transfers.write(touched, [NewTransfer(draft, 0)], entries)
            created = TransferEvent(EventKind.CREATED, spec.amount_minor, written_at, request_id)
            return replace(draft, created_at=written_at, updated_at=written_at, history=(created,))

        return await run_once(
            self._uow, caller, request_id, "CreateTransfer", spec, _TRANSFER, work
        )

    async def get(self, caller: Caller, transfer_id: str) -> Transfer:
        """Reads one transfer.

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
        scope = scope_of("transfers", where)
        after = decode_token(token, scope)

        async def work(session: Session) -> list[Transfer]:
            return await session.transfers.list(where, after, size + 1)

        rows = await self._uow.read(caller, work)
        return paginate(rows, size, lambda t: (t.created_at, t.id), scope)
