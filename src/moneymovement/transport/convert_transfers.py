"""MoneyMovementService requests to commands, and transfers to messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from moneymovement.domain import ids
from moneymovement.domain.commands import BatchItem, CaptureHold, ExtendHold, VoidHold
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.funds import AT_ONCE, MAX_AVAILABILITY_DELAY, Availability
from moneymovement.domain.holds import MAX_OVER_CAPTURE_BPS
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
    named,
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
    currency = check.currency("currency_code", item.currency_code, assets=True)
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
    over_capture = item.over_capture_tolerance_bps
    if not 0 <= over_capture <= MAX_OVER_CAPTURE_BPS:
        check.fail(
            "over_capture_tolerance_bps",
            FieldReason.OUT_OF_RANGE,
            f"0 to {MAX_OVER_CAPTURE_BPS} basis points",
        )
        over_capture = 0
    if not item.pending and (timeout_s is not None or expires_at is not None or over_capture):
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
        over_capture_bps=over_capture,
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


def batch_specs(request: pb.CreateTransfersRequest) -> tuple[str, list[BatchItem], bool]:
    """CreateTransfers' request id and items, and whether they came as `operations`; a
    bad item is named transfers[i].field or operations[i].<operation>.field."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    operations = bool(request.operations)
    field = "operations" if operations else "transfers"
    items = request.operations if operations else request.transfers
    if request.transfers and request.operations:
        check.fail("operations", FieldReason.MUST_DIFFER, "give transfers or operations, not both")
    if not items:
        check.fail("transfers", FieldReason.REQUIRED, "at least one transfer or operation")
    if len(items) > MAX_BATCH_TRANSFERS:
        check.fail(field, FieldReason.TOO_MANY, f"at most {MAX_BATCH_TRANSFERS}")
        check.raise_if_any()
    specs: list[BatchItem] = []
    for index, item in enumerate(request.transfers):
        specs.append(_spec(check.nested(f"transfers[{index}]."), item))
    for index, operation in enumerate(request.operations):
        specs.append(_operation(check.nested(f"operations[{index}]."), operation))
    check.raise_if_any()
    return request_id, specs, operations


def _operation(check: Checker, operation: pb.CreateTransfersRequest.Operation) -> BatchItem:
    """One operation of a batch: a new transfer, a capture or a void of a hold, a reversal."""
    kind = operation.WhichOneof("operation")
    if kind == "capture_hold":
        return CaptureHold(*_capture(check.nested("capture_hold."), operation.capture_hold))
    if kind == "void_hold":
        nested = check.nested("void_hold.")
        return VoidHold(
            nested.resource_id("transfer_id", operation.void_hold.transfer_id, ids.TRANSFER)
        )
    if kind == "reverse_transfer":
        return _reversal(check.nested("reverse_transfer."), operation.reverse_transfer)
    if kind is None:
        check.fail(
            "operation",
            FieldReason.REQUIRED,
            "one of transfer, capture_hold, void_hold, reverse_transfer",
        )
    return _spec(check.nested("transfer."), operation.transfer)


def transfer_id(request: _TransferRead) -> str:
    """The required transfer id of a request."""
    check = Checker()
    value = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    check.raise_if_any()
    return value


def post_request(request: pb.PostTransferRequest) -> tuple[str, str, int, bool]:
    """PostTransfer's request id, hold id, amount (0: all that is held) and whether the
    capture is final (unset: it is)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    hold, amount, final = _capture(check, request)
    check.raise_if_any()
    return request_id, hold, amount, final


def _capture(
    check: Checker, capture: pb.PostTransferRequest | pb.CreateTransfersRequest.CaptureHold
) -> tuple[str, int, bool]:
    """A capture's hold id, amount (0: all that is held) and whether it is final (unset:
    it is), alone (PostTransfer) or as a batch operation."""
    hold = check.resource_id("transfer_id", capture.transfer_id, ids.TRANSFER)
    amount = check.amount("amount_minor", capture.amount_minor, allow_zero=True)
    return hold, amount, not capture.HasField("final_capture") or capture.final_capture


def increment_request(request: pb.IncrementHoldRequest) -> tuple[str, str, int]:
    """IncrementHold's request id, hold id and amount."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    hold = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    amount = check.amount("amount_minor", request.amount_minor)
    check.raise_if_any()
    return request_id, hold, amount


def extend_request(request: pb.ExtendHoldRequest) -> tuple[str, ExtendHold]:
    """ExtendHold's request id and command: a new expiry time or a duration (> 0, at
    most 30 days) to add to the current one."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    hold = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    expires_at = optional_time(check, request, "expire_time")
    extend_by = duration(check, request, "extend_by")
    if extend_by is not None and not timedelta(0) < extend_by <= MAX_HOLD:
        check.fail("extend_by", FieldReason.OUT_OF_RANGE, "more than 0 s, at most 30 days")
    if expires_at is not None and extend_by is not None:
        check.fail("extend_by", FieldReason.MUST_DIFFER, "give expire_time or this, not both")
    if expires_at is None and extend_by is None and not check.violations:
        check.fail("expire_time", FieldReason.REQUIRED, "give expire_time or extend_by")
    check.raise_if_any()
    return request_id, ExtendHold(hold, expires_at, extend_by)


def void_request(request: pb.VoidTransferRequest) -> tuple[str, str]:
    """VoidTransfer's request id and hold id."""
    return named(request, "transfer_id", ids.TRANSFER, with_request_id=True)


def reversal_request(request: pb.ReverseTransferRequest) -> tuple[str, ReversalRequest]:
    """ReverseTransfer's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    reversal = _reversal(check, request)
    check.raise_if_any()
    return request_id, reversal


def _reversal(
    check: Checker,
    request: pb.ReverseTransferRequest | pb.CreateTransfersRequest.ReverseTransfer,
) -> ReversalRequest:
    """A reversal's fields, alone or as a batch's operation (the same names)."""
    original = check.resource_id("transfer_id", request.transfer_id, ids.TRANSFER)
    amount = check.amount("amount_minor", request.amount_minor, allow_zero=True)
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    return ReversalRequest(original, amount, description, metadata)


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
    keys = check.metadata_keys("metadata_keys", request.metadata_keys)
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
        metadata_keys=keys,
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
                expire_time=None if event.expires_at is None else timestamp(event.expires_at),
            )
            for event in transfer.history
        ],
        over_capture_tolerance_bps=transfer.over_capture_bps,
    )
    if transfer.expires_at is not None:
        message.expire_time.CopyFrom(timestamp(transfer.expires_at))
    if transfer.availability.at is not None:
        message.available_time.CopyFrom(timestamp(transfer.availability.at))
    if transfer.availability.delay is not None:
        message.availability_delay.FromTimedelta(transfer.availability.delay)
    return message
