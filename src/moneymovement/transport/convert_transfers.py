"""MoneyMovementService requests to commands, and transfers to messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from moneymovement.domain import ids
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.funds import AT_ONCE, MAX_AVAILABILITY_DELAY, Availability
from moneymovement.domain.queries import TransferQuery
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import MAX_HOLD, Transfer, TransferSpec
from moneymovement.domain.validation import MAX_BATCH_TRANSFERS, MAX_DESCRIPTION_LENGTH, Checker
from moneymovement.transport.convert_common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    duration,
    enum_names,
    enum_value,
    optional_time,
    timestamp,
)
from moneymovement.v1 import money_movement_service_pb2 as pb
from moneymovement.v1 import transfer_pb2

_TRANSFER_STATE = enum_names(transfer_pb2.Transfer.State, "STATE_")


class _TransferRead(Protocol):
    transfer_id: str


def _spec(
    check: Checker, item: pb.CreateTransferRequest | pb.CreateTransfersRequest.Item
) -> TransferSpec:
    """One transfer's fields, from CreateTransfer or an item of CreateTransfers."""
    debit = check.resource_id("debit_account_id", item.debit_account_id, ids.ACCOUNT)
    credit = check.resource_id("credit_account_id", item.credit_account_id, ids.ACCOUNT)
    if debit and debit == credit:
        check.fail(
            "credit_account_id", FieldReason.MUST_DIFFER, "must differ from the debit account"
        )
    amount = check.amount("amount_minor", item.amount_minor)
    currency = check.currency("currency_code", item.currency_code)
    description = check.text("description", item.description, MAX_DESCRIPTION_LENGTH)
    metadata = check.metadata("metadata", item.metadata)
    timeout_s = None
    timeout = duration(check, item, "hold_timeout")  # a malformed Duration is refused
    if timeout is not None:  # in seconds, to the nanosecond (a timedelta keeps microseconds)
        timeout_s = item.hold_timeout.seconds + item.hold_timeout.nanos / 1e9
        if not 0 < timeout_s <= MAX_HOLD.total_seconds():
            check.fail("hold_timeout", FieldReason.OUT_OF_RANGE, "more than 0 s, at most 30 days")
            timeout_s = None
    expires_at = optional_time(check, item, "hold_expire_time")
    if timeout_s is not None and expires_at is not None:
        check.fail(
            "hold_expire_time", FieldReason.MUST_DIFFER, "give hold_timeout or this, not both"
        )
    if not item.pending and (timeout_s is not None or expires_at is not None):
        check.fail("pending", FieldReason.REQUIRED, "hold options need pending: true")
    availability = asked_availability(check, item)
    return TransferSpec(
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount,
        currency_code=currency,
        description=description,
        metadata=metadata,
        pending=item.pending,
        hold_timeout_s=timeout_s,
        hold_expires_at=expires_at,
        availability=availability,
    )


def asked_availability(
    check: Checker, item: pb.CreateTransferRequest | pb.CreateTransfersRequest.Item
) -> Availability:
    """A transfer's available_time or availability_delay (at most one, at most 90 days
    ahead; a time already past means available at once, and is kept as asked)."""
    at = optional_time(check, item, "available_time")
    delay = None
    if item.HasField("availability_delay"):
        delay = duration(check, item, "availability_delay")
        if delay is not None and not timedelta(0) <= delay <= MAX_AVAILABILITY_DELAY:
            check.fail("availability_delay", FieldReason.OUT_OF_RANGE, "0 s to 90 days")
            delay = None
    if at is not None and delay is not None:
        check.fail(
            "availability_delay", FieldReason.MUST_DIFFER, "give available_time or this, not both"
        )
        return AT_ONCE
    if at is not None and at > datetime.now(UTC) + MAX_AVAILABILITY_DELAY:
        check.fail("available_time", FieldReason.OUT_OF_RANGE, "at most 90 days ahead")
        return AT_ONCE
    if at is None and delay is None:
        return AT_ONCE
    return Availability(at, delay)


def transfer_spec(request: pb.CreateTransferRequest) -> tuple[str, TransferSpec]:
    """CreateTransfer's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    spec = _spec(check, request)
    check.raise_if_any()
    return request_id, spec


def batch_specs(request: pb.CreateTransfersRequest) -> tuple[str, list[TransferSpec]]:
    """CreateTransfers' request id and items; a bad item is named transfers[i].field."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    if not request.transfers:
        check.fail("transfers", FieldReason.REQUIRED, "at least one transfer")
    if len(request.transfers) > MAX_BATCH_TRANSFERS:
        check.fail("transfers", FieldReason.TOO_MANY, f"at most {MAX_BATCH_TRANSFERS}")
        check.raise_if_any()
    specs = [
        _spec(check.nested(f"transfers[{index}]."), item)
        for index, item in enumerate(request.transfers)
    ]
    check.raise_if_any()
    return request_id, specs


def transfer_id(request: _TransferRead) -> str:
    """The required transfer id of a request."""
    check = Checker()
    value = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    check.raise_if_any()
    return value


def post_request(request: pb.PostTransferRequest) -> tuple[str, str, int]:
    """PostTransfer's request id, hold id and amount (0: all)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    hold = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    amount = check.amount("amount_minor", request.amount_minor, allow_zero=True)
    check.raise_if_any()
    return request_id, hold, amount


def void_request(request: pb.VoidTransferRequest) -> tuple[str, str]:
    """VoidTransfer's request id and hold id."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    hold = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    check.raise_if_any()
    return request_id, hold


def reversal_request(request: pb.ReverseTransferRequest) -> tuple[str, ReversalRequest]:
    """ReverseTransfer's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    original = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    amount = check.amount("amount_minor", request.amount_minor, allow_zero=True)
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    return request_id, ReversalRequest(original, amount, description, metadata)


def transfer_query(request: pb.ListTransfersRequest) -> tuple[TransferQuery, int]:
    """ListTransfers' filters and page size."""
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    account = None
    if request.account_id:
        account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    state = enum_value(check, "state", _TRANSFER_STATE, request.state)
    metadata = check.metadata("metadata", request.metadata)
    batch = check.resource_id("batch_id", request.batch_id, ids.BATCH) if request.batch_id else None
    trace = request.trace_id or None
    if trace is not None and (len(trace) != 32 or trace.strip("0123456789abcdef")):
        check.fail("trace_id", FieldReason.INVALID_FORMAT, "32 lowercase hex characters")
    start = optional_time(check, request, "start_time")
    end = optional_time(check, request, "end_time")
    if start is not None and end is not None and end <= start:
        check.fail("end_time", FieldReason.OUT_OF_RANGE, "must be after start_time")
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
        create_time=timestamp(transfer.created_at),
        update_time=timestamp(transfer.updated_at),
        history=[
            transfer_pb2.TransferEvent(
                kind=transfer_pb2.TransferEvent.Kind.Value("KIND_" + event.kind.value),
                amount_minor=event.amount_minor,
                related_transfer_id=event.related_transfer_id,
                request_id=event.request_id,
                time=timestamp(event.at),
            )
            for event in transfer.history
        ],
    )
    if transfer.expires_at is not None:
        message.expire_time.CopyFrom(timestamp(transfer.expires_at))
    if transfer.availability.at is not None:
        message.available_time.CopyFrom(timestamp(transfer.availability.at))
    if transfer.availability.delay is not None:
        message.availability_delay.FromTimedelta(transfer.availability.delay)
    return message
