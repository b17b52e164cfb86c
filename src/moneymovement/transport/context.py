"""The caller of the RPC being served, set by the interceptor, read by servicers."""

from __future__ import annotations

import contextvars
import re

from moneymovement.service.unit_of_work import Caller

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("moneymovement_caller")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def current_caller() -> Caller:
    """The authenticated caller of the current RPC."""
    return _caller.get()


def set_caller(caller: Caller) -> contextvars.Token[Caller]:
    """Binds the caller for the rest of the RPC."""
    return _caller.set(caller)


def reset_caller(token: contextvars.Token[Caller]) -> None:
    """Unbinds the caller at the end of the RPC."""
    _caller.reset(token)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, or None when absent or invalid."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None or match[1] == "0" * 32:
        return None
    return match[1]
