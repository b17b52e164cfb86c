"""At most one effect per request id (invariant 4).

The outcome of a mutation is written in the same transaction as its effect, keyed by
(tenant, request_id), in the very statement that writes the effect when there is one. A
repeat finds it and gets the same answer; a request id reused for something else is
refused. Two copies racing each other both run, but only one can commit its outcome row:
the other fails with a serialization conflict or a unique violation, is retried as a
unit, and then finds the winner's outcome. No second effect is possible because the
effect and its outcome row commit together or not at all.

The first attempt does not look for an earlier outcome: nearly every request is new, and
a repeat is caught by the outcome's key anyway (its transaction fails, and the retry
looks). Only an error that is not recorded, and so never reaches that key (InvalidInput
found inside the transaction, such as a hold expiry that is out of range by now), makes it
look afterwards, so that a repeat still gets the recorded answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from moneymovement.domain.errors import DomainError, Reason, Rejected
from moneymovement.service.outcomes import fingerprint, rejection_from_json, rejection_to_json
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.outcomes import NewOutcome
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


def outcome_of(request_id: str, digest: bytes, answer: T | Rejected, codec: Codec[T]) -> NewOutcome:
    """How a request's answer is recorded: its rejection, or its encoded result."""
    if isinstance(answer, Rejected):
        return NewOutcome(request_id, digest, rejection_to_json(answer))
    return NewOutcome(request_id, digest, {"result": codec.encode(answer)})


async def run_once(
    uow: UnitOfWork,
    caller: Caller,
    request_id: str,
    method: str,
    command: object,
    codec: Codec[T],
    work: Callable[[Session], Awaitable[T]],
    on_commit: Callable[[T], None] | None = None,
    accounts: Collection[str] = (),
) -> T:
    """Runs `work` at most once for this tenant and request id.

    `accounts`: those `work` will lock, when known beforehand (UnitOfWork.write).

    `work` must decide before it writes: postings staged before a Rejected are dropped,
    and only the rejection is recorded. `on_commit` runs once the effect is committed,
    and not for a replay: it logs domain events and counts what moved.

    Raises:
        Rejected: the business rejection, first time or replayed.
        DomainError: REQUEST_ID_REUSED, and the unit of work's own errors.
    """
    digest = fingerprint(method, command)
    fresh = False

    async def attempt(session: Session) -> T | _Refused:
        nonlocal fresh
        try:
            result = await work(session)
        except Rejected as rejection:
            session.transfers.discard()
            await session.record_outcome(outcome_of(request_id, digest, rejection, codec))
            fresh = True
            return _Refused(rejection)
        await session.record_outcome(outcome_of(request_id, digest, result, codec))
        fresh = True
        return result

    async def recorded() -> T | _Refused | None:
        nonlocal fresh
        stored = await uow.read(caller, lambda session: session.outcomes.find(request_id))
        if stored is None:
            return None
        fresh = False
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
        outcome = await uow.write(caller, attempt, before_retry=recorded, accounts=accounts)
    except DomainError as error:
        if error.reason in _NOT_ABOUT_THE_REQUEST:
            raise
        earlier = await recorded()
        if earlier is None:
            raise
        outcome = earlier
    if isinstance(outcome, _Refused):
        raise outcome.rejection
    if fresh and on_commit is not None:
        on_commit(outcome)
    return outcome


# Failures of the database or of time, not answers to the request: looking up an
# earlier outcome could not help (and could not succeed either).
_NOT_ABOUT_THE_REQUEST = frozenset(
    {
        Reason.DATABASE_UNAVAILABLE,
        Reason.DEADLINE_EXCEEDED,
        Reason.CONCURRENCY_CONFLICT,
        Reason.REQUEST_IN_PROGRESS,
        Reason.REQUEST_ID_REUSED,
    }
)
