"""PayoutService requests to commands; external accounts, payouts, inbound transfers and
reconciliation results to messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from moneymovement.domain import ids
from moneymovement.domain.commands import CreatePayout
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.payouts import (
    ExternalAccount,
    InboundTransfer,
    Payout,
    PayoutMethod,
    PayoutState,
)
from moneymovement.domain.validation import MAX_DESCRIPTION_LENGTH, Checker
from moneymovement.rails.base import SettlementKind, SettlementLine
from moneymovement.rails.reconcile import Reconciliation
from moneymovement.transport.convert_common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    enum_names,
    enum_value,
    fee_of,
    timestamp,
)
from moneymovement.v1 import payout_pb2
from moneymovement.v1 import payout_service_pb2 as pb

_METHOD = enum_names(payout_pb2.PayoutMethod, "PAYOUT_METHOD_")
_STATE = enum_names(payout_pb2.PayoutState, "PAYOUT_STATE_")
_LINE_KIND = enum_names(payout_pb2.SettlementLineKind, "SETTLEMENT_LINE_KIND_")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{4,34}")
_MAX_ROUTING = 64
_MAX_HOLDER = 200
_MAX_LINES = 10_000


def _when(message: object, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(timestamp(value))


def external_account_message(external: ExternalAccount) -> payout_pb2.ExternalAccount:
    return payout_pb2.ExternalAccount(
        id=external.id,
        rail=external.rail,
        currency_code=external.currency_code,
        routing_reference=external.routing_reference,
        last4=external.last4,
        fingerprint=external.fingerprint,
        holder_name=external.holder_name,
        metadata=dict(external.metadata),
        state=payout_pb2.ExternalAccountState.Value(
            f"EXTERNAL_ACCOUNT_STATE_{external.state.value}"
        ),
        create_time=timestamp(external.created_at),
        update_time=timestamp(external.updated_at),
    )


def payout_message(payout: Payout) -> payout_pb2.Payout:
    message = payout_pb2.Payout(
        id=payout.id,
        request_id=payout.request_id,
        account_id=payout.account_id,
        external_account_id=payout.external_account_id,
        settlement_account_id=payout.settlement_account_id,
        rail=payout.rail,
        amount_minor=payout.amount_minor,
        currency_code=payout.currency_code,
        method=payout_pb2.PayoutMethod.Value(f"PAYOUT_METHOD_{payout.method.value}"),
        description=payout.description,
        metadata=dict(payout.metadata),
        state=payout_pb2.PayoutState.Value(f"PAYOUT_STATE_{payout.state.value}"),
        hold_transfer_id=payout.hold_transfer_id,
        fee_minor=payout.fee_minor,
        fee_account_id=payout.fee_account_id or "",
        fee_transfer_id=payout.fee_transfer_id or "",
        return_transfer_id=payout.return_transfer_id or "",
        failure_reason=payout.failure_reason,
        return_reason=payout.return_reason,
        create_time=timestamp(payout.created_at),
        update_time=timestamp(payout.updated_at),
        submit_time=timestamp(payout.submit_after),
        trace_id=payout.trace_id or "",
    )
    _when(message, "processing_time", payout.processing_at)
    _when(message, "settle_time", payout.settled_at)
    _when(message, "return_time", payout.returned_at)
    return message


def inbound_message(inbound: InboundTransfer) -> payout_pb2.InboundTransfer:
    message = payout_pb2.InboundTransfer(
        id=inbound.id,
        rail=inbound.rail,
        rail_reference=inbound.rail_reference,
        account_id=inbound.account_id,
        settlement_account_id=inbound.settlement_account_id,
        amount_minor=inbound.amount_minor,
        currency_code=inbound.currency_code,
        description=inbound.description,
        state=payout_pb2.InboundTransferState.Value(
            f"INBOUND_TRANSFER_STATE_{inbound.state.value}"
        ),
        transfer_id=inbound.transfer_id,
        return_transfer_id=inbound.return_transfer_id or "",
        return_reason=inbound.return_reason,
        create_time=timestamp(inbound.created_at),
        update_time=timestamp(inbound.updated_at),
    )
    _when(message, "return_time", inbound.returned_at)
    return message


def external_account_request(
    request: pb.CreateExternalAccountRequest, rails: Sequence[str]
) -> tuple[str, dict[str, object]]:
    """CreateExternalAccount's request id and fields (the account number checked, to be
    kept only as last4 and fingerprint)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    if request.rail not in rails:
        check.fail("rail", FieldReason.INVALID_FORMAT, f"one of: {', '.join(rails)}")
    currency = check.currency("currency_code", request.currency_code)
    routing = check.text("routing_reference", request.routing_reference.strip(), _MAX_ROUTING)
    if not routing:
        check.fail("routing_reference", FieldReason.REQUIRED, "the bank's routing reference")
    if not _ACCOUNT_NUMBER.fullmatch(request.account_number):
        # Never echo the number back: it is the one thing this service must not keep.
        check.fail("account_number", FieldReason.INVALID_FORMAT, "4 to 34 digits")
    holder = check.text("holder_name", request.holder_name, _MAX_HOLDER)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    return request_id, {
        "rail": request.rail,
        "currency_code": currency,
        "routing_reference": routing,
        "account_number": request.account_number,
        "holder_name": holder,
        "metadata": dict(metadata),
    }


def payout_request(request: pb.CreatePayoutRequest) -> tuple[str, CreatePayout]:
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    external = check.resource_id(
        "external_account_id", request.external_account_id, ids.EXTERNAL_ACCOUNT
    )
    amount = check.amount("amount_minor", request.amount_minor)
    currency = check.currency("currency_code", request.currency_code)
    method = enum_value(check, "method", _METHOD, request.method)
    if request.method == 0:
        check.fail("method", FieldReason.REQUIRED, "STANDARD or INSTANT")
    fee, fee_account = fee_of(check, request.fee_minor, request.fee_account_id, account)
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    assert method is not None
    return request_id, CreatePayout(
        account_id=account,
        external_account_id=external,
        amount_minor=amount,
        currency_code=currency,
        payout_method=PayoutMethod(method),
        description=description,
        metadata=metadata,
        fee_minor=fee,
        fee_account_id=fee_account,
    )


def payout_listing(
    request: pb.ListPayoutsRequest,
) -> tuple[str | None, PayoutState | None, str | None, int]:
    check = Checker()
    account = (
        check.resource_id("account_id", request.account_id, ids.ACCOUNT)
        if request.account_id
        else None
    )
    state = enum_value(check, "state", _STATE, request.state) if request.state else None
    external = (
        check.resource_id("external_account_id", request.external_account_id, ids.EXTERNAL_ACCOUNT)
        if request.external_account_id
        else None
    )
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    check.raise_if_any()
    return account, None if state is None else PayoutState(state), external, size


def page_size(request: pb.ListExternalAccountsRequest | pb.ListInboundTransfersRequest) -> int:
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    if isinstance(request, pb.ListInboundTransfersRequest) and request.account_id:
        check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    check.raise_if_any()
    return size


def reconcile_request(
    request: pb.ReconcileRequest, rails: Sequence[str], tenant_id: str
) -> tuple[str, list[SettlementLine]]:
    check = Checker()
    if request.rail not in rails:
        check.fail("rail", FieldReason.INVALID_FORMAT, f"one of: {', '.join(rails)}")
    if len(request.lines) > _MAX_LINES:
        check.fail("lines", FieldReason.TOO_MANY, f"at most {_MAX_LINES}; use the CLI for more")
    lines = []
    for index, line in enumerate(request.lines):
        at = f"lines[{index}]"
        kind = enum_value(check, f"{at}.kind", _LINE_KIND, line.kind)
        if line.kind == 0:
            check.fail(f"{at}.kind", FieldReason.REQUIRED, "PAYOUT or INBOUND")
        if not line.reference:
            check.fail(f"{at}.reference", FieldReason.REQUIRED, "the payout id or rail reference")
        check.currency(f"{at}.currency_code", line.currency_code)
        if kind is not None:
            lines.append(
                SettlementLine(
                    SettlementKind(kind), tenant_id, line.reference[:200], line.amount_minor,
                    line.currency_code, line.state[:32],
                )
            )  # fmt: skip
    check.raise_if_any()
    return request.rail, lines


def reconcile_response(result: Reconciliation) -> pb.ReconcileResponse:
    breaks = []
    for found in result.breaks:
        breaks.append(
            payout_pb2.ReconciliationBreak(
                kind=payout_pb2.ReconciliationBreakKind.Value(
                    f"RECONCILIATION_BREAK_KIND_{found.kind.value}"
                ),
                line_kind=payout_pb2.SettlementLineKind.Value(
                    f"SETTLEMENT_LINE_KIND_{found.settlement_kind.value}"
                ),
                reference=found.reference,
                ledger_state=found.ledger.state if found.ledger else "",
                ledger_amount_minor=found.ledger.amount_minor if found.ledger else 0,
                report_state=found.report.state if found.report else "",
                report_amount_minor=found.report.amount_minor if found.report else 0,
                detail=found.detail,
            )
        )
    return pb.ReconcileResponse(matched=result.matched, breaks=breaks)
