"""The one error table: domain reasons to gRPC status codes with rich details.

Every failure leaves the server as a canonical code plus a `google.rpc.Status` in the
`grpc-status-details-bin` trailer, carrying `ErrorInfo(reason, domain, metadata)` and,
for bad input, `BadRequest` with one violation per field; a call refused by a limit also
carries `RetryInfo` with the delay to wait. Nothing internal is included.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from moneymovement.domain.errors import DomainError, InvalidInput, Reason, Throttled

ERROR_DOMAIN = "moneymovement"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_C = grpc.StatusCode
CODE_OF_REASON: dict[Reason, grpc.StatusCode] = {
    Reason.INVALID_ARGUMENT: _C.INVALID_ARGUMENT,
    Reason.TOKEN_MISSING: _C.UNAUTHENTICATED,
    Reason.TOKEN_INVALID: _C.UNAUTHENTICATED,
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
    Reason.REQUEST_IN_PROGRESS: _C.ABORTED,
    Reason.CONCURRENCY_CONFLICT: _C.ABORTED,
    Reason.DEADLINE_EXCEEDED: _C.DEADLINE_EXCEEDED,
    Reason.DATABASE_UNAVAILABLE: _C.UNAVAILABLE,
    Reason.NOT_IMPLEMENTED: _C.UNIMPLEMENTED,
    Reason.INTERNAL: _C.INTERNAL,
    Reason.OVERLOADED: _C.RESOURCE_EXHAUSTED,
    Reason.RATE_LIMITED: _C.RESOURCE_EXHAUSTED,
}

INTERNAL_ERROR = DomainError(Reason.INTERNAL, "internal error; the server logged the details")


def code_of(error: DomainError) -> grpc.StatusCode:
    """The gRPC code of a domain error."""
    return CODE_OF_REASON[error.reason]


def status_of(error: DomainError) -> status_pb2.Status:
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


async def abort(context: grpc.aio.ServicerContext[object, object], error: DomainError) -> None:
    """Ends the RPC with `error`'s code, message and details (always raises)."""
    status = status_of(error)
    await context.abort(
        code_of(error),
        error.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )
