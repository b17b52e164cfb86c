"""The caller of the RPC being served, set by the interceptor, read by servicers."""

from __future__ import annotations

import contextvars

from moneymovement.service.unit_of_work import Caller

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("moneymovement_caller")


def current_caller() -> Caller:
    """The authenticated caller of the current RPC."""
    return _caller.get()


def set_caller(caller: Caller) -> contextvars.Token[Caller]:
    """Binds the caller for the rest of the RPC."""
    return _caller.set(caller)


def reset_caller(token: contextvars.Token[Caller]) -> None:
    """Unbinds the caller at the end of the RPC."""
    _caller.reset(token)
