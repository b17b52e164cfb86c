"""The one interceptor every RPC passes through.

It opens the server span (continuing the caller's W3C trace), binds the logging context,
refuses the call when the server is at its limit of RPCs at once, authenticates the bearer
token, refuses the call when the tenant is over its rate, sets the caller (tenant,
deadline, trace id) for the servicer, turns domain and edge errors into statuses through
the one error table and anything unexpected into a bare INTERNAL, and ends with one
canonical log line and the RPC metrics: method, code, duration, tenant, request id, trace
and span ids, retries.

Health and reflection skip all of it when served without a token (the default); when
they need one, they are authenticated and nothing more: they never count against the
limits, so that probes still answer on a server that is refusing load.

AdminService's calls are admitted by the admin token instead of a tenant's
(transport/admin_auth.py), are logged with actor "admin", and count against no tenant's
rate; everything else is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeAlias

import grpc
import structlog
from google.protobuf.message import DecodeError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from moneymovement.domain.errors import (
    DomainError,
    FieldReason,
    FieldViolation,
    InvalidInput,
    deadline_exceeded,
)
from moneymovement.observability import rpc as rpc_telemetry
from moneymovement.observability.tracing import (
    current_trace_id,
    extract_context,
    spans_recorded,
    tracer,
)
from moneymovement.service.pipeline import attempts_made, reset_attempts
from moneymovement.service.tenants import TenantDirectory
from moneymovement.service.unit_of_work import Caller
from moneymovement.transport.admin_auth import ADMIN_ACTOR, ADMIN_METHOD_PREFIX, AdminGate
from moneymovement.transport.context import reset_caller, set_caller
from moneymovement.transport.errors import (
    INTERNAL_ERROR,
    EdgeError,
    EdgeReason,
    Throttled,
    abort,
    code_of,
)
from moneymovement.transport.holder_scope import acting_for, require_allowed
from moneymovement.transport.limits import ConcurrencyLimit, TenantRateLimiter

log = structlog.get_logger("moneymovement.rpc")

# Served without a token unless MM_OPEN_HEALTH_AND_REFLECTION=false: probes and tooling
# must work before anyone has credentials.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# What an overloaded server asks callers to wait: about the time a few RPCs take to end.
OVERLOAD_RETRY_S = 0.1
# Codes that mean the server failed (OpenTelemetry's gRPC conventions); business
# rejections (NOT_FOUND, FAILED_PRECONDITION, ...) leave the span status unset.
# A client whose deadline passes cancels the call: the cancellation reaches us a little
# before our copy of the deadline (ours started when the request arrived, the network
# time later), a few milliseconds on one host. A cancel that close to the deadline is
# the deadline (a person cancelling by hand is never that precise).
_DEADLINE_SLACK_S = 0.1
SERVER_FAULTS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the stubs


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """Tracing, limits, authentication, caller context, error mapping, the log line."""

    def __init__(
        self,
        directory: TenantDirectory,
        *,
        max_deadline_s: float,
        open_health_and_reflection: bool = True,
        max_concurrent_rpcs: int = 0,
        tenant_rate_per_s: float = 0,
        tenant_burst: float = 1,
        max_streams: int = 0,
        admin: AdminGate | None = None,
    ) -> None:
        self._directory = directory
        self._admin = admin or AdminGate(None)
        self._max_deadline_s = max_deadline_s
        self._open_prefixes = OPEN_METHOD_PREFIXES if open_health_and_reflection else ()
        self._concurrency = ConcurrencyLimit(max_concurrent_rpcs)
        # Streams are long-lived: they have a limit of their own, and do not take the
        # places of unary calls.
        self._streams = ConcurrencyLimit(max_streams)
        self._streams_full = Throttled(
            EdgeReason.OVERLOADED,
            f"the server serves its limit of {max_streams} streams at once; nothing was "
            "done, retry after the RetryInfo delay (or on another replica)",
            1.0,
            {"max_streams": str(max_streams)},
        )
        self._rate = TenantRateLimiter(tenant_rate_per_s, tenant_burst)
        self._overloaded = Throttled(
            EdgeReason.OVERLOADED,
            f"the server is serving its limit of {max_concurrent_rpcs} calls at once; "
            "nothing was done, retry after the RetryInfo delay",
            OVERLOAD_RETRY_S,
            {"max_concurrent_rpcs": str(max_concurrent_rpcs)},
        )
        self._rate_metadata = {"rate_per_s": f"{tenant_rate_per_s:g}", "burst": f"{tenant_burst:g}"}
        # method -> (the handler grpc gave, our wrapper of it): wrapping once per method,
        # not once per call, keeps closures and handler objects off the hot path.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(self._open_prefixes):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap_handler(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap_handler(self, method: str, handler: Handler) -> Handler:
        if method.startswith(OPEN_METHOD_PREFIXES):
            return self._authenticated_only(handler)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_unary is None:
            # Our RPCs are unary, or server streaming; another kind must not slip past
            # authentication.
            raise RuntimeError(f"{method}: client streaming RPCs have no interceptor path")
        # grpc.aio handlers are coroutines; the stubs type them as sync ones.
        behavior: Behavior = handler.unary_unary  # type: ignore[assignment]
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method, behavior),
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _authenticated_only(self, handler: Handler) -> Handler:
        """Health or reflection behind a token: the token is checked, nothing else."""

        async def check(context: grpc.aio.ServicerContext[Any, Any]) -> None:
            try:
                await self._caller(_text_metadata(context), context)
            except (DomainError, EdgeError) as error:
                await abort(context, error)

        kinds = {"request_deserializer": handler.request_deserializer}
        kinds["response_serializer"] = handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _checked_first(check, handler.unary_unary), **kinds
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _checked_first(check, handler.unary_stream), **kinds
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _checked_first(check, handler.stream_unary), **kinds
            )
        return grpc.stream_stream_rpc_method_handler(
            _checked_first(check, handler.stream_stream), **kinds
        )

    def _wrap(self, method: str, behavior: Behavior) -> Behavior:
        admin = method.startswith(ADMIN_METHOD_PREFIX)

        async def serve(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            metadata = _text_metadata(context)
            request_id = getattr(request, "request_id", "")
            fields: dict[str, Any] = {"method": method}
            if request_id:
                fields["request_id"] = request_id
            with (
                self._server_span(method, request_id, metadata) as span,
                structlog.contextvars.bound_contextvars(**fields),
            ):
                try:
                    response, code, error = await self._serve(
                        request, context, behavior, metadata, span, method=method, admin=admin
                    )
                except asyncio.CancelledError:
                    # The caller cancelled or its deadline passed: still one line, one count,
                    # with the code the caller saw (grpc cancels the handler in both cases).
                    response, code, error = None, _cancelled_code(context), None
                    cancelled = True
                else:
                    cancelled = False
                elapsed = time.perf_counter() - started
                rpc_telemetry.record_outcome(
                    span, method, _code(code), fault=_fault(code, error), duration_s=elapsed
                )
                log.info(
                    "rpc_finished",
                    code=code.name,
                    duration_ms=round(elapsed * 1000, 3),
                    retries=max(0, attempts_made() - 1),
                )
            if cancelled:
                raise asyncio.CancelledError
            if error is not None:
                await abort(context, error)  # raises: the status goes to the caller
            return response

        return serve

    def _wrap_stream(self, method: str, handler: Any) -> Any:
        """A server-streaming handler behind the same checks as a unary one: the limit of
        streams, authentication, the tenant's rate (opening a stream is one call); the
        caller's deadline is its own (no MM_MAX_DEADLINE_S: a stream may live for days).
        One log line when it ends, with the messages it sent."""
        stream_behavior: Callable[[Any, Any], AsyncIterator[Any]] = handler

        async def serve(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            metadata = _text_metadata(context)
            code, sent = grpc.StatusCode.OK, 0
            error: DomainError | EdgeError | None = None
            with (
                self._server_span(method, "", metadata) as span,
                structlog.contextvars.bound_contextvars(method=method),
            ):
                if not self._streams.try_enter():
                    code, error = grpc.StatusCode.RESOURCE_EXHAUSTED, self._streams_full
                else:
                    try:
                        caller = await self._admit(
                            request, metadata, context, span, method=method, capped=False
                        )
                        token = set_caller(caller)
                        try:
                            async for response in stream_behavior(request, context):
                                yield response
                                sent += 1
                        finally:
                            with contextlib.suppress(ValueError):  # closed from elsewhere
                                reset_caller(token)
                    except (DomainError, EdgeError) as failure:
                        span.set_attribute("moneymovement.reason", failure.reason.value)
                        code, error = code_of(failure), failure
                    except asyncio.CancelledError:
                        code = grpc.StatusCode.CANCELLED
                        raise
                    except Exception:
                        log.exception("rpc_failed")
                        code, error = grpc.StatusCode.INTERNAL, INTERNAL_ERROR
                    finally:
                        self._streams.leave()
                        elapsed = time.perf_counter() - started
                        rpc_telemetry.record_outcome(
                            span,
                            method,
                            _code(code),
                            fault=code in SERVER_FAULTS,
                            duration_s=elapsed,
                            stream=True,
                        )
                        log.info(
                            "rpc_finished",
                            code=code.name,
                            duration_ms=round(elapsed * 1000, 3),
                            messages_sent=sent,
                        )
            if error is not None:
                await abort(context, error)

        return serve

    async def _admit(
        self,
        request: Any,
        metadata: dict[str, str],
        context: grpc.aio.ServicerContext[Any, Any],
        span: trace.Span,
        *,
        method: str,
        capped: bool,
        admin: bool = False,
    ) -> Caller:
        """Who calls (authenticated), within its tenant's rate, with a decodable request:
        the caller, bound to the log context and the span; else raises the refusal.
        With `admin`, the caller must hold the admin token, and has no tenant."""
        if admin:
            caller = await self._admin_caller(metadata, context)
            span.set_attribute("moneymovement.actor", ADMIN_ACTOR)
            structlog.contextvars.bind_contextvars(actor=ADMIN_ACTOR, trace_id=caller.trace_id)
            if isinstance(request, Undecodable):
                raise request.refusal()
            return caller
        caller = await self._caller(metadata, context, capped=capped)
        span.set_attribute("moneymovement.tenant_id", caller.tenant_id)
        structlog.contextvars.bind_contextvars(tenant_id=caller.tenant_id, trace_id=caller.trace_id)
        if caller.holder_id is not None:
            span.set_attribute("moneymovement.holder_id", caller.holder_id)
            structlog.contextvars.bind_contextvars(holder_id=caller.holder_id)
        self._check_rate(caller.tenant_id)
        require_allowed(method, caller.holder_id)
        if isinstance(request, Undecodable):
            raise request.refusal()
        return caller

    def _check_rate(self, tenant_id: str) -> None:
        if not self._rate.enabled:
            return
        wait_s = self._rate.acquire(tenant_id)
        if wait_s:
            raise Throttled(
                EdgeReason.RATE_LIMITED,
                f"the tenant's rate limit ({self._rate.rate_per_s:g} calls/s, burst "
                f"{self._rate.burst:g}) is used up; nothing was done, retry after the "
                "RetryInfo delay",
                wait_s,
                self._rate_metadata,
            )

    def _server_span(
        self, method: str, request_id: str, metadata: dict[str, str]
    ) -> AbstractContextManager[trace.Span]:
        """The server span, continuing the caller's trace; none when spans are not made
        (no exporter): the trace id then comes from `traceparent` alone (see _caller).
        Named `moneymovement.v1.AccountService/GetAccount`, as the RPC conventions say."""
        if not spans_recorded():
            return contextlib.nullcontext(trace.INVALID_SPAN)
        attributes = rpc_telemetry.span_attributes(method)
        if request_id:
            attributes["moneymovement.request_id"] = request_id
        return tracer.start_as_current_span(
            method.lstrip("/"),
            context=extract_context(metadata),  # type: ignore[arg-type]
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    async def _serve(
        self,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        behavior: Behavior,
        metadata: dict[str, str],
        span: trace.Span,
        *,
        method: str,
        admin: bool = False,
    ) -> tuple[Any, grpc.StatusCode, DomainError | EdgeError | None]:
        """Runs the handler: (response, OK, None) or (None, code, the error to send)."""
        reset_attempts()
        if not self._concurrency.try_enter():
            span.set_attribute("moneymovement.reason", EdgeReason.OVERLOADED.value)
            return None, grpc.StatusCode.RESOURCE_EXHAUSTED, self._overloaded
        try:
            caller = await self._admit(
                request, metadata, context, span, method=method, capped=True, admin=admin
            )
            token = set_caller(caller)
            try:
                return await behavior(request, context), grpc.StatusCode.OK, None
            finally:
                reset_caller(token)
        except (DomainError, EdgeError) as error:
            span.set_attribute("moneymovement.reason", error.reason.value)
            return None, code_of(error), error
        except Exception:
            # Unexpected: log everything here, tell the caller nothing internal.
            log.exception("rpc_failed")
            return None, grpc.StatusCode.INTERNAL, INTERNAL_ERROR
        finally:
            self._concurrency.leave()

    async def _admin_caller(
        self, metadata: dict[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> Caller:
        """The admin, when the call carries the admin token (AdminGate.check), with the
        call's deadline capped as every call's; no tenant."""
        remaining = context.time_remaining()
        budget = self._max_deadline_s if remaining is None else min(remaining, self._max_deadline_s)
        deadline = asyncio.get_running_loop().time() + budget
        try:
            async with asyncio.timeout_at(deadline):  # a tenant token's lookup counts too
                await self._admin.check(
                    metadata.get("authorization", ""), self._directory.tenant_of
                )
        except TimeoutError as error:
            raise deadline_exceeded() from error
        trace_id = current_trace_id(metadata.get("traceparent"))
        return Caller(tenant_id="", deadline=deadline, trace_id=trace_id)

    async def _caller(
        self,
        metadata: dict[str, str],
        context: grpc.aio.ServicerContext[Any, Any],
        *,
        capped: bool = True,
    ) -> Caller:
        scheme, _, token = metadata.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise EdgeError(
                EdgeReason.TOKEN_MISSING, "send 'authorization: Bearer <token>' metadata"
            )
        remaining = context.time_remaining()
        budget = self._max_deadline_s if remaining is None else min(remaining, self._max_deadline_s)
        now = asyncio.get_running_loop().time()
        deadline = now + budget  # of the call, and of the token lookup below
        own = None if remaining is None else now + remaining  # a stream's: uncapped
        known, grant = self._directory.cached_grant_of(token.strip())
        if not known:
            try:
                async with asyncio.timeout_at(deadline):  # the token lookup counts too
                    grant = await self._directory.grant_of(token.strip())
            except TimeoutError as error:
                raise deadline_exceeded() from error
        if grant is None:
            raise EdgeError(EdgeReason.TOKEN_INVALID, "the token is unknown or revoked")
        trace_id = current_trace_id(metadata.get("traceparent"))
        return Caller(
            tenant_id=grant.tenant_id,
            deadline=deadline if capped else own,
            trace_id=trace_id,
            holder_id=acting_for(grant, metadata),
        )


class Undecodable:
    """Request bytes that are no valid encoding of the request message.

    grpc's own deserializer would raise and the caller would get UNKNOWN with Python's
    exception text; this stands in for the request instead, and is refused as bad input
    (after authentication: an unauthenticated caller learns nothing about its bytes).
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def refusal(self) -> InvalidInput:
        return InvalidInput(
            [
                FieldViolation(
                    "request",
                    FieldReason.INVALID_FORMAT,
                    f"the {self.size} bytes sent are not a valid protobuf encoding of the "
                    "request message",
                )
            ]
        )


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return Undecodable(len(data))

    return deserialize


def _cancelled_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """Why grpc cancelled a handler: its caller's deadline passed (the caller got
    DEADLINE_EXCEEDED), or the caller cancelled the call (CANCELLED). A handler whose own
    timer at that deadline ran first ends DEADLINE_EXCEEDED the ordinary way; grpc's
    cancellation may also come first, or interrupt what that timer started (a rollback),
    and the line must say the same either way."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= _DEADLINE_SLACK_S:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _fault(code: grpc.StatusCode, error: DomainError | EdgeError | None) -> bool:
    """Whether the server failed: a code of SERVER_FAULTS, except AdminService refused
    because it is off (UNIMPLEMENTED by configuration, not a failure)."""
    disabled = error is not None and error.reason is EdgeReason.ADMIN_DISABLED
    return code in SERVER_FAULTS and not disabled


def _code(code: grpc.StatusCode) -> tuple[str, int]:
    """The status code's name and number."""
    number: int = code.value[0]
    return code.name, number


def _text_metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """The invocation metadata as text (binary `-bin` values are left out)."""
    return {
        key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
    }


def _checked_first(
    check: Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]], inner: Any
) -> Any:
    """`inner` (a coroutine or async-generator handler) run after `check`, of the same kind:
    grpc.aio serves the two kinds differently."""
    if inspect.isasyncgenfunction(inner):

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await check(context)
            async for item in inner(request, context):
                yield item

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await check(context)
        return await inner(request, context)

    return call
