"""A small typed Python client for moneymovement.

    async with MoneyMovementClient("127.0.0.1:50051", token) as mm:
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        transfer = await mm.create_transfer(debit, wallet.id, 1_000, "USD")
        async for response in mm.watch_events(after_cursor=saved_cursor):
            handle(response.events)
            save(response.cursor)

It sets a deadline on every call; gives every mutation a request_id (generated unless
passed) and reuses it on its own retries, so a retry never moves money twice; retries
only what is safe to retry (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED, and
RESOURCE_EXHAUSTED from the server's limits, after their RetryInfo delay) with jittered
backoff; and raises typed exceptions that carry the stable `reason` of the error.

`watch_events` follows the tenant's event stream and reopens it, after the last cursor
it handed to the caller, whenever it breaks (the server stops or restarts, the connection
is lost): a caller that saves the cursor of what it processed, and passes it back after
its own restart, gets every event exactly once, in order.

Over TLS, or mutual TLS, pass `credentials=tls_credentials(...)`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from moneymovement.v1 import account_pb2, balance_pb2, event_pb2, transfer_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import account_service_pb2_grpc as agrpc
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import balance_service_pb2_grpc as bgrpc
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import event_service_pb2_grpc as egrpc
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc

R = TypeVar("R")
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


class MoneyMovementError(Exception):
    """A failed call: its gRPC code, the stable reason, and the error's details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        field_violations: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{code.name} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.field_violations = field_violations or []


class InvalidRequest(MoneyMovementError):
    """INVALID_ARGUMENT: fix the request; `field_violations` names the fields."""


class Unauthenticated(MoneyMovementError):
    """UNAUTHENTICATED: the token is missing, unknown or revoked."""


class Rejected(MoneyMovementError):
    """A business outcome (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION): retrying the
    same request returns it again."""


class RetriesExhausted(MoneyMovementError):
    """UNAVAILABLE, ABORTED or DEADLINE_EXCEEDED after every retry. The outcome of a
    mutation is unknown: call again with the same `request_id` to learn it."""

    def __init__(self, *args: Any, request_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_id = request_id


class CursorExpired(MoneyMovementError):
    """OUT_OF_RANGE / CURSOR_EXPIRED: the events after the cursor were pruned (retention).
    `oldest_cursor` is the oldest cursor that still works; what lay between is gone."""

    @property
    def oldest_cursor(self) -> str:
        return self.metadata.get("oldest_cursor", "")


class ServerError(MoneyMovementError):
    """Anything else (INTERNAL, UNIMPLEMENTED, ...)."""


_BY_CODE: dict[grpc.StatusCode, type[MoneyMovementError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: CursorExpired,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.NOT_FOUND: Rejected,
    grpc.StatusCode.ALREADY_EXISTS: Rejected,
    grpc.StatusCode.FAILED_PRECONDITION: Rejected,
}


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


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    """The server's google.rpc.RetryInfo delay of a failed call, if it sent one."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def error_of(error: grpc.aio.AioRpcError) -> MoneyMovementError:
    """The typed exception for a failed call, with ErrorInfo and BadRequest decoded."""
    reason, metadata, violations = "", {}, []
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.reason) for v in bad.field_violations]
    kind = _BY_CODE.get(error.code(), ServerError)
    return kind(error.code(), reason, error.details() or "", metadata, violations)


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
    request = health_pb2.HealthCheckRequest(service=service)
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        health = health_pb2_grpc.HealthStub(channel)
        while loop.time() < deadline:
            try:
                reply = await health.Check(request, timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass  # not listening yet, or restarting
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{target} did not become SERVING within {timeout_s} s")


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


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries: attempts, and the per-attempt deadline."""

    max_attempts: int = 5
    timeout_s: float = 10.0
    first_backoff_s: float = 0.05
    max_backoff_s: float = 2.0


@dataclass
class MoneyMovementClient:
    """The four services behind one channel, for one tenant's token."""

    target: str
    token: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    credentials: grpc.ChannelCredentials | None = None

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
        self._metadata = (("authorization", f"Bearer {self.token}"),)
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
        request_id = getattr(request, "request_id", None)
        if request_id == "":
            request.request_id = request_id = uuid.uuid4().hex  # one id for every retry
        policy = self.retry
        for attempt in range(1, policy.max_attempts + 1):
            self.attempts = attempt
            try:
                return await method(request, metadata=self._metadata, timeout=policy.timeout_s)
            except grpc.aio.AioRpcError as failure:
                retryable, delay_s = _retryable(failure)
                if not retryable:
                    raise error_of(failure) from failure
                if attempt == policy.max_attempts:
                    typed = error_of(failure)
                    raise RetriesExhausted(
                        typed.code, typed.reason, typed.message, typed.metadata,
                        request_id=request_id,
                    ) from failure  # fmt: skip
                await asyncio.sleep(_pause_s(policy, attempt, delay_s))
        raise AssertionError("unreachable")

    # Accounts ------------------------------------------------------------------------

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
        request_id: str = "",
    ) -> account_pb2.Account:
        """Opens an account; `normal_balance` is "CREDIT" or "DEBIT", `overdraft_mode`
        "NONE", "LIMITED" or "UNLIMITED"."""
        request = apb.CreateAccountRequest(
            request_id=request_id, currency_code=currency_code,
            normal_balance=account_pb2.NormalBalance.Value("NORMAL_BALANCE_" + normal_balance),
            overdraft_mode=account_pb2.OverdraftMode.Value("OVERDRAFT_MODE_" + overdraft_mode),
            overdraft_limit_minor=overdraft_limit_minor, name=name, external_id=external_id,
            holder_id=holder_id, metadata=metadata or {},
        )  # fmt: skip
        return (await self._call(self._accounts.CreateAccount, request)).account

    async def get_account(self, account_id: str) -> account_pb2.Account:
        """Reads one account."""
        request = apb.GetAccountRequest(account_id=account_id)
        return (await self._call(self._accounts.GetAccount, request)).account

    # Balances ------------------------------------------------------------------------

    async def get_balance(self, account_id: str) -> balance_pb2.Balance:
        """An account's current balances."""
        request = bpb.GetBalanceRequest(account_id=account_id)
        return (await self._call(self._balances.GetBalance, request)).balance

    async def get_balances(self, *account_ids: str) -> list[balance_pb2.Balance]:
        """Several accounts' balances from one snapshot, in the order asked."""
        request = bpb.BatchGetBalancesRequest(account_ids=account_ids)
        return list((await self._call(self._balances.BatchGetBalances, request)).balances)

    # Transfers -----------------------------------------------------------------------

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
        request_id: str = "",
    ) -> transfer_pb2.Transfer:
        """Moves money at once, or places a hold when `pending`."""
        request = mpb.CreateTransferRequest(
            request_id=request_id, debit_account_id=debit_account_id,
            credit_account_id=credit_account_id, amount_minor=amount_minor,
            currency_code=currency_code, description=description, metadata=metadata or {},
            pending=pending,
        )  # fmt: skip
        if hold_timeout_s is not None:
            request.hold_timeout.FromNanoseconds(int(hold_timeout_s * 1e9))
        return (await self._call(self._movements.CreateTransfer, request)).transfer

    async def post_transfer(
        self, transfer_id: str, amount_minor: int = 0, *, request_id: str = ""
    ) -> transfer_pb2.Transfer:
        """Captures a hold (amount 0: all of it)."""
        request = mpb.PostTransferRequest(
            request_id=request_id, transfer_id=transfer_id, amount_minor=amount_minor
        )
        return (await self._call(self._movements.PostTransfer, request)).transfer

    async def void_transfer(
        self, transfer_id: str, *, request_id: str = ""
    ) -> transfer_pb2.Transfer:
        """Releases a hold."""
        request = mpb.VoidTransferRequest(request_id=request_id, transfer_id=transfer_id)
        return (await self._call(self._movements.VoidTransfer, request)).transfer

    async def reverse_transfer(
        self, transfer_id: str, amount_minor: int = 0, *, request_id: str = ""
    ) -> mpb.ReverseTransferResponse:
        """Moves posted money back (amount 0: all that remains)."""
        request = mpb.ReverseTransferRequest(
            request_id=request_id, transfer_id=transfer_id, amount_minor=amount_minor
        )
        return await self._call(self._movements.ReverseTransfer, request)

    async def create_transfers(
        self, items: list[mpb.CreateTransfersRequest.Item], *, request_id: str = ""
    ) -> list[transfer_pb2.Transfer]:
        """Creates all `items` atomically, or none."""
        request = mpb.CreateTransfersRequest(request_id=request_id, transfers=items)
        return list((await self._call(self._movements.CreateTransfers, request)).transfers)

    async def get_transfer(self, transfer_id: str) -> transfer_pb2.Transfer:
        """Reads one transfer with its history."""
        request = mpb.GetTransferRequest(transfer_id=transfer_id)
        return (await self._call(self._movements.GetTransfer, request)).transfer

    # Events --------------------------------------------------------------------------

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
        """
        request = epb.ListEventsRequest(
            after_cursor=after_cursor, start=_event_start(start),
            filter=event_filter(types, account_id, holder_id), page_size=page_size,
        )  # fmt: skip
        return await self._call(self._events.ListEvents, request)

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
            RetriesExhausted: `max_reconnects` reconnections in a row got no response
                (None: it tries for ever).
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
                if not retryable:
                    raise error_of(failure) from failure
                problem = error_of(failure)
            finally:
                if call is not None:
                    call.cancel()
            failures += 1
            if max_reconnects is not None and failures > max_reconnects:
                code = problem.code if problem else grpc.StatusCode.UNAVAILABLE
                raise RetriesExhausted(
                    code,
                    problem.reason if problem else "",
                    problem.message if problem else "the event stream ended",
                    problem.metadata if problem else {},
                )
            pause_s = _pause_s(policy, failures, delay_s)
            if on_reconnect is not None:
                on_reconnect(problem, cursor, pause_s)
            await asyncio.sleep(pause_s)
