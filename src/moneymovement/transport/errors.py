"""The one error table: every reason, the domain's and the edge's, to a gRPC status code
with rich details.

Every failure leaves the server as a canonical code plus a `google.rpc.Status` in the
`grpc-status-details-bin` trailer, carrying `ErrorInfo(reason, domain, metadata)` and,
for bad input, `BadRequest` with one violation per field; a call refused by a limit also
carries `RetryInfo` with the delay to wait. Nothing internal is included.

The reasons of the use cases are the domain's (`Reason`); those only the edge gives, for a
call refused before it reached a use case, are here (`EdgeReason`). Together they are the
proto's ErrorReason, each value once (tests/unit/test_contract.py holds both to it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from moneymovement.domain.errors import DomainError, InvalidInput, Reason

ERROR_DOMAIN = "moneymovement"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class EdgeReason(enum.StrEnum):
    """The reasons only the edge gives: authentication and the limits, checked before any
    use case runs (ErrorReason in the proto, docs/errors.md)."""

    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_INVALID = "TOKEN_INVALID"
    OVERLOADED = "OVERLOADED"
    RATE_LIMITED = "RATE_LIMITED"
    ADMIN_DISABLED = "ADMIN_DISABLED"
    ADMIN_TOKEN_REQUIRED = "ADMIN_TOKEN_REQUIRED"


class EdgeError(Exception):
    """A call refused at the edge, before any use case: nothing was done."""

    def __init__(
        self, reason: EdgeReason, message: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class Throttled(EdgeError):
    """Refused by a limit before any work began: nothing changed, and the same call may
    succeed after `retry_after_s` (sent to the caller as google.rpc.RetryInfo)."""

    def __init__(
        self, reason: EdgeReason, message: str, retry_after_s: float, metadata: Mapping[str, str]
    ) -> None:
        super().__init__(reason, message, metadata)
        self.retry_after_s = retry_after_s


_C = grpc.StatusCode
CODE_OF_REASON: dict[Reason | EdgeReason, grpc.StatusCode] = {
    Reason.INVALID_ARGUMENT: _C.INVALID_ARGUMENT,
    Reason.CURSOR_EXPIRED: _C.OUT_OF_RANGE,
    Reason.SHUTTING_DOWN: _C.UNAVAILABLE,
    EdgeReason.TOKEN_MISSING: _C.UNAUTHENTICATED,
    EdgeReason.TOKEN_INVALID: _C.UNAUTHENTICATED,
    Reason.ACCOUNT_NOT_FOUND: _C.NOT_FOUND,
    Reason.TRANSFER_NOT_FOUND: _C.NOT_FOUND,
    Reason.REQUEST_ID_REUSED: _C.ALREADY_EXISTS,
    Reason.EXTERNAL_ID_TAKEN: _C.ALREADY_EXISTS,
    Reason.INSUFFICIENT_FUNDS: _C.FAILED_PRECONDITION,
    Reason.ACCOUNT_FROZEN: _C.FAILED_PRECONDITION,
    Reason.ACCOUNT_CLOSED: _C.FAILED_PRECONDITION,
    Reason.CURRENCY_MISMATCH: _C.FAILED_PRECONDITION,
    Reason.ACCOUNT_NOT_EMPTY: _C.FAILED_PRECONDITION,
    Reason.VERSION_MISMATCH: _C.FAILED_PRECONDITION,
    Reason.OVERDRAFT_LIMIT_IN_USE: _C.FAILED_PRECONDITION,
    Reason.BALANCE_OVERFLOW: _C.FAILED_PRECONDITION,
    Reason.TRANSFER_NOT_PENDING: _C.FAILED_PRECONDITION,
    Reason.HOLD_EXPIRED: _C.FAILED_PRECONDITION,
    Reason.POST_EXCEEDS_HOLD: _C.FAILED_PRECONDITION,
    Reason.TRANSFER_NOT_POSTED: _C.FAILED_PRECONDITION,
    Reason.REVERSAL_EXCEEDS_ORIGINAL: _C.FAILED_PRECONDITION,
    Reason.EARLY_RELEASE_NOT_ALLOWED: _C.FAILED_PRECONDITION,
    Reason.FUNDS_NOT_FOUND: _C.NOT_FOUND,
    Reason.FUNDS_NOT_SCHEDULED: _C.FAILED_PRECONDITION,
    Reason.RELEASE_EXCEEDS_PENDING: _C.FAILED_PRECONDITION,
    Reason.DEBIT_LIMIT_EXCEEDED: _C.FAILED_PRECONDITION,
    Reason.BALANCE_LIMIT_EXCEEDED: _C.FAILED_PRECONDITION,
    Reason.MONITOR_NOT_FOUND: _C.NOT_FOUND,
    Reason.MONITOR_LIMIT_REACHED: _C.FAILED_PRECONDITION,
    Reason.AVAILABILITY_NOT_APPLICABLE: _C.FAILED_PRECONDITION,
    Reason.EXTERNAL_ACCOUNT_NOT_FOUND: _C.NOT_FOUND,
    Reason.EXTERNAL_ACCOUNT_DISABLED: _C.FAILED_PRECONDITION,
    Reason.PAYOUT_NOT_FOUND: _C.NOT_FOUND,
    Reason.PAYOUT_NOT_CANCELABLE: _C.FAILED_PRECONDITION,
    Reason.FUNDS_NOT_YET_AVAILABLE: _C.FAILED_PRECONDITION,
    Reason.TRANSFER_OWNED: _C.FAILED_PRECONDITION,
    Reason.INBOUND_TRANSFER_NOT_FOUND: _C.NOT_FOUND,
    Reason.INVALID_PAYOUT_SOURCE: _C.FAILED_PRECONDITION,
    Reason.HOLD_EXTENSION_OUT_OF_RANGE: _C.FAILED_PRECONDITION,
    Reason.ASSET_CODE_TAKEN: _C.ALREADY_EXISTS,
    Reason.ASSET_CODE_RESERVED: _C.ALREADY_EXISTS,
    Reason.ASSET_LIMIT_REACHED: _C.FAILED_PRECONDITION,
    Reason.HOLDER_NOT_FOUND: _C.NOT_FOUND,
    Reason.HOLDER_EXTERNAL_ID_TAKEN: _C.ALREADY_EXISTS,
    Reason.HOLDER_RESTRICTED: _C.FAILED_PRECONDITION,
    Reason.HOLDER_NOT_EMPTY: _C.FAILED_PRECONDITION,
    Reason.HOLDER_CLOSED: _C.FAILED_PRECONDITION,
    Reason.HOLDER_SCOPE_FORBIDS: _C.PERMISSION_DENIED,
    Reason.HOLDER_SCOPE_MISMATCH: _C.PERMISSION_DENIED,
    Reason.RESERVE_ACCOUNT_INELIGIBLE: _C.FAILED_PRECONDITION,
    Reason.RESERVE_DEBT_OUTSTANDING: _C.FAILED_PRECONDITION,
    Reason.RESERVE_TRANSFER_NOT_REVERSIBLE: _C.FAILED_PRECONDITION,
    Reason.REQUEST_IN_PROGRESS: _C.ABORTED,
    Reason.CONCURRENCY_CONFLICT: _C.ABORTED,
    Reason.DEADLINE_EXCEEDED: _C.DEADLINE_EXCEEDED,
    Reason.DATABASE_UNAVAILABLE: _C.UNAVAILABLE,
    Reason.NOT_IMPLEMENTED: _C.UNIMPLEMENTED,
    Reason.INTERNAL: _C.INTERNAL,
    EdgeReason.OVERLOADED: _C.RESOURCE_EXHAUSTED,
    EdgeReason.RATE_LIMITED: _C.RESOURCE_EXHAUSTED,
    EdgeReason.ADMIN_DISABLED: _C.UNIMPLEMENTED,
    EdgeReason.ADMIN_TOKEN_REQUIRED: _C.PERMISSION_DENIED,
    Reason.TENANT_NOT_FOUND: _C.NOT_FOUND,
    Reason.TOKEN_NOT_FOUND: _C.NOT_FOUND,
}

INTERNAL_ERROR = DomainError(Reason.INTERNAL, "internal error; the server logged the details")


def code_of(error: DomainError | EdgeError) -> grpc.StatusCode:
    """The gRPC code of a domain or edge error."""
    return CODE_OF_REASON[error.reason]


def status_of(error: DomainError | EdgeError) -> status_pb2.Status:
    """The google.rpc.Status sent in the trailer for `error`."""
    code = code_of(error)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason.value, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    details = [_pack(info)]
    if isinstance(error, InvalidInput):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description, reason=v.reason.value
                )
                for v in error.violations
            ]
        )
        details.append(_pack(bad_request))
    elif isinstance(error, Throttled):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1_000_000, round(error.retry_after_s * 1e9)))  # at least 1 ms
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )


def _pack(
    message: error_details_pb2.ErrorInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.RetryInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort(
    context: grpc.aio.ServicerContext[object, object], error: DomainError | EdgeError
) -> None:
    """Ends the RPC with `error`'s code, message and details (always raises)."""
    status = status_of(error)
    await context.abort(
        code_of(error),
        error.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )
