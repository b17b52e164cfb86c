"""The one interceptor every RPC passes through.

It binds the logging context, authenticates the bearer token, sets the caller (tenant,
deadline, trace id) for the servicer, turns domain errors into statuses through the one
error table, turns anything unexpected into a bare INTERNAL, and writes one canonical log
line per RPC with its code and duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog

from moneymovement.domain.errors import DomainError, Reason
from moneymovement.service.tenants import TenantDirectory
from moneymovement.service.unit_of_work import Caller
from moneymovement.transport.context import reset_caller, set_caller, trace_id_of
from moneymovement.transport.errors import INTERNAL_ERROR, abort, code_of

log = structlog.get_logger("moneymovement.rpc")

# Served without a token: probes and tooling must work before anyone has credentials.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, caller context, error mapping and the canonical log line."""

    def __init__(self, directory: TenantDirectory, *, max_deadline_s: float) -> None:
        self._directory = directory
        self._max_deadline_s = max_deadline_s

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        if handler.unary_unary is None:
            # Every RPC of ours is unary; a streaming one must not slip past authentication.
            raise RuntimeError(f"{method}: streaming RPCs need their own interceptor path")
        # grpc.aio handlers are coroutines; the stubs type them as sync ones.
        behavior: Behavior = handler.unary_unary  # type: ignore[assignment]
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method, behavior),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, behavior: Behavior) -> Behavior:
        async def serve(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            metadata = {key: value for key, value in context.invocation_metadata() or ()}
            trace_id = trace_id_of(_text(metadata.get("traceparent")))
            request_id = getattr(request, "request_id", "")
            code = grpc.StatusCode.OK
            fields: dict[str, Any] = {"method": method, "trace_id": trace_id}
            if request_id:
                fields["request_id"] = request_id
            with structlog.contextvars.bound_contextvars(**fields):
                try:
                    caller = await self._caller(metadata, context, trace_id)
                    structlog.contextvars.bind_contextvars(tenant_id=caller.tenant_id)
                    token = set_caller(caller)
                    try:
                        return await behavior(request, context)
                    finally:
                        reset_caller(token)
                except DomainError as error:
                    code = code_of(error)
                    await abort(context, error)
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    # Unexpected: log everything here, tell the caller nothing internal.
                    log.exception("rpc_failed")
                    code = grpc.StatusCode.INTERNAL
                    await abort(context, INTERNAL_ERROR)
                finally:
                    log.info(
                        "rpc_finished",
                        code=code.name,
                        duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    )

        return serve

    async def _caller(
        self,
        metadata: dict[str, str | bytes],
        context: grpc.aio.ServicerContext[Any, Any],
        trace_id: str | None,
    ) -> Caller:
        authorization = _text(metadata.get("authorization")) or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise DomainError(Reason.TOKEN_MISSING, "send 'authorization: Bearer <token>' metadata")
        tenant_id = await self._directory.tenant_of(token.strip())
        if tenant_id is None:
            raise DomainError(Reason.TOKEN_INVALID, "the token is unknown or revoked")
        remaining = context.time_remaining()
        budget = self._max_deadline_s if remaining is None else min(remaining, self._max_deadline_s)
        deadline = asyncio.get_running_loop().time() + budget
        return Caller(tenant_id=tenant_id, deadline=deadline, trace_id=trace_id)


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
