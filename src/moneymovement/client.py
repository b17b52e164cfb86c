"""A typed Python client for moneymovement: every RPC of its six services.

    async with MoneyMovementClient("127.0.0.1:50051", token) as mm:
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        transfer = await mm.create_transfer(debit, wallet.id, 1_000, "USD")
        async for account in mm.iter_accounts(holder_id="alice"):
            ...
        async for response in mm.watch_events(after_cursor=saved_cursor):
            handle(response.events)
            save(response.cursor)

Each RPC has the method of its name in snake_case (CreateAccount: `create_account`,
BatchGetBalances: `batch_get_balances`), returning the generated message types
(`moneymovement.v1`; amounts are Python ints, exact over the whole int64 range). A List
RPC returns one page (the response, with its next page token or cursor); its `iter_...`
twin yields every item of every page.

It sets a deadline on every call; gives every mutation a request_id (generated unless
passed) and reuses it on its own retries, so a retry never moves money twice; retries
only what is safe to retry (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED, and
RESOURCE_EXHAUSTED from the server's limits, after their RetryInfo delay) with jittered
backoff; and raises typed exceptions (below) that carry the gRPC code, the stable
`reason` of the error (google.rpc.ErrorInfo), its metadata and, for bad input, the
fields at fault.

    MoneyMovementError           every failure: code, reason, message, metadata
      InvalidRequest             INVALID_ARGUMENT: fix the request (field_violations)
      Unauthenticated            UNAUTHENTICATED: TOKEN_MISSING, TOKEN_INVALID
      PermissionDenied           PERMISSION_DENIED: ADMIN_TOKEN_REQUIRED (AdminClient);
                                 HOLDER_SCOPE_FORBIDS, HOLDER_SCOPE_MISMATCH (acting for
                                 a holder)
      Rejected                   a business outcome, recorded with the request_id
        NotFound                 ACCOUNT_NOT_FOUND, TRANSFER_NOT_FOUND, PAYOUT_NOT_FOUND, ...
        AlreadyExists            ALREADY_EXISTS
          RequestIdReused        REQUEST_ID_REUSED: the id was used for another request
          ExternalIdTaken        EXTERNAL_ID_TAKEN: another account has that external_id
        FailedPrecondition       FAILED_PRECONDITION (CURRENCY_MISMATCH, PAYOUT_NOT_CANCELABLE, ...)
          InsufficientFunds      INSUFFICIENT_FUNDS (available_minor)
          VersionMismatch        VERSION_MISMATCH (current_version)
          AccountInactive        ACCOUNT_FROZEN, ACCOUNT_CLOSED
          WrongTransferState     TRANSFER_NOT_PENDING, TRANSFER_NOT_POSTED, HOLD_EXPIRED
      CursorExpired              OUT_OF_RANGE: CURSOR_EXPIRED (oldest_cursor)
      Retryable                  transient, after the client's own retries ran out
        Unavailable              UNAVAILABLE: DATABASE_UNAVAILABLE, SHUTTING_DOWN, no server
        Aborted                  ABORTED: CONCURRENCY_CONFLICT, REQUEST_IN_PROGRESS
        DeadlineExceeded         DEADLINE_EXCEEDED
        Throttled                RESOURCE_EXHAUSTED with RetryInfo: OVERLOADED, RATE_LIMITED
      MessageTooLarge            RESOURCE_EXHAUSTED without RetryInfo: over a size limit
      ServerError                anything else (INTERNAL, UNIMPLEMENTED, ...)

`RetriesExhausted` is the older name of `Retryable`.

`watch_events` follows the tenant's event stream and reopens it, after the last cursor
it handed to the caller, whenever it breaks (the server stops or restarts, the connection
is lost): a caller that saves the cursor of what it processed, and passes it back after
its own restart, gets every event exactly once, in order.

Over TLS, or mutual TLS, pass `credentials=tls_credentials(...)`.

This module imports only grpc, protobuf, google.rpc (googleapis-common-protos), the
standard library and the generated `moneymovement.v1`, so that it ships alone in the
`moneymovement-client` distribution; a test holds it to that.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import grpc
from google.protobuf import any_pb2, message, wrappers_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from moneymovement.v1 import (
    account_pb2,
    asset_pb2,
    balance_pb2,
    event_pb2,
    funds_pb2,
    holder_pb2,
    payout_pb2,
    transfer_pb2,
)
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import account_service_pb2_grpc as agrpc
from moneymovement.v1 import admin_service_pb2 as adpb
from moneymovement.v1 import admin_service_pb2_grpc as adgrpc
from moneymovement.v1 import asset_service_pb2 as aspb
from moneymovement.v1 import asset_service_pb2_grpc as asgrpc
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import balance_service_pb2_grpc as bgrpc
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import event_service_pb2_grpc as egrpc
from moneymovement.v1 import funds_service_pb2 as fpb
from moneymovement.v1 import funds_service_pb2_grpc as fgrpc
from moneymovement.v1 import holder_service_pb2 as hspb
from moneymovement.v1 import holder_service_pb2_grpc as hsgrpc
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc
from moneymovement.v1 import payout_service_pb2 as ppb
from moneymovement.v1 import payout_service_pb2_grpc as pgrpc

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

R = TypeVar("R")
T = TypeVar("T")
V = TypeVar("V", bound=int)
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
# The event types, by the names the client takes: "TRANSFER_CREATED", ...
EVENT_TYPES = tuple(
    value.name.removeprefix("EVENT_TYPE_")
    for value in event_pb2.EventType.DESCRIPTOR.values
    if value.number != event_pb2.EVENT_TYPE_UNSPECIFIED
)
# A stream's channel retries a server that is down at most this often (gRPC's default
# backoff grows to 120 s: a follower would see a restarted server minutes late).
MAX_RECONNECT_BACKOFF_MS = 2_000
# Where gRPC carries the google.rpc.Status of a failed call (what grpcio-status reads).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The standard health check, called without grpcio-health-checking: its request and
# response each have a single field numbered 1 (the service name, a string; the status,
# an enum), which StringValue and Int32Value encode and decode byte for byte. A test
# checks both against grpc_health's messages.
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
HEALTH_SERVING = 1  # grpc.health.v1.HealthCheckResponse.SERVING
# iter_events asks for pages of this size when given none: a shorter page is the end.
EVENT_PAGE_SIZE = 100


# Errors ----------------------------------------------------------------------------


class MoneyMovementError(Exception):
    """A failed call: its gRPC code, the stable reason (ErrorInfo.reason; empty when the
    failure did not come from the service, such as a connection that failed), the
    message, ErrorInfo's metadata, BadRequest's (field, field reason) pairs, the
    mutation's request_id (None for reads) and the RetryInfo delay, if any."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        field_violations: list[tuple[str, str]] | None = None,
        *,
        request_id: str | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(f"{code.name} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.field_violations = field_violations or []
        self.request_id = request_id
        self.retry_delay_s = retry_delay_s

    @property
    def item_index(self) -> int | None:
        """CreateTransfers: the index of the failing item, when the server named it."""
        return _int_or_none(self.metadata.get("item_index"))


class InvalidRequest(MoneyMovementError):
    """INVALID_ARGUMENT: fix the request; `field_violations` names the fields (paths such
    as `amount_minor` or `transfers[3].amount_minor`) with a field reason (REQUIRED,
    INVALID_FORMAT, OUT_OF_RANGE, TOO_LONG, TOO_MANY, UNKNOWN_CURRENCY, MUST_DIFFER,
    INVALID_PAGE_TOKEN). Nothing changed."""


class Unauthenticated(MoneyMovementError):
    """UNAUTHENTICATED: the token is missing (TOKEN_MISSING), unknown or revoked
    (TOKEN_INVALID)."""


class PermissionDenied(MoneyMovementError):
    """PERMISSION_DENIED: AdminService called with a tenant's token (ADMIN_TOKEN_REQUIRED)."""


class Rejected(MoneyMovementError):
    """A business outcome (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION). Nothing
    changed, and the outcome is recorded with the request_id: the same request returns it
    again; a new attempt needs a new request_id."""


class NotFound(Rejected):
    """NOT_FOUND: ACCOUNT_NOT_FOUND, TRANSFER_NOT_FOUND, FUNDS_NOT_FOUND,
    MONITOR_NOT_FOUND, EXTERNAL_ACCOUNT_NOT_FOUND, PAYOUT_NOT_FOUND or
    INBOUND_TRANSFER_NOT_FOUND (another tenant's ids answer the same). Check the id."""


class AlreadyExists(Rejected):
    """ALREADY_EXISTS: REQUEST_ID_REUSED or EXTERNAL_ID_TAKEN (each has its subclass)."""


class RequestIdReused(AlreadyExists):
    """REQUEST_ID_REUSED: the request_id was used before for a different request (another
    method or other fields). Use a new request_id for a new request."""


class ExternalIdTaken(AlreadyExists):
    """EXTERNAL_ID_TAKEN: another account of the tenant has this external_id. Look that
    account up (list_accounts(external_id=...)) or choose another id."""


class FailedPrecondition(Rejected):
    """FAILED_PRECONDITION: the ledger's state refuses the call. Reasons without a
    subclass of their own: CURRENCY_MISMATCH, ACCOUNT_NOT_EMPTY, OVERDRAFT_LIMIT_IN_USE,
    BALANCE_OVERFLOW, POST_EXCEEDS_HOLD, REVERSAL_EXCEEDS_ORIGINAL, the funds reasons
    (EARLY_RELEASE_NOT_ALLOWED, ...), and the payout ones: EXTERNAL_ACCOUNT_DISABLED,
    PAYOUT_NOT_CANCELABLE (`metadata["state"]`), FUNDS_NOT_YET_AVAILABLE (metadata as
    INSUFFICIENT_FUNDS: wait for the pending funds), INVALID_PAYOUT_SOURCE (a payout
    from a DEBIT-normal account) and TRANSFER_OWNED (a payout's or inbound transfer's
    transfer moves only with it)."""


class InsufficientFunds(FailedPrecondition):
    """INSUFFICIENT_FUNDS: the account cannot pay this much under its overdraft policy.
    Fund it or move less."""

    @property
    def account_id(self) -> str:
        return self.metadata.get("account_id", "")

    @property
    def available_minor(self) -> int | None:
        """What was available, in minor units."""
        return _int_or_none(self.metadata.get("available_minor"))


class VersionMismatch(FailedPrecondition):
    """VERSION_MISMATCH: `expected_version` is not the account's version, or
    `expected_attributes_version` its attributes version. Read the account again and
    decide again."""

    @property
    def current_version(self) -> int | None:
        return _int_or_none(self.metadata.get("current_version"))


class AccountInactive(FailedPrecondition):
    """ACCOUNT_FROZEN (unfreeze it first) or ACCOUNT_CLOSED (final: use another account):
    an account of the call is not ACTIVE."""


class WrongTransferState(FailedPrecondition):
    """TRANSFER_NOT_PENDING, TRANSFER_NOT_POSTED or HOLD_EXPIRED: the transfer is not in the
    state the call needs (`metadata["state"]` says which it is in). Read it."""


class LimitExceeded(FailedPrecondition):
    """A debit limit (DEBIT_LIMIT_EXCEEDED: metadata window, measure, limit, used,
    remaining) or the maximum balance (BALANCE_LIMIT_EXCEEDED) refused the transfer."""


class CursorExpired(MoneyMovementError):
    """OUT_OF_RANGE / CURSOR_EXPIRED: the events after the cursor were pruned (retention).
    `oldest_cursor` is the oldest cursor that still works; what lay between is gone."""

    @property
    def oldest_cursor(self) -> str:
        return self.metadata.get("oldest_cursor", "")


class Retryable(MoneyMovementError):
    """A transient failure, raised once the client's own retries (RetryPolicy) ran out.
    Sending the same request again, with the same request_id, is always safe; the outcome
    of a mutation is unknown until then (it may have committed before a lost reply)."""


RetriesExhausted = Retryable  # its older name


class Unavailable(Retryable):
    """UNAVAILABLE: DATABASE_UNAVAILABLE, SHUTTING_DOWN (a replica stopping), or no reason
    at all: the server cannot be reached, or the TLS handshake failed."""


class Aborted(Retryable):
    """ABORTED: CONCURRENCY_CONFLICT (the server's own retries ran out) or
    REQUEST_IN_PROGRESS (a copy of the same request is still in flight)."""


class DeadlineExceeded(Retryable):
    """DEADLINE_EXCEEDED: the deadline (RetryPolicy.timeout_s, or the server's maximum)
    passed first."""


class Throttled(Retryable):
    """RESOURCE_EXHAUSTED with RetryInfo: OVERLOADED (the server's concurrency limit) or
    RATE_LIMITED (the tenant's rate). Refused before any work; `retry_delay_s` says when
    to come back."""


class MessageTooLarge(MoneyMovementError):
    """RESOURCE_EXHAUSTED without RetryInfo: a message or its metadata is over gRPC's size
    limit. The same call would be refused again: send less (smaller pages, batches)."""


class ServerError(MoneyMovementError):
    """Anything else (INTERNAL, UNIMPLEMENTED, ...)."""


# The classes of the reasons that have their own; every other reason gets its code's.
_BY_REASON: dict[str, type[MoneyMovementError]] = {
    "REQUEST_ID_REUSED": RequestIdReused,
    "EXTERNAL_ID_TAKEN": ExternalIdTaken,
    "INSUFFICIENT_FUNDS": InsufficientFunds,
    "VERSION_MISMATCH": VersionMismatch,
    "ACCOUNT_FROZEN": AccountInactive,
    "ACCOUNT_CLOSED": AccountInactive,
    "TRANSFER_NOT_PENDING": WrongTransferState,
    "TRANSFER_NOT_POSTED": WrongTransferState,
    "HOLD_EXPIRED": WrongTransferState,
    "DEBIT_LIMIT_EXCEEDED": LimitExceeded,
    "BALANCE_LIMIT_EXCEEDED": LimitExceeded,
}
_BY_CODE: dict[grpc.StatusCode, type[MoneyMovementError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.OUT_OF_RANGE: CursorExpired,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_type(
    code: grpc.StatusCode, reason: str, retry_delay_s: float | None = None
) -> type[MoneyMovementError]:
    """The exception class for a failure's code, reason and RetryInfo delay. A reason's
    own class is used only under its code's class, so an unexpected pairing still lands
    in the family of the code."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Throttled if retry_delay_s is not None else MessageTooLarge
    general = _BY_CODE.get(code, ServerError)
    specific = _BY_REASON.get(reason)
    return specific if specific is not None and issubclass(specific, general) else general


def _status_details(error: grpc.aio.AioRpcError) -> list[any_pb2.Any]:
    """The details of the google.rpc.Status in a failed call's trailers."""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return list(status_pb2.Status.FromString(value).details)
            except message.DecodeError:
                return []  # not ours to fail on: the code and message remain
    return []


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    """The server's google.rpc.RetryInfo delay of a failed call, if it sent one."""
    for detail in _status_details(error):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def error_of(error: grpc.aio.AioRpcError, request_id: str | None = None) -> MoneyMovementError:
    """The typed exception for a failed call, with ErrorInfo, BadRequest and RetryInfo
    decoded."""
    reason, metadata, violations = "", {}, []
    for detail in _status_details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.reason) for v in bad.field_violations]
    delay_s = retry_delay_s(error)
    kind = error_type(error.code(), reason, delay_s)
    return kind(
        error.code(), reason, error.details() or "", metadata, violations,
        request_id=request_id, retry_delay_s=delay_s,
    )  # fmt: skip


def _int_or_none(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


# Connecting ------------------------------------------------------------------------


def tls_credentials(
    root_cert_file: str | Path | None = None,
    client_cert_file: str | Path | None = None,
    client_key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Channel credentials for a server with TLS.

    Args:
        root_cert_file: PEM CA certificates to trust (None: the system's roots).
        client_cert_file: PEM client certificate chain, for a server that requires
            client certificates (mutual TLS); with `client_key_file`.
        client_key_file: PEM private key of the client certificate.
    """
    if (client_cert_file is None) != (client_key_file is None):
        raise ValueError("client_cert_file and client_key_file go together")

    def read(path: str | Path | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return grpc.ssl_channel_credentials(
        root_certificates=read(root_cert_file),
        private_key=read(client_key_file),
        certificate_chain=read(client_cert_file),
    )


async def wait_until_serving(
    target: str,
    timeout_s: float = 60.0,
    service: str = "",
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Waits until the server at `target` answers SERVING to a health check (over TLS
    with `credentials`).

    Raises:
        TimeoutError: it did not within `timeout_s`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    request = wrappers_pb2.StringValue(value=service)  # a HealthCheckRequest
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        check = channel.unary_unary(
            HEALTH_CHECK_METHOD,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.Int32Value.FromString,  # HealthCheckResponse
        )
        while loop.time() < deadline:
            try:
                reply = await check(request, timeout=1)
                if reply.value == HEALTH_SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass  # not listening yet, or restarting
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{target} did not become SERVING within {timeout_s} s")


# Building requests -----------------------------------------------------------------


def _enum(enum: _EnumTypeWrapper[V], prefix: str, name: str) -> V:
    """The value of an enum by its short name ("CREDIT") or full name
    ("NORMAL_BALANCE_CREDIT"), any case; "" is UNSPECIFIED (the server's default).

    Raises:
        ValueError: an unknown name.
    """
    short = name.upper().removeprefix(prefix)
    try:
        return enum.Value(prefix + (short or "UNSPECIFIED"))
    except ValueError:
        known = ", ".join(v.name.removeprefix(prefix) for v in enum.DESCRIPTOR.values if v.number)
        raise ValueError(f"unknown {enum.DESCRIPTOR.name} {name!r}; one of {known}") from None


def _timestamp(moment: datetime) -> Timestamp:
    """A Timestamp of an aware datetime (a naive one is taken as UTC, as protobuf does)."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def event_filter(
    types: Iterable[str] = (), account_id: str = "", holder_id: str = ""
) -> epb.EventFilter:
    """An EventFilter; `types` by name, "TRANSFER_CREATED" (or "EVENT_TYPE_TRANSFER_CREATED").

    Raises:
        ValueError: an unknown type name.
    """
    numbers = []
    for name in types:
        short = name.upper().removeprefix("EVENT_TYPE_")
        if short not in EVENT_TYPES:
            raise ValueError(f"unknown event type {name!r}; one of {', '.join(EVENT_TYPES)}")
        numbers.append(event_pb2.EventType.Value("EVENT_TYPE_" + short))
    return epb.EventFilter(types=numbers, account_id=account_id, holder_id=holder_id)


def _event_start(start: str) -> epb.EventStart.ValueType:
    if not start:
        return epb.EVENT_START_UNSPECIFIED
    if start.upper() not in ("NOW", "OLDEST"):
        raise ValueError(f"start is NOW or OLDEST, not {start!r}")
    return epb.EventStart.Value("EVENT_START_" + start.upper())


def _set_hold(
    request: mpb.CreateTransferRequest | mpb.CreateTransfersRequest.Item,
    hold_timeout_s: float | None,
    hold_expire_time: datetime | None,
) -> None:
    if hold_timeout_s is not None:
        request.hold_timeout.FromNanoseconds(round(hold_timeout_s * 1e9))
    if hold_expire_time is not None:
        request.hold_expire_time.CopyFrom(_timestamp(hold_expire_time))


def _set_availability(
    request: mpb.CreateTransferRequest | mpb.CreateTransfersRequest.Item,
    available_time: datetime | None,
    availability_delay_s: float | None,
) -> None:
    if available_time is not None:
        request.available_time.CopyFrom(_timestamp(available_time))
    if availability_delay_s is not None:
        request.availability_delay.FromNanoseconds(round(availability_delay_s * 1e9))


def transfer_item(
    debit_account_id: str,
    credit_account_id: str,
    amount_minor: int,
    currency_code: str,
    *,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
    pending: bool = False,
    hold_timeout_s: float | None = None,
    hold_expire_time: datetime | None = None,
    available_time: datetime | None = None,
    availability_delay_s: float | None = None,
    over_capture_tolerance_bps: int = 0,
) -> mpb.CreateTransfersRequest.Item:
    """One item of `create_transfers`, with the arguments of `create_transfer`."""
    item = mpb.CreateTransfersRequest.Item(
        debit_account_id=debit_account_id, credit_account_id=credit_account_id,
        amount_minor=amount_minor, currency_code=currency_code, description=description,
        metadata=metadata or {}, pending=pending,
        over_capture_tolerance_bps=over_capture_tolerance_bps,
    )  # fmt: skip
    _set_hold(item, hold_timeout_s, hold_expire_time)
    _set_availability(item, available_time, availability_delay_s)
    return item


BatchOperation = mpb.CreateTransfersRequest.Operation


def transfer_operation(
    debit_account_id: str,
    credit_account_id: str,
    amount_minor: int,
    currency_code: str,
    **options: Any,
) -> BatchOperation:
    """An operation of `create_transfers` that makes a new transfer or hold (the
    arguments of `transfer_item`)."""
    item = transfer_item(debit_account_id, credit_account_id, amount_minor, currency_code,
                         **options)  # fmt: skip
    return BatchOperation(transfer=item)


def capture_operation(
    transfer_id: str, amount_minor: int = 0, *, final: bool = True
) -> BatchOperation:
    """An operation of `create_transfers` that captures a hold, as `post_transfer`."""
    capture = mpb.CreateTransfersRequest.CaptureHold(
        transfer_id=transfer_id, amount_minor=amount_minor, final_capture=final
    )
    return BatchOperation(capture_hold=capture)


def void_operation(transfer_id: str) -> BatchOperation:
    """An operation of `create_transfers` that voids a hold, as `void_transfer`."""
    return BatchOperation(void_hold=mpb.CreateTransfersRequest.VoidHold(transfer_id=transfer_id))


def reverse_operation(
    transfer_id: str,
    amount_minor: int = 0,
    *,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
) -> BatchOperation:
    """An operation of `create_transfers` that reverses a posted transfer, as
    `reverse_transfer` (amount 0: all that is left of it). Two of them refund a
    destination charge's seller share and fee together (docs/flows/platform-charges.md)."""
    reversal = mpb.CreateTransfersRequest.ReverseTransfer(
        transfer_id=transfer_id, amount_minor=amount_minor, description=description,
        metadata=metadata or {},
    )  # fmt: skip
    return BatchOperation(reverse_transfer=reversal)


def settlement_line(
    kind: str, reference: str, amount_minor: int, currency_code: str, state: str
) -> payout_pb2.SettlementLine:
    """One line of a rail's settlement report, for `reconcile`: `kind` "PAYOUT" (the
    `reference` is the payout id) or "INBOUND" (the rail's reference of the credit);
    `state` as the report says it ("POSTED", "RETURNED", ...).

    Raises:
        ValueError: an unknown kind.
    """
    return payout_pb2.SettlementLine(
        kind=_enum(payout_pb2.SettlementLineKind, "SETTLEMENT_LINE_KIND_", kind),
        reference=reference, amount_minor=amount_minor, currency_code=currency_code,
        state=state,
    )  # fmt: skip


async def _every(
    fetch: Callable[[str], Awaitable[Any]], items: Callable[[Any], Iterable[T]]
) -> AsyncIterator[T]:
    """Every item of a listing, page after page: `fetch(page_token)` answers a page."""
    token = ""
    while True:
        page = await fetch(token)
        for item in items(page):
            yield item
        token = page.next_page_token
        if not token:
            return


# Retrying --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries: attempts, and the per-attempt deadline."""

    max_attempts: int = 5
    timeout_s: float = 10.0
    first_backoff_s: float = 0.05
    max_backoff_s: float = 2.0


def _retryable(failure: grpc.aio.AioRpcError) -> tuple[bool, float | None]:
    """Whether a failed call may be sent again as it is, and the server's delay if it
    gave one. RESOURCE_EXHAUSTED with RetryInfo is a limit refusing the call before any
    work: safe to retry after the delay. Without it (a message too large), retrying
    cannot help."""
    limited = failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay_s = retry_delay_s(failure) if limited else None
    return failure.code() in RETRYABLE or delay_s is not None, delay_s


def _pause_s(policy: RetryPolicy, attempt: int, delay_s: float | None) -> float:
    """How long to wait after failed attempt number `attempt`: the server's delay plus
    jitter to spread the retries, or else jittered exponential backoff."""
    if delay_s is not None:
        return delay_s + random.uniform(0, delay_s / 2)
    return random.uniform(0, min(policy.max_backoff_s, policy.first_backoff_s * 2 ** (attempt - 1)))


# The client ------------------------------------------------------------------------


@dataclass
class MoneyMovementClient:
    """The services behind one channel, for one tenant's token; with `acting_for` (a
    holder id), every call acts for that holder (the "mm-holder" metadata: it sees and
    moves that holder's money only; docs/platforms.md, "Acting for a holder").

    Every method raises the MoneyMovementError subclasses of the module's docstring; the
    "Raises" of each method lists the ones its RPC is known for. Any call may also raise
    Unauthenticated, Retryable (after the retries) and ServerError.
    """

    target: str
    token: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    credentials: grpc.ChannelCredentials | None = None
    acting_for: str = ""

    def __post_init__(self) -> None:
        options = [("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS)]
        if self.credentials is None:
            self._channel = grpc.aio.insecure_channel(self.target, options)
        else:
            self._channel = grpc.aio.secure_channel(self.target, self.credentials, options)
        self._accounts = agrpc.AccountServiceStub(self._channel)
        self._balances = bgrpc.BalanceServiceStub(self._channel)
        self._movements = mgrpc.MoneyMovementServiceStub(self._channel)
        self._events = egrpc.EventServiceStub(self._channel)
        self._funds = fgrpc.FundsServiceStub(self._channel)
        self._payouts = pgrpc.PayoutServiceStub(self._channel)
        self._assets = asgrpc.AssetServiceStub(self._channel)
        self._holders = hsgrpc.HolderServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {self.token}"),)
        if self.acting_for:
            self._metadata += (("mm-holder", self.acting_for),)
        self.attempts = 0  # calls sent by the last operation, retries included

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[R]], request: Any) -> R:
        request_id = getattr(request, "request_id", None)  # None: a read
        if request_id == "":
            request.request_id = request_id = uuid.uuid4().hex  # one id for every retry
        policy = self.retry
        for attempt in range(1, policy.max_attempts + 1):
            self.attempts = attempt
            try:
                return await method(request, metadata=self._metadata, timeout=policy.timeout_s)
            except grpc.aio.AioRpcError as failure:
                retryable, delay_s = _retryable(failure)
                if not retryable or attempt == policy.max_attempts:
                    raise error_of(failure, request_id) from failure
                await asyncio.sleep(_pause_s(policy, attempt, delay_s))
        raise AssertionError("unreachable")

    # AccountService --------------------------------------------------------------------

    async def create_account(
        self,
        *,
        currency_code: str,
        normal_balance: str,
        overdraft_mode: str = "NONE",
        overdraft_limit_minor: int = 0,
        name: str = "",
        external_id: str = "",
        holder_id: str = "",
        metadata: Mapping[str, str] | None = None,
        funds_policy: funds_pb2.FundsPolicy | None = None,
        negative_balance_reserve_account_id: str = "",
        request_id: str = "",
        open_to_holders: bool = False,
    ) -> account_pb2.Account:
        """Opens an account; `normal_balance` is "CREDIT" or "DEBIT", `overdraft_mode`
        "NONE", "LIMITED" (with `overdraft_limit_minor`) or "UNLIMITED"; `funds_policy`
        (a CREDIT-normal account's): availability, reserves, early release, limits;
        `open_to_holders`: a platform account calls acting for a holder may credit.
        `negative_balance_reserve_account_id`: for a holder's account, the platform
        account that covers a refund it cannot pay (docs/platforms.md).

        Raises:
            InvalidRequest: a bad field.
            ExternalIdTaken: another account has `external_id`.
            RequestIdReused: `request_id` was used for another request.
        """
        request = apb.CreateAccountRequest(
            request_id=request_id, currency_code=currency_code,
            normal_balance=_enum(account_pb2.NormalBalance, "NORMAL_BALANCE_", normal_balance),
            overdraft_mode=_enum(account_pb2.OverdraftMode, "OVERDRAFT_MODE_", overdraft_mode),
            overdraft_limit_minor=overdraft_limit_minor, name=name, external_id=external_id,
            holder_id=holder_id, metadata=metadata or {}, funds_policy=funds_policy,
            open_to_holders=open_to_holders,
            negative_balance_reserve_account_id=negative_balance_reserve_account_id,
        )  # fmt: skip
        return (await self._call(self._accounts.CreateAccount, request)).account

    async def get_account(self, account_id: str) -> account_pb2.Account:
        """Reads one account.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
        """
        request = apb.GetAccountRequest(account_id=account_id)
        return (await self._call(self._accounts.GetAccount, request)).account

    async def list_accounts(
        self,
        *,
        currency_code: str = "",
        state: str = "",
        holder_id: str = "",
        external_id: str = "",
        metadata: Mapping[str, str] | None = None,
        metadata_keys: Iterable[str] = (),
        page_size: int = 0,
        page_token: str = "",
    ) -> apb.ListAccountsResponse:
        """One page of the tenant's accounts, newest first, matching every filter given
        (`state`: "ACTIVE", "FROZEN" or "CLOSED"; `metadata`: pairs the account's metadata
        contains; `metadata_keys`: keys it has, with any value). At most `page_size` (1 to
        500; 0: 50); pass `next_page_token` back as `page_token`, with the same filters,
        for the next page ("" on the last).

        Raises:
            InvalidRequest: a bad filter, or INVALID_PAGE_TOKEN.
        """
        request = apb.ListAccountsRequest(
            page_size=page_size, page_token=page_token, currency_code=currency_code,
            state=_enum(account_pb2.Account.State, "STATE_", state), holder_id=holder_id,
            external_id=external_id, metadata=metadata or {}, metadata_keys=metadata_keys,
        )  # fmt: skip
        return await self._call(self._accounts.ListAccounts, request)

    async def iter_accounts(
        self,
        *,
        currency_code: str = "",
        state: str = "",
        holder_id: str = "",
        external_id: str = "",
        metadata: Mapping[str, str] | None = None,
        metadata_keys: Iterable[str] = (),
        page_size: int = 0,
    ) -> AsyncIterator[account_pb2.Account]:
        """Every account `list_accounts` lists with these filters, page after page."""
        keys = list(metadata_keys)  # the same keys for every page, even from a generator
        async for account in _every(
            lambda token: self.list_accounts(
                currency_code=currency_code,
                state=state,
                holder_id=holder_id,
                external_id=external_id,
                metadata=metadata,
                metadata_keys=keys,
                page_size=page_size,
                page_token=token,
            ),
            lambda page: page.accounts,
        ):
            yield account

    async def update_account(
        self,
        account_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overdraft_mode: str = "",
        overdraft_limit_minor: int | None = None,
        funds_policy: funds_pb2.FundsPolicy | None = None,
        expected_version: int = 0,
        expected_attributes_version: int = 0,
        request_id: str = "",
        negative_balance_reserve_account_id: str | None = None,
    ) -> account_pb2.Account:
        """Changes what is given and leaves the rest: `name` ("" clears it), `metadata`
        (merged; a key with an empty value is removed), `overdraft_mode` ("NONE",
        "LIMITED", "UNLIMITED"), `overdraft_limit_minor`, `funds_policy` (replaced whole;
        an empty FundsPolicy clears it; it applies to later credits),
        `negative_balance_reserve_account_id` (the account's new reserve; "" removes it,
        refused while the account owes it). With
        `expected_attributes_version` (not 0), only if the account's attributes are at
        that version (`Account.attributes_version`: money moving does not raise it); with
        `expected_version` (not 0), only if nothing at all changed since.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            VersionMismatch: the account is at another version (`current_version`).
            AccountInactive: ACCOUNT_CLOSED.
            FailedPrecondition: OVERDRAFT_LIMIT_IN_USE.
        """
        request = apb.UpdateAccountRequest(
            request_id=request_id, account_id=account_id, metadata=metadata or {},
            overdraft_mode=_enum(account_pb2.OverdraftMode, "OVERDRAFT_MODE_", overdraft_mode),
            expected_version=expected_version,
            expected_attributes_version=expected_attributes_version,
        )  # fmt: skip
        if name is not None:
            request.name = name
        if overdraft_limit_minor is not None:
            request.overdraft_limit_minor = overdraft_limit_minor
        if funds_policy is not None:
            request.funds_policy.CopyFrom(funds_policy)
        if negative_balance_reserve_account_id == "":
            request.remove_negative_balance_reserve = True
        elif negative_balance_reserve_account_id is not None:
            request.negative_balance_reserve_account_id = negative_balance_reserve_account_id
        return (await self._call(self._accounts.UpdateAccount, request)).account

    async def freeze_account(
        self,
        account_id: str,
        *,
        scope: str = "",
        reason: str = "",
        expected_version: int = 0,
        expected_attributes_version: int = 0,
        request_id: str = "",
    ) -> account_pb2.Account:
        """Freezes an account: no transfers in or out until unfrozen (`scope` "ALL", the
        default), or none out ("DEBITS"), with a `reason` shown on the account and in
        ACCOUNT_FROZEN refusals. Freezing again with the same scope and reason changes
        nothing.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            VersionMismatch: `expected_version` (not 0) is not the account's.
            AccountInactive: ACCOUNT_CLOSED.
        """
        request = apb.FreezeAccountRequest(
            request_id=request_id, account_id=account_id, expected_version=expected_version,
            expected_attributes_version=expected_attributes_version,
            scope=_enum(account_pb2.FreezeScope, "FREEZE_SCOPE_", scope), reason=reason,
        )  # fmt: skip
        return (await self._call(self._accounts.FreezeAccount, request)).account

    async def unfreeze_account(
        self, account_id: str, *, expected_version: int = 0, request_id: str = ""
    ) -> account_pb2.Account:
        """Makes a frozen account ACTIVE again (an active one stays as it is).

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            VersionMismatch: `expected_version` (not 0) is not the account's.
            AccountInactive: ACCOUNT_CLOSED.
        """
        request = apb.UnfreezeAccountRequest(
            request_id=request_id, account_id=account_id, expected_version=expected_version
        )
        return (await self._call(self._accounts.UnfreezeAccount, request)).account

    async def close_account(
        self, account_id: str, *, expected_version: int = 0, request_id: str = ""
    ) -> account_pb2.Account:
        """Closes an account for good; its posted balances must net to zero, with no hold
        open (a closed one stays as it is).

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            VersionMismatch: `expected_version` (not 0) is not the account's.
            FailedPrecondition: ACCOUNT_NOT_EMPTY.
        """
        request = apb.CloseAccountRequest(
            request_id=request_id, account_id=account_id, expected_version=expected_version
        )
        return (await self._call(self._accounts.CloseAccount, request)).account

    # BalanceService --------------------------------------------------------------------

    async def get_balance(
        self, account_id: str, *, as_of_time: datetime | None = None
    ) -> balance_pb2.Balance:
        """An account's balances now, or as they were at `as_of_time` (not in the future).

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            InvalidRequest: `as_of_time` in the future.
        """
        request = bpb.GetBalanceRequest(account_id=account_id)
        if as_of_time is not None:
            request.as_of_time.CopyFrom(_timestamp(as_of_time))
        return (await self._call(self._balances.GetBalance, request)).balance

    async def batch_get_balances(
        self, account_ids: Iterable[str], *, as_of_time: datetime | None = None
    ) -> list[balance_pb2.Balance]:
        """Up to 100 accounts' balances from one snapshot, in the order asked: now, or as
        they were at `as_of_time` (not in the future).

        Raises:
            NotFound: ACCOUNT_NOT_FOUND, naming the first missing account (every one in
                the error's metadata["missing_account_ids"]); none returned.
            InvalidRequest: `as_of_time` in the future.
        """
        request = bpb.BatchGetBalancesRequest(account_ids=account_ids)
        if as_of_time is not None:
            request.as_of_time.CopyFrom(_timestamp(as_of_time))
        return list((await self._call(self._balances.BatchGetBalances, request)).balances)

    async def get_balances(
        self, *account_ids: str, as_of_time: datetime | None = None
    ) -> list[balance_pb2.Balance]:
        """`batch_get_balances` with the ids as arguments."""
        return await self.batch_get_balances(account_ids, as_of_time=as_of_time)

    async def list_entries(
        self,
        account_id: str,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        order: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> bpb.ListEntriesResponse:
        """One page of an account's statement: its entries, each with the balances after
        it and its transfer's description, metadata and other account
        (`counterparty_account_id`), written in [`start_time`, `end_time`), newest first
        unless `order` is "OLDEST_FIRST". At most `page_size` (1 to 1000; 0: 100); pass
        `next_page_token` back as `page_token`, with the same arguments, for the next page
        ("" on the last).

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            InvalidRequest: a bad argument, or INVALID_PAGE_TOKEN.
        """
        request = bpb.ListEntriesRequest(
            account_id=account_id, order=_enum(bpb.SortOrder, "SORT_ORDER_", order),
            page_size=page_size, page_token=page_token,
        )  # fmt: skip
        if start_time is not None:
            request.start_time.CopyFrom(_timestamp(start_time))
        if end_time is not None:
            request.end_time.CopyFrom(_timestamp(end_time))
        return await self._call(self._balances.ListEntries, request)

    async def iter_entries(
        self,
        account_id: str,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        order: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[balance_pb2.Entry]:
        """Every entry `list_entries` lists with these arguments, page after page."""
        async for entry in _every(
            lambda token: self.list_entries(
                account_id,
                start_time=start_time,
                end_time=end_time,
                order=order,
                page_size=page_size,
                page_token=token,
            ),
            lambda page: page.entries,
        ):
            yield entry

    # MoneyMovementService --------------------------------------------------------------

    async def create_transfer(
        self,
        debit_account_id: str,
        credit_account_id: str,
        amount_minor: int,
        currency_code: str,
        *,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
        pending: bool = False,
        hold_timeout_s: float | None = None,
        hold_expire_time: datetime | None = None,
        available_time: datetime | None = None,
        availability_delay_s: float | None = None,
        over_capture_tolerance_bps: int = 0,
        request_id: str = "",
    ) -> transfer_pb2.Transfer:
        """Moves money at once (POSTED), or places a hold (PENDING) when `pending`, which
        expires after `hold_timeout_s` or at `hold_expire_time` (default 7 days), and
        whose final capture may go `over_capture_tolerance_bps` past its amount. The
        credit is available on the credit account at `available_time` or
        `availability_delay_s` after its posting, instead of by the account's policy.

        Raises:
            InvalidRequest: a bad field.
            NotFound: ACCOUNT_NOT_FOUND.
            InsufficientFunds: the debit account cannot pay it.
            AccountInactive: an account is frozen or closed.
            FailedPrecondition: CURRENCY_MISMATCH, BALANCE_OVERFLOW.
            RequestIdReused: `request_id` was used for another request.
        """
        request = mpb.CreateTransferRequest(
            request_id=request_id, debit_account_id=debit_account_id,
            credit_account_id=credit_account_id, amount_minor=amount_minor,
            currency_code=currency_code, description=description, metadata=metadata or {},
            pending=pending, over_capture_tolerance_bps=over_capture_tolerance_bps,
        )  # fmt: skip
        _set_hold(request, hold_timeout_s, hold_expire_time)
        _set_availability(request, available_time, availability_delay_s)
        return (await self._call(self._movements.CreateTransfer, request)).transfer

    async def post_transfer(
        self,
        transfer_id: str,
        amount_minor: int = 0,
        *,
        final: bool = True,
        request_id: str = "",
    ) -> transfer_pb2.Transfer:
        """Captures a hold (amount 0: all that is still held). A final capture releases
        what it does not take (and may go past the hold within its over-capture
        tolerance); with `final=False` the rest stays held for later captures.

        Raises:
            NotFound: TRANSFER_NOT_FOUND.
            WrongTransferState: TRANSFER_NOT_PENDING, HOLD_EXPIRED.
            FailedPrecondition: POST_EXCEEDS_HOLD (capturable_minor).
            AccountInactive: ACCOUNT_FROZEN.
            InsufficientFunds: an over-capture's excess the debit account cannot pay.
        """
        request = mpb.PostTransferRequest(
            request_id=request_id, transfer_id=transfer_id, amount_minor=amount_minor,
            final_capture=final,
        )  # fmt: skip
        return (await self._call(self._movements.PostTransfer, request)).transfer

    async def increment_hold(
        self, transfer_id: str, amount_minor: int, *, request_id: str = ""
    ) -> transfer_pb2.Transfer:
        """Holds `amount_minor` more (incremental authorisation).

        Raises:
            NotFound: TRANSFER_NOT_FOUND.
            WrongTransferState: TRANSFER_NOT_PENDING, HOLD_EXPIRED.
            InsufficientFunds: the debit account cannot hold it.
            LimitExceeded: DEBIT_LIMIT_EXCEEDED.
            AccountInactive: ACCOUNT_FROZEN, ACCOUNT_CLOSED.
        """
        request = mpb.IncrementHoldRequest(
            request_id=request_id, transfer_id=transfer_id, amount_minor=amount_minor
        )
        return (await self._call(self._movements.IncrementHold, request)).transfer

    async def extend_hold(
        self,
        transfer_id: str,
        *,
        expire_time: datetime | None = None,
        extend_by_s: float | None = None,
        request_id: str = "",
    ) -> transfer_pb2.Transfer:
        """Moves a hold's expiry later: to `expire_time`, or `extend_by_s` past the
        current one; at most 30 days after the hold's creation.

        Raises:
            NotFound: TRANSFER_NOT_FOUND.
            WrongTransferState: TRANSFER_NOT_PENDING, HOLD_EXPIRED.
            FailedPrecondition: HOLD_EXTENSION_OUT_OF_RANGE (max_expire_time).
        """
        request = mpb.ExtendHoldRequest(request_id=request_id, transfer_id=transfer_id)
        if expire_time is not None:
            request.expire_time.CopyFrom(_timestamp(expire_time))
        if extend_by_s is not None:
            request.extend_by.FromNanoseconds(round(extend_by_s * 1e9))
        return (await self._call(self._movements.ExtendHold, request)).transfer

    async def void_transfer(
        self, transfer_id: str, *, request_id: str = ""
    ) -> transfer_pb2.Transfer:
        """Releases a hold (it ends EXPIRED rather than VOIDED if it was past its expiry).

        Raises:
            NotFound: TRANSFER_NOT_FOUND.
            WrongTransferState: TRANSFER_NOT_PENDING.
        """
        request = mpb.VoidTransferRequest(request_id=request_id, transfer_id=transfer_id)
        return (await self._call(self._movements.VoidTransfer, request)).transfer

    async def reverse_transfer(
        self,
        transfer_id: str,
        amount_minor: int = 0,
        *,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> mpb.ReverseTransferResponse:
        """Moves posted money back (amount 0: all that remains) by a new transfer: the
        response's `reversal`, beside the `original` with its reversed amount.

        Raises:
            NotFound: TRANSFER_NOT_FOUND.
            WrongTransferState: TRANSFER_NOT_POSTED.
            FailedPrecondition: REVERSAL_EXCEEDS_ORIGINAL.
            InsufficientFunds: the credited account cannot pay it back.
            AccountInactive: an account is frozen or closed.
        """
        request = mpb.ReverseTransferRequest(
            request_id=request_id, transfer_id=transfer_id, amount_minor=amount_minor,
            description=description, metadata=metadata or {},
        )  # fmt: skip
        return await self._call(self._movements.ReverseTransfer, request)

    async def create_transfers(
        self,
        items: Iterable[mpb.CreateTransfersRequest.Item | BatchOperation],
        *,
        request_id: str = "",
    ) -> list[transfer_pb2.Transfer]:
        """Applies all `items` (up to 1,000) atomically, in order, or none: new transfers
        (`transfer_item`), or operations (`transfer_operation`, `capture_operation`,
        `void_operation`, `reverse_operation`) that may also capture and void existing
        holds and reverse posted transfers. Answers one transfer per item, as the item
        left it (a reversal: the new reversal transfer).

        Raises:
            The errors of create_transfer, post_transfer, void_transfer and
            reverse_transfer, for the first
            failing item: its index is the error's `item_index` (and in the field paths
            of InvalidRequest).
        """
        listed = list(items)
        plain = [item for item in listed if not isinstance(item, BatchOperation)]
        if len(plain) == len(listed):
            request = mpb.CreateTransfersRequest(request_id=request_id, transfers=plain)
        else:
            operations = [
                item if isinstance(item, BatchOperation) else BatchOperation(transfer=item)
                for item in listed
            ]
            request = mpb.CreateTransfersRequest(request_id=request_id, operations=operations)
        return list((await self._call(self._movements.CreateTransfers, request)).transfers)

    async def get_transfer(self, transfer_id: str) -> transfer_pb2.Transfer:
        """Reads one transfer with its history.

        Raises:
            NotFound: TRANSFER_NOT_FOUND.
        """
        request = mpb.GetTransferRequest(transfer_id=transfer_id)
        return (await self._call(self._movements.GetTransfer, request)).transfer

    async def list_transfers(
        self,
        *,
        account_id: str = "",
        state: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        batch_id: str = "",
        trace_id: str = "",
        metadata_keys: Iterable[str] = (),
        page_size: int = 0,
        page_token: str = "",
    ) -> mpb.ListTransfersResponse:
        """One page of the tenant's transfers, newest first, matching every filter given
        (`account_id` on either side; `state`: "PENDING", "POSTED", "VOIDED" or "EXPIRED";
        created in [`start_time`, `end_time`); `metadata` pairs; `batch_id`; `trace_id`,
        the W3C trace id of the creating request; `metadata_keys`, keys the metadata has
        with any value). At most `page_size` (1 to 500; 0: 50);
        pass `next_page_token` back as `page_token`, with the same filters, for the next
        page ("" on the last).

        Raises:
            InvalidRequest: a bad filter, or INVALID_PAGE_TOKEN.
        """
        request = mpb.ListTransfersRequest(
            page_size=page_size, page_token=page_token, account_id=account_id,
            state=_enum(transfer_pb2.Transfer.State, "STATE_", state),
            metadata=metadata or {}, batch_id=batch_id, trace_id=trace_id,
            metadata_keys=metadata_keys,
        )  # fmt: skip
        if start_time is not None:
            request.start_time.CopyFrom(_timestamp(start_time))
        if end_time is not None:
            request.end_time.CopyFrom(_timestamp(end_time))
        return await self._call(self._movements.ListTransfers, request)

    async def iter_transfers(
        self,
        *,
        account_id: str = "",
        state: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        batch_id: str = "",
        trace_id: str = "",
        metadata_keys: Iterable[str] = (),
        page_size: int = 0,
    ) -> AsyncIterator[transfer_pb2.Transfer]:
        """Every transfer `list_transfers` lists with these filters, page after page."""
        keys = list(metadata_keys)  # the same keys for every page, even from a generator
        async for transfer in _every(
            lambda token: self.list_transfers(
                account_id=account_id,
                state=state,
                start_time=start_time,
                end_time=end_time,
                metadata=metadata,
                batch_id=batch_id,
                trace_id=trace_id,
                metadata_keys=keys,
                page_size=page_size,
                page_token=token,
            ),
            lambda page: page.transfers,
        ):
            yield transfer

    # EventService ----------------------------------------------------------------------

    async def list_events(
        self,
        *,
        after_cursor: str = "",
        start: str = "",
        types: Iterable[str] = (),
        account_id: str = "",
        holder_id: str = "",
        page_size: int = 0,
    ) -> epb.ListEventsResponse:
        """One page of the tenant's events after `after_cursor` (or from `start`: "OLDEST",
        the server's default, or "NOW"), oldest first, at most `page_size` (0: 100). Go on
        from its `next_cursor`, also when the page has no events (a filter may skip many);
        a page with fewer than `page_size` events reached the end for now.

        Raises:
            CursorExpired: the cursor is older than the retention.
            InvalidRequest: a malformed cursor or filter.
        """
        request = epb.ListEventsRequest(
            after_cursor=after_cursor, start=_event_start(start),
            filter=event_filter(types, account_id, holder_id), page_size=page_size,
        )  # fmt: skip
        return await self._call(self._events.ListEvents, request)

    async def iter_events(
        self,
        *,
        after_cursor: str = "",
        start: str = "",
        types: Iterable[str] = (),
        account_id: str = "",
        holder_id: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[event_pb2.Event]:
        """Every event `list_events` lists with these arguments, page after page, up to the
        newest committed (it ends there: `watch_events` follows). Resume after the last
        event's `cursor`."""
        size = page_size or EVENT_PAGE_SIZE
        cursor, begin = after_cursor, start
        while True:
            page = await self.list_events(
                after_cursor=cursor, start=begin, types=types, account_id=account_id,
                holder_id=holder_id, page_size=size,
            )  # fmt: skip
            for event in page.events:
                yield event
            if len(page.events) < size:
                return
            cursor, begin = page.next_cursor, ""

    async def watch_events(
        self,
        *,
        after_cursor: str = "",
        start: str = "",
        types: Iterable[str] = (),
        account_id: str = "",
        holder_id: str = "",
        max_reconnects: int | None = None,
        on_reconnect: Callable[[MoneyMovementError | None, str, float], None] | None = None,
    ) -> AsyncGenerator[epb.WatchEventsResponse, None]:
        """Follows the tenant's events, after `after_cursor` or else from `start` ("NOW",
        the default, or "OLDEST"), for as long as the caller iterates: WatchEventsResponse messages,
        each the next matching events in order and the cursor that covers them (one
        without events is a heartbeat, which moves the cursor on past what the filter
        skipped). Save `response.cursor` once a response's events are processed (or each
        event's `cursor` as it is), and start again after the saved cursor: every event
        is then processed exactly once, in order.

        When the stream breaks it is reopened after the last cursor yielded, with jittered
        backoff (the RetryPolicy's first_backoff_s growing to max_backoff_s): on
        UNAVAILABLE (the server shuts down, SHUTTING_DOWN, or restarts; it cannot be
        reached; the connection was lost), ABORTED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED
        with RetryInfo (OVERLOADED: the replica has too many streams), and when the
        stream ends without an error. `on_reconnect(error, cursor, pause_s)` hears of each
        reconnection (`error` None: the stream ended without one).

        From now, "now" is first fixed as a cursor (ListEvents), so a stream that breaks
        before its first response misses nothing either. Breaking out of the loop leaves
        the stream open until the generator is collected: wrap it in
        `contextlib.aclosing(...)` to end it at once.

        Raises:
            CursorExpired: the cursor is older than the retention; `oldest_cursor` is where
                the stream can go on (the events in between are gone).
            InvalidRequest: a malformed cursor or filter.
            Unauthenticated: the token is missing, unknown or revoked.
            Retryable: `max_reconnects` reconnections in a row got no response (None: it
                tries for ever); the subclass of the last failure (Unavailable when the
                stream ended without one).
            ValueError: both `after_cursor` and `start`; an unknown start or type name.
        """
        where = event_filter(types, account_id, holder_id)
        begin = _event_start(start)
        if after_cursor and begin != epb.EVENT_START_UNSPECIFIED:
            raise ValueError("give after_cursor or start, not both")
        cursor, failures, policy = after_cursor, 0, self.retry
        while True:
            call: grpc.aio.UnaryStreamCall[Any, epb.WatchEventsResponse] | None = None
            problem: MoneyMovementError | None = None
            delay_s: float | None = None
            try:
                if not cursor and begin != epb.EVENT_START_OLDEST:
                    page = await self._events.ListEvents(
                        epb.ListEventsRequest(start=epb.EVENT_START_NOW, filter=where),
                        metadata=self._metadata,
                        timeout=policy.timeout_s,
                    )
                    failures, cursor = 0, page.next_cursor
                    if page.events:  # committed since "now": the stream's first events
                        yield epb.WatchEventsResponse(events=page.events, cursor=cursor)
                request = epb.WatchEventsRequest(after_cursor=cursor, filter=where)
                if not cursor:
                    request.start = epb.EVENT_START_OLDEST
                call = self._events.WatchEvents(request, metadata=self._metadata)
                while True:
                    response = await call.read()
                    if not isinstance(response, epb.WatchEventsResponse):
                        break  # EOF: it ended without an error, which it should not; reopen
                    failures, cursor = 0, response.cursor
                    yield response
            except grpc.aio.AioRpcError as failure:
                retryable, delay_s = _retryable(failure)
                problem = error_of(failure)
                if not retryable:
                    raise problem from failure
                problem.__cause__ = failure
            finally:
                if call is not None:
                    call.cancel()
            failures += 1
            if max_reconnects is not None and failures > max_reconnects:
                if problem is None:
                    code = grpc.StatusCode.UNAVAILABLE
                    raise Unavailable(code, "", "the event stream ended without an error")
                raise problem
            pause_s = _pause_s(policy, failures, delay_s)
            if on_reconnect is not None:
                on_reconnect(problem, cursor, pause_s)
            await asyncio.sleep(pause_s)

    # FundsService ----------------------------------------------------------------------

    async def release_funds(
        self,
        account_id: str,
        *,
        amount_minor: int = 0,
        funds_ids: Iterable[str] = (),
        fee_minor: int = 0,
        fee_account_id: str = "",
        description: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> fpb.ReleaseFundsResponse:
        """Makes pending funds available now: these parts (`funds_ids`), or an amount
        oldest first; with an optional fee moved to `fee_account_id` in the same
        transaction.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND, FUNDS_NOT_FOUND.
            FailedPrecondition: EARLY_RELEASE_NOT_ALLOWED, FUNDS_NOT_SCHEDULED,
                RELEASE_EXCEEDS_PENDING, and the fee transfer's refusals.
        """
        request = fpb.ReleaseFundsRequest(
            request_id=request_id, account_id=account_id, amount_minor=amount_minor,
            funds_ids=list(funds_ids), fee_minor=fee_minor, fee_account_id=fee_account_id,
            description=description, metadata=dict(metadata or {}),
        )  # fmt: skip
        return await self._call(self._funds.ReleaseFunds, request)

    async def list_scheduled_funds(
        self,
        account_id: str,
        *,
        include_ended: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> fpb.ListScheduledFundsResponse:
        """One page of an account's scheduled parts of credits, soonest first (only the
        unended ones unless `include_ended`).

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
        """
        request = fpb.ListScheduledFundsRequest(
            account_id=account_id, include_ended=include_ended, page_size=page_size,
            page_token=page_token,
        )  # fmt: skip
        return await self._call(self._funds.ListScheduledFunds, request)

    async def iter_scheduled_funds(
        self, account_id: str, *, include_ended: bool = False, page_size: int = 0
    ) -> AsyncIterator[funds_pb2.ScheduledFunds]:
        """Every part `list_scheduled_funds` lists with these arguments, page after page."""
        async for funds in _every(
            lambda token: self.list_scheduled_funds(
                account_id, include_ended=include_ended, page_size=page_size, page_token=token
            ),
            lambda page: page.funds,
        ):
            yield funds

    async def create_balance_monitor(
        self,
        account_id: str,
        field: str,
        operator: str,
        threshold_minor: int,
        *,
        description: str = "",
        request_id: str = "",
    ) -> funds_pb2.BalanceMonitor:
        """Watches one of an account's balances (`field`: "AVAILABLE", "POSTED", ...)
        against a threshold (`operator`: "BELOW", "AT_OR_BELOW", "ABOVE", "AT_OR_ABOVE");
        each crossing is an event.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
            FailedPrecondition: MONITOR_LIMIT_REACHED.
        """
        request = fpb.CreateBalanceMonitorRequest(
            request_id=request_id, account_id=account_id,
            field=_enum(funds_pb2.BalanceMonitor.Field, "FIELD_", field),
            operator=_enum(funds_pb2.BalanceMonitor.Operator, "OPERATOR_", operator),
            threshold_minor=threshold_minor, description=description,
        )  # fmt: skip
        return (await self._call(self._funds.CreateBalanceMonitor, request)).monitor

    async def list_balance_monitors(self, account_id: str) -> list[funds_pb2.BalanceMonitor]:
        """An account's monitors, oldest first.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
        """
        request = fpb.ListBalanceMonitorsRequest(account_id=account_id)
        return list((await self._call(self._funds.ListBalanceMonitors, request)).monitors)

    async def iter_balance_monitors(
        self, account_id: str
    ) -> AsyncIterator[funds_pb2.BalanceMonitor]:
        """Every monitor of the account (one page: at most 20)."""
        for monitor in await self.list_balance_monitors(account_id):
            yield monitor

    async def delete_balance_monitor(
        self, monitor_id: str, *, request_id: str = ""
    ) -> funds_pb2.BalanceMonitor:
        """Stops a monitor.

        Raises:
            NotFound: MONITOR_NOT_FOUND.
        """
        request = fpb.DeleteBalanceMonitorRequest(request_id=request_id, monitor_id=monitor_id)
        return (await self._call(self._funds.DeleteBalanceMonitor, request)).monitor

    async def list_policy_changes(
        self, account_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> fpb.ListPolicyChangesResponse:
        """One page of an account's funds policy changes, newest first.

        Raises:
            NotFound: ACCOUNT_NOT_FOUND.
        """
        request = fpb.ListPolicyChangesRequest(
            account_id=account_id, page_size=page_size, page_token=page_token
        )
        return await self._call(self._funds.ListPolicyChanges, request)

    async def iter_policy_changes(
        self, account_id: str, *, page_size: int = 0
    ) -> AsyncIterator[funds_pb2.PolicyChange]:
        """Every change `list_policy_changes` lists, page after page."""
        async for change in _every(
            lambda token: self.list_policy_changes(
                account_id, page_size=page_size, page_token=token
            ),
            lambda page: page.changes,
        ):
            yield change

    # PayoutService ---------------------------------------------------------------------

    async def create_external_account(
        self,
        *,
        rail: str,
        currency_code: str,
        routing_reference: str,
        account_number: str,
        holder_name: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> payout_pb2.ExternalAccount:
        """Registers a bank destination for payouts on `rail` (the server's: "simulated"
        or "file"). The `account_number` (4 to 34 digits) is kept only as `last4` and
        `fingerprint`; it is never stored or returned.

        Raises:
            InvalidRequest: a rail the server does not have, a bad account number, a
                missing routing reference.
            RequestIdReused: `request_id` was used for another request.
        """
        request = ppb.CreateExternalAccountRequest(
            request_id=request_id, rail=rail, currency_code=currency_code,
            routing_reference=routing_reference, account_number=account_number,
            holder_name=holder_name, metadata=metadata or {},
        )  # fmt: skip
        return (await self._call(self._payouts.CreateExternalAccount, request)).external_account

    async def get_external_account(self, external_account_id: str) -> payout_pb2.ExternalAccount:
        """Reads one external account.

        Raises:
            NotFound: EXTERNAL_ACCOUNT_NOT_FOUND.
        """
        request = ppb.GetExternalAccountRequest(id=external_account_id)
        return (await self._call(self._payouts.GetExternalAccount, request)).external_account

    async def list_external_accounts(
        self, *, fingerprint: str = "", page_size: int = 0, page_token: str = ""
    ) -> ppb.ListExternalAccountsResponse:
        """One page of the tenant's external accounts, newest first (only those with
        `fingerprint`, when given: the duplicates of one bank account). At most
        `page_size` (1 to 500; 0: 50); pass `next_page_token` back as `page_token`, with
        the same filter, for the next page ("" on the last).

        Raises:
            InvalidRequest: a bad argument, or INVALID_PAGE_TOKEN.
        """
        request = ppb.ListExternalAccountsRequest(
            fingerprint=fingerprint, page_size=page_size, page_token=page_token
        )
        return await self._call(self._payouts.ListExternalAccounts, request)

    async def iter_external_accounts(
        self, *, fingerprint: str = "", page_size: int = 0
    ) -> AsyncIterator[payout_pb2.ExternalAccount]:
        """Every external account `list_external_accounts` lists, page after page."""
        async for external in _every(
            lambda token: self.list_external_accounts(
                fingerprint=fingerprint, page_size=page_size, page_token=token
            ),
            lambda page: page.external_accounts,
        ):
            yield external

    async def disable_external_account(
        self, external_account_id: str, *, request_id: str = ""
    ) -> payout_pb2.ExternalAccount:
        """Allows no new payouts to the external account (those made go on); a disabled
        one stays as it is.

        Raises:
            NotFound: EXTERNAL_ACCOUNT_NOT_FOUND.
        """
        request = ppb.DisableExternalAccountRequest(request_id=request_id, id=external_account_id)
        return (await self._call(self._payouts.DisableExternalAccount, request)).external_account

    async def create_payout(
        self,
        account_id: str,
        external_account_id: str,
        amount_minor: int,
        currency_code: str,
        method: str,
        *,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
        fee_minor: int = 0,
        fee_account_id: str = "",
        request_id: str = "",
    ) -> payout_pb2.Payout:
        """Pays money out of a CREDIT-normal account to an external account: a PENDING
        payout whose amount (and `fee_minor`, captured into `fee_account_id` if it posts)
        is held at once. `method` "STANDARD" (at the next submission; cancelable until
        then) or "INSTANT" (handed to the rail at once). The server's payout worker moves
        it on: follow it with `get_payout` or the PAYOUT_* events.

        Raises:
            InvalidRequest: a bad field.
            NotFound: ACCOUNT_NOT_FOUND, EXTERNAL_ACCOUNT_NOT_FOUND.
            InsufficientFunds: more than the account has available.
            AccountInactive: ACCOUNT_FROZEN, ACCOUNT_CLOSED.
            LimitExceeded: DEBIT_LIMIT_EXCEEDED.
            FailedPrecondition: EXTERNAL_ACCOUNT_DISABLED, CURRENCY_MISMATCH,
                FUNDS_NOT_YET_AVAILABLE (the money is there, not yet available).
            RequestIdReused: `request_id` was used for another request.
        """
        request = ppb.CreatePayoutRequest(
            request_id=request_id, account_id=account_id,
            external_account_id=external_account_id, amount_minor=amount_minor,
            currency_code=currency_code,
            method=_enum(payout_pb2.PayoutMethod, "PAYOUT_METHOD_", method),
            description=description, metadata=metadata or {}, fee_minor=fee_minor,
            fee_account_id=fee_account_id,
        )  # fmt: skip
        return (await self._call(self._payouts.CreatePayout, request)).payout

    async def get_payout(self, payout_id: str) -> payout_pb2.Payout:
        """Reads one payout.

        Raises:
            NotFound: PAYOUT_NOT_FOUND.
        """
        request = ppb.GetPayoutRequest(id=payout_id)
        return (await self._call(self._payouts.GetPayout, request)).payout

    async def list_payouts(
        self,
        *,
        account_id: str = "",
        state: str = "",
        external_account_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> ppb.ListPayoutsResponse:
        """One page of the tenant's payouts, newest first, matching every filter given
        (`state`: "PENDING", "PROCESSING", "POSTED", "FAILED", "CANCELED" or "RETURNED").
        At most `page_size` (1 to 500; 0: 50); pass `next_page_token` back as
        `page_token`, with the same filters, for the next page ("" on the last).

        Raises:
            InvalidRequest: a bad filter, or INVALID_PAGE_TOKEN.
        """
        request = ppb.ListPayoutsRequest(
            account_id=account_id, state=_enum(payout_pb2.PayoutState, "PAYOUT_STATE_", state),
            external_account_id=external_account_id, page_size=page_size,
            page_token=page_token,
        )  # fmt: skip
        return await self._call(self._payouts.ListPayouts, request)

    async def iter_payouts(
        self,
        *,
        account_id: str = "",
        state: str = "",
        external_account_id: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[payout_pb2.Payout]:
        """Every payout `list_payouts` lists with these filters, page after page."""
        async for payout in _every(
            lambda token: self.list_payouts(
                account_id=account_id,
                state=state,
                external_account_id=external_account_id,
                page_size=page_size,
                page_token=token,
            ),
            lambda page: page.payouts,
        ):
            yield payout

    async def cancel_payout(self, payout_id: str, *, request_id: str = "") -> payout_pb2.Payout:
        """Cancels a PENDING payout and releases its holds (a canceled one stays as it is).

        Raises:
            NotFound: PAYOUT_NOT_FOUND.
            FailedPrecondition: PAYOUT_NOT_CANCELABLE: it has reached the rail
                (`metadata["state"]` says where it is).
        """
        request = ppb.CancelPayoutRequest(request_id=request_id, id=payout_id)
        return (await self._call(self._payouts.CancelPayout, request)).payout

    async def get_inbound_transfer(self, inbound_transfer_id: str) -> payout_pb2.InboundTransfer:
        """Reads one inbound transfer (money that came in over a rail).

        Raises:
            NotFound: INBOUND_TRANSFER_NOT_FOUND.
        """
        request = ppb.GetInboundTransferRequest(id=inbound_transfer_id)
        return (await self._call(self._payouts.GetInboundTransfer, request)).inbound_transfer

    async def list_inbound_transfers(
        self, *, account_id: str = "", page_size: int = 0, page_token: str = ""
    ) -> ppb.ListInboundTransfersResponse:
        """One page of the tenant's inbound transfers (of `account_id`, when given),
        newest first. At most `page_size` (1 to 500; 0: 50); pass `next_page_token` back
        as `page_token`, with the same filter, for the next page ("" on the last).

        Raises:
            InvalidRequest: a bad argument, or INVALID_PAGE_TOKEN.
        """
        request = ppb.ListInboundTransfersRequest(
            account_id=account_id, page_size=page_size, page_token=page_token
        )
        return await self._call(self._payouts.ListInboundTransfers, request)

    async def iter_inbound_transfers(
        self, *, account_id: str = "", page_size: int = 0
    ) -> AsyncIterator[payout_pb2.InboundTransfer]:
        """Every inbound transfer `list_inbound_transfers` lists, page after page."""
        async for inbound in _every(
            lambda token: self.list_inbound_transfers(
                account_id=account_id, page_size=page_size, page_token=token
            ),
            lambda page: page.inbound_transfers,
        ):
            yield inbound

    async def reconcile(
        self, rail: str, lines: Iterable[payout_pb2.SettlementLine] = ()
    ) -> ppb.ReconcileResponse:
        """Compares a rail's settlement report (`lines`, see `settlement_line`; none: the
        server asks the rail for its own report now) with the ledger's payouts and inbound
        transfers on that rail: the response's `matched` count and every break. Changes
        nothing.

        Raises:
            InvalidRequest: a rail the server does not have, a bad line.
        """
        request = ppb.ReconcileRequest(rail=rail, lines=lines)
        return await self._call(self._payouts.Reconcile, request)

    # AssetService (docs/assets.md)

    async def register_asset(
        self,
        currency_code: str,
        exponent: int,
        name: str,
        *,
        description: str = "",
        request_id: str = "",
    ) -> asset_pb2.Currency:
        """Registers a tenant asset: `currency_code` of 3 to 12 of [A-Z0-9] starting
        with a letter, not an ISO 4217 code; `exponent` 0 to 18; `name` 1 to 200
        characters. The same registration again returns the asset as it is.

        Raises:
            InvalidRequest: a malformed code, an exponent out of range, no name.
            AlreadyExists: ASSET_CODE_RESERVED (an ISO 4217 code), ASSET_CODE_TAKEN
                (registered with another exponent, name or description), or
                REQUEST_ID_REUSED (RequestIdReused).
            FailedPrecondition: ASSET_LIMIT_REACHED.
        """
        request = aspb.RegisterAssetRequest(
            request_id=request_id, currency_code=currency_code, exponent=exponent, name=name,
            description=description,
        )  # fmt: skip
        return (await self._call(self._assets.RegisterAsset, request)).currency

    async def list_currencies(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> aspb.ListCurrenciesResponse:
        """One page of the currency codes the server accepts for the tenant, by code: the
        ISO 4217 table and the tenant's assets. At most `page_size` (1 to 1000; 0: 500);
        pass `next_page_token` back as `page_token` for the next page ("" on the last).

        Raises:
            InvalidRequest: a bad page size, or INVALID_PAGE_TOKEN.
        """
        request = aspb.ListCurrenciesRequest(page_size=page_size, page_token=page_token)
        return await self._call(self._assets.ListCurrencies, request)

    async def iter_currencies(self, *, page_size: int = 0) -> AsyncIterator[asset_pb2.Currency]:
        """Every currency `list_currencies` lists, page after page."""
        async for currency in _every(
            lambda token: self.list_currencies(page_size=page_size, page_token=token),
            lambda page: page.currencies,
        ):
            yield currency

    # HolderService (docs/platforms.md)

    async def create_holder(
        self,
        external_id: str,
        *,
        name: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> holder_pb2.Holder:
        """Creates an ACTIVE holder; `external_id` (1 to 128 of [A-Za-z0-9._:-]) is the
        caller's own id for it, unique among the tenant's holders. Open accounts for it
        with `create_account(holder_id=holder.holder_id)`.

        Raises:
            InvalidRequest: a missing or malformed external id, a bad name or metadata.
            AlreadyExists: HOLDER_EXTERNAL_ID_TAKEN (metadata holder_id: who has it), or
                REQUEST_ID_REUSED (RequestIdReused).
        """
        request = hspb.CreateHolderRequest(
            request_id=request_id, external_id=external_id, name=name, metadata=metadata or {}
        )
        return (await self._call(self._holders.CreateHolder, request)).holder

    async def get_holder(self, holder_id: str) -> holder_pb2.Holder:
        """One holder.

        Raises:
            NotFound: HOLDER_NOT_FOUND.
        """
        request = hspb.GetHolderRequest(holder_id=holder_id)
        return (await self._call(self._holders.GetHolder, request)).holder

    async def list_holders(
        self,
        *,
        state: str = "",
        external_id: str = "",
        metadata: Mapping[str, str] | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> hspb.ListHoldersResponse:
        """One page of the tenant's holders, newest first, matching every filter given
        (`state`: "ACTIVE", "RESTRICTED" or "CLOSED"; `metadata`: pairs the holder's
        metadata contains). At most `page_size` (1 to 500; 0: 50); pass `next_page_token`
        back as `page_token`, with the same filters, for the next page ("" on the last).

        Raises:
            InvalidRequest: a bad filter, or INVALID_PAGE_TOKEN.
        """
        request = hspb.ListHoldersRequest(
            page_size=page_size, page_token=page_token,
            state=_enum(holder_pb2.Holder.State, "STATE_", state), external_id=external_id,
            metadata=metadata or {},
        )  # fmt: skip
        return await self._call(self._holders.ListHolders, request)

    async def iter_holders(
        self,
        *,
        state: str = "",
        external_id: str = "",
        metadata: Mapping[str, str] | None = None,
        page_size: int = 0,
    ) -> AsyncIterator[holder_pb2.Holder]:
        """Every holder `list_holders` lists with these filters, page after page."""
        async for holder in _every(
            lambda token: self.list_holders(
                state=state,
                external_id=external_id,
                metadata=metadata,
                page_size=page_size,
                page_token=token,
            ),
            lambda page: page.holders,
        ):
            yield holder

    async def update_holder(
        self,
        holder_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        state: str = "",
        request_id: str = "",
    ) -> holder_pb2.Holder:
        """Changes a holder: `name` (None: unchanged), `metadata` merged (an empty value
        removes its key), `state` "RESTRICTED" (its accounts take no new debits),
        "ACTIVE" (lifts that) or "CLOSED" (for good, once all its accounts are closed).

        Raises:
            NotFound: HOLDER_NOT_FOUND.
            FailedPrecondition: HOLDER_CLOSED, HOLDER_NOT_EMPTY (metadata
                open_account_count).
            InvalidRequest: a bad name, or metadata past its limits.
        """
        request = hspb.UpdateHolderRequest(
            request_id=request_id, holder_id=holder_id, metadata=metadata or {},
            state=_enum(holder_pb2.Holder.State, "STATE_", state),
        )  # fmt: skip
        if name is not None:
            request.name = name
        return (await self._call(self._holders.UpdateHolder, request)).holder

    async def get_holder_balances(self, holder_id: str) -> hspb.GetHolderBalancesResponse:
        """The sums of the holder's accounts per currency (posted, pending, available,
        pending availability, reserved, account count), all read at one moment
        (`as_of_time`).

        Raises:
            NotFound: HOLDER_NOT_FOUND.
        """
        request = hspb.GetHolderBalancesRequest(holder_id=holder_id)
        return await self._call(self._holders.GetHolderBalances, request)


@dataclass
class AdminClient:
    """AdminService behind one channel, with the admin token (docs/operations.md,
    "Administration over gRPC"). Mutations get a request id and retries as
    MoneyMovementClient's do; PERMISSION_DENIED (a tenant's token) and UNIMPLEMENTED
    (ADMIN_DISABLED: the server's admin service is off) raise PermissionDenied and
    ServerError with those reasons."""

    target: str
    admin_token: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    credentials: grpc.ChannelCredentials | None = None

    def __post_init__(self) -> None:
        # The tenant client's channel, retries and error mapping, with the admin token.
        self._client = MoneyMovementClient(
            self.target, self.admin_token, self.retry, self.credentials
        )
        self._admin = adgrpc.AdminServiceStub(self._client._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel."""
        await self._client.close()

    async def create_tenant(self, name: str, *, request_id: str = "") -> adpb.CreateTenantResponse:
        """The tenant `name`, created unless it exists (`created` says which)."""
        request = adpb.CreateTenantRequest(request_id=request_id, name=name)
        return await self._client._call(self._admin.CreateTenant, request)

    async def list_tenants(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> adpb.ListTenantsResponse:
        """One page of tenants, oldest first (1 to 500; 0: 50)."""
        request = adpb.ListTenantsRequest(page_size=page_size, page_token=page_token)
        return await self._client._call(self._admin.ListTenants, request)

    async def iter_tenants(self, *, page_size: int = 0) -> AsyncIterator[adpb.Tenant]:
        """Every tenant `list_tenants` lists, page after page."""
        async for tenant in _every(
            lambda token: self.list_tenants(page_size=page_size, page_token=token),
            lambda page: page.tenants,
        ):
            yield tenant

    async def create_token(
        self, tenant_id: str, *, request_id: str = "", holder_id: str = ""
    ) -> adpb.CreateTokenResponse:
        """A new bearer token for the tenant, shown this once (`bearer_token`); scoped
        to one of its holders with `holder_id` (it then acts for that holder only).

        Raises:
            NotFound: TENANT_NOT_FOUND, HOLDER_NOT_FOUND.
        """
        request = adpb.CreateTokenRequest(
            request_id=request_id, tenant_id=tenant_id, holder_id=holder_id
        )
        return await self._client._call(self._admin.CreateToken, request)

    async def list_tokens(
        self, tenant_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> adpb.ListTokensResponse:
        """One page of the tenant's tokens, oldest first: ids and times, never a token.

        Raises:
            NotFound: TENANT_NOT_FOUND.
        """
        request = adpb.ListTokensRequest(
            tenant_id=tenant_id, page_size=page_size, page_token=page_token
        )
        return await self._client._call(self._admin.ListTokens, request)

    async def iter_tokens(
        self, tenant_id: str, *, page_size: int = 0
    ) -> AsyncIterator[adpb.ApiToken]:
        """Every token `list_tokens` lists for the tenant, page after page."""
        async for listed in _every(
            lambda token: self.list_tokens(tenant_id, page_size=page_size, page_token=token),
            lambda page: page.api_tokens,
        ):
            yield listed

    async def revoke_token(
        self, token_id: str, *, request_id: str = ""
    ) -> adpb.RevokeTokenResponse:
        """Revokes a token; `all_replicas_confirmed` says whether every replica confirmed
        it refuses the token from now on.

        Raises:
            NotFound: TOKEN_NOT_FOUND.
        """
        request = adpb.RevokeTokenRequest(request_id=request_id, token_id=token_id)
        return await self._client._call(self._admin.RevokeToken, request)
