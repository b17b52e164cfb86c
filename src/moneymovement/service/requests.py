"""At most one effect per request id (invariant 4).

The outcome of a mutation is written in the same transaction as its effect, keyed by
(tenant, request_id). A repeat finds it and gets the same answer; a request id reused for
something else is refused. Two copies racing each other both run, but only one can commit
its outcome row: the other fails with a serialization conflict or a unique violation, is
retried as a unit, and then finds the winner's outcome. No second effect is possible
because the effect and its outcome row commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from moneymovement.domain.errors import DomainError, Reason, Rejected
from moneymovement.service.outcomes import fingerprint, rejection_from_json, rejection_to_json
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.outcomes import StoredOutcome
from moneymovement.storage.session import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one kind of result is stored in an outcome."""

    encode: Callable[[T], Any]
    decode: Callable[[Any], T]


@dataclass(frozen=True)
class _Refused:
    rejection: Rejected


async def run_once(
    uow: UnitOfWork,
    caller: Caller,
    request_id: str,
    method: str,
    command: object,
    codec: Codec[T],
    work: Callable[[Session], Awaitable[T]],
    on_commit: Callable[[T], None] | None = None,
) -> T:
    """Runs `work` at most once for this tenant and request id.

    `work` must decide before it writes: a Rejected raised after a write would commit
    that write along with the recorded rejection. `on_commit` runs once the effect is
    committed, and not for a replay: it logs domain events and counts what moved.

    Raises:
        Rejected: the business rejection, first time or replayed.
        DomainError: REQUEST_ID_REUSED, and the unit of work's own errors.
    """
    digest = fingerprint(method, command)

    async def attempt(session: Session, stored: StoredOutcome | None) -> T | _Refused:
        if stored is not None:
            if stored.fingerprint != digest:
                raise DomainError(
                    Reason.REQUEST_ID_REUSED,
                    "this request_id was already used for a different request",
                    {"request_id": request_id},
                )
            rejection = rejection_from_json(stored.outcome)
            if rejection is not None:
                return _Refused(rejection)
            return codec.decode(stored.outcome["result"])
        try:
            result = await work(session)
        except Rejected as rejection:
            await session.outcomes.save(request_id, digest, rejection_to_json(rejection))
            return _Refused(rejection)
        await session.outcomes.save(request_id, digest, {"result": codec.encode(result)})
        return result

    fresh = False

    async def first_time(session: Session) -> T | _Refused:
        nonlocal fresh
        fresh = session.prior_outcome is None
        return await attempt(session, session.prior_outcome)

    outcome = await uow.write(caller, first_time, request_id)
    if isinstance(outcome, _Refused):
        raise outcome.rejection
    if fresh and on_commit is not None:
        on_commit(outcome)
    return outcome
