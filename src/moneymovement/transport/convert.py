"""Requests to validated commands, and domain objects to response messages.

Every request field is checked here with the domain's rules (domain/validation.py), and
a bad request is refused whole, naming each offending field, before any use case runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf import timestamp_pb2

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountChanges, OverdraftMode
from moneymovement.domain.balances import BalanceSnapshot, NormalBalance
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.queries import AccountQuery, TransferQuery
from moneymovement.domain.transfers import Transfer, TransferSpec
from moneymovement.domain.validation import (
    MAX_BATCH_GET,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    Checker,
)
from moneymovement.service.accounts import NewAccount
from moneymovement.v1 import (
    account_pb2,
    account_service_pb2,
    balance_pb2,
    balance_service_pb2,
    money_movement_service_pb2,
    transfer_pb2,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _enum_name(check: Checker, field: str, names: Mapping[int, str], number: int) -> str | None:
    """The domain value of a proto enum number (None for UNSPECIFIED)."""
    if number == 0:
        return None
    name = names.get(number)
    if name is None:
        check.fail(field, FieldReason.OUT_OF_RANGE, f"unknown enum value {number}")
    return name


def _names(enum_type: object, prefix: str) -> dict[int, str]:
    values = enum_type.items()  # type: ignore[attr-defined]
    return {number: name.removeprefix(prefix) for name, number in values if number != 0}


_NORMAL_BALANCE = _names(account_pb2.NormalBalance, "NORMAL_BALANCE_")
_OVERDRAFT_MODE = _names(account_pb2.OverdraftMode, "OVERDRAFT_MODE_")
_ACCOUNT_STATE = _names(account_pb2.Account.State, "STATE_")
_TRANSFER_STATE = _names(transfer_pb2.Transfer.State, "STATE_")


# Accounts ---------------------------------------------------------------------------


def new_account(request: account_service_pb2.CreateAccountRequest) -> tuple[str, NewAccount]:
    """CreateAccount's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    currency = check.currency("currency_code", request.currency_code)
    normal = _enum_name(check, "normal_balance", _NORMAL_BALANCE, request.normal_balance)
    if normal is None and request.normal_balance == 0:
        check.fail("normal_balance", FieldReason.REQUIRED, "CREDIT or DEBIT is required")
    mode = _enum_name(check, "overdraft_mode", _OVERDRAFT_MODE, request.overdraft_mode) or "NONE"
    limit = check.non_negative("overdraft_limit_minor", request.overdraft_limit_minor)
    if limit and mode != "LIMITED":
        check.fail(
            "overdraft_limit_minor",
            FieldReason.OUT_OF_RANGE,
            "a non-zero limit needs OVERDRAFT_MODE_LIMITED",
        )
    external_id = check.reference("external_id", request.external_id)
    holder_id = check.reference("holder_id", request.holder_id)
    name = check.text("name", request.name, MAX_NAME_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    assert normal is not None
    return request_id, NewAccount(
        currency_code=currency,
        normal_balance=NormalBalance(normal),
        overdraft_mode=OverdraftMode(mode),
        overdraft_limit_minor=limit,
        external_id=external_id or None,
        name=name,
        holder_id=holder_id,
        metadata=metadata,
    )


class _AccountRead(Protocol):
    account_id: str


class _AccountChange(Protocol):
    request_id: str
    account_id: str
    expected_version: int


class _TransferRead(Protocol):
    transfer_id: str


def account_id(request: _AccountRead) -> str:
    """The required account id of a read request."""
    check = Checker()
    value = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    check.raise_if_any()
    return value


def account_change(request: _AccountChange) -> tuple[str, str, int | None]:
    """request_id, account_id and expected_version of Freeze/Unfreeze/Close."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    version = check.non_negative("expected_version", request.expected_version)
    check.raise_if_any()
    return request_id, account, version or None


def account_update(
    request: account_service_pb2.UpdateAccountRequest,
) -> tuple[str, str, AccountChanges, int | None]:
    """UpdateAccount's request id, account id, changes and expected version."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    name = check.text("name", request.name, MAX_NAME_LENGTH) if request.HasField("name") else None
    metadata = check.metadata("metadata", request.metadata, allow_empty=True)
    mode = _enum_name(check, "overdraft_mode", _OVERDRAFT_MODE, request.overdraft_mode)
    limit = None
    if request.HasField("overdraft_limit_minor"):
        limit = check.non_negative("overdraft_limit_minor", request.overdraft_limit_minor)
    version = check.non_negative("expected_version", request.expected_version)
    check.raise_if_any()
    changes = AccountChanges(
        name=name,
        metadata_patch=metadata,
        overdraft_mode=None if mode is None else OverdraftMode(mode),
        overdraft_limit_minor=limit,
    )
    return request_id, account, changes, version or None


def account_query(request: account_service_pb2.ListAccountsRequest) -> tuple[AccountQuery, int]:
    """ListAccounts' filters and page size."""
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    currency = check.currency("currency_code", request.currency_code, required=False)
    state = _enum_name(check, "state", _ACCOUNT_STATE, request.state)
    holder = check.reference("holder_id", request.holder_id)
    external = check.reference("external_id", request.external_id)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    where = AccountQuery(
        currency_code=currency or None,
        state=state,
        holder_id=holder or None,
        external_id=external or None,
        metadata=metadata,
    )
    return where, size


def account_message(account: Account) -> account_pb2.Account:
    """An Account as its proto message."""
    return account_pb2.Account(
        id=account.id,
        external_id=account.external_id or "",
        name=account.name,
        currency_code=account.currency_code,
        normal_balance=account_pb2.NormalBalance.Value(
            "NORMAL_BALANCE_" + account.normal_balance.value
        ),
        overdraft_mode=account_pb2.OverdraftMode.Value(
            "OVERDRAFT_MODE_" + account.overdraft_mode.value
        ),
        overdraft_limit_minor=account.overdraft_limit_minor,
        holder_id=account.holder_id,
        metadata=account.metadata,
        state=account_pb2.Account.State.Value("STATE_" + account.state.value),
        version=account.version,
        create_time=_timestamp(account.created_at),
        update_time=_timestamp(account.updated_at),
    )


# Balances ---------------------------------------------------------------------------


def balance_ids(request: balance_service_pb2.BatchGetBalancesRequest) -> list[str]:
    """BatchGetBalances' account ids."""
    check = Checker()
    if not request.account_ids:
        check.fail("account_ids", FieldReason.REQUIRED, "at least one account id")
    if len(request.account_ids) > MAX_BATCH_GET:
        check.fail("account_ids", FieldReason.TOO_MANY, f"at most {MAX_BATCH_GET}")
    for index, value in enumerate(request.account_ids):
        check.resource_id(f"account_ids[{index}]", value, ids.ACCOUNT)
    check.raise_if_any()
    return list(request.account_ids)


def balance_message(snapshot: BalanceSnapshot) -> balance_pb2.Balance:
    """A balance snapshot as its proto message, with the derived amounts."""
    totals = snapshot.balances
    normal = snapshot.normal_balance
    return balance_pb2.Balance(
        account_id=snapshot.account_id,
        currency_code=snapshot.currency_code,
        normal_balance=account_pb2.NormalBalance.Value("NORMAL_BALANCE_" + normal.value),
        posted_debits_minor=totals.posted_debits_minor,
        posted_credits_minor=totals.posted_credits_minor,
        pending_debits_minor=totals.pending_debits_minor,
        pending_credits_minor=totals.pending_credits_minor,
        posted_minor=totals.posted(normal),
        pending_inbound_minor=totals.pending_inbound(normal),
        pending_outbound_minor=totals.pending_outbound(normal),
        available_minor=totals.available(normal),
        version=snapshot.version,
        as_of_time=_timestamp(snapshot.as_of),
    )


# Transfers --------------------------------------------------------------------------


def transfer_spec(
    request: money_movement_service_pb2.CreateTransferRequest,
) -> tuple[str, TransferSpec]:
    """CreateTransfer's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    debit = check.resource_id("debit_account_id", request.debit_account_id, ids.ACCOUNT)
    credit = check.resource_id("credit_account_id", request.credit_account_id, ids.ACCOUNT)
    if debit and debit == credit:
        check.fail(
            "credit_account_id", FieldReason.MUST_DIFFER, "must differ from the debit account"
        )
    amount = check.amount("amount_minor", request.amount_minor)
    currency = check.currency("currency_code", request.currency_code)
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    return request_id, TransferSpec(
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount,
        currency_code=currency,
        description=description,
        metadata=metadata,
        pending=request.pending,
    )


def transfer_id(request: _TransferRead) -> str:
    """The required transfer id of a read request."""
    check = Checker()
    value = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    check.raise_if_any()
    return value


def transfer_query(
    request: money_movement_service_pb2.ListTransfersRequest,
) -> tuple[TransferQuery, int]:
    """ListTransfers' filters and page size."""
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    account = None
    if request.account_id:
        account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    state = _enum_name(check, "state", _TRANSFER_STATE, request.state)
    metadata = check.metadata("metadata", request.metadata)
    batch = check.resource_id("batch_id", request.batch_id, ids.BATCH) if request.batch_id else None
    trace = request.trace_id or None
    if trace is not None and (len(trace) != 32 or trace.strip("0123456789abcdef")):
        check.fail("trace_id", FieldReason.INVALID_FORMAT, "32 lowercase hex characters")
    start = request.start_time.ToDatetime(tzinfo=UTC) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(tzinfo=UTC) if request.HasField("end_time") else None
    check.raise_if_any()
    where = TransferQuery(
        account_id=account,
        state=state,
        start_time=start,
        end_time=end,
        metadata=metadata,
        batch_id=batch,
        trace_id=trace,
    )
    return where, size


def transfer_message(transfer: Transfer) -> transfer_pb2.Transfer:
    """A Transfer as its proto message."""
    message = transfer_pb2.Transfer(
        id=transfer.id,
        request_id=transfer.request_id,
        debit_account_id=transfer.debit_account_id,
        credit_account_id=transfer.credit_account_id,
        amount_minor=transfer.amount_minor,
        currency_code=transfer.currency_code,
        description=transfer.description,
        metadata=transfer.metadata,
        state=transfer_pb2.Transfer.State.Value("STATE_" + transfer.state.value),
        posted_amount_minor=transfer.posted_amount_minor,
        reversed_amount_minor=transfer.reversed_amount_minor,
        reversal_of_transfer_id=transfer.reversal_of_id or "",
        reversal_transfer_ids=transfer.reversal_ids,
        batch_id=transfer.batch_id or "",
        trace_id=transfer.trace_id or "",
        create_time=_timestamp(transfer.created_at),
        update_time=_timestamp(transfer.updated_at),
        history=[
            transfer_pb2.TransferEvent(
                kind=transfer_pb2.TransferEvent.Kind.Value("KIND_" + event.kind.value),
                amount_minor=event.amount_minor,
                related_transfer_id=event.related_transfer_id,
                request_id=event.request_id,
                time=_timestamp(event.at),
            )
            for event in transfer.history
        ],
    )
    if transfer.expires_at is not None:
        message.expire_time.CopyFrom(_timestamp(transfer.expires_at))
    return message
