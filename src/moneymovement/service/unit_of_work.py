"""One RPC, one transaction, retried as a unit within the caller's deadline.

A SERIALIZABLE transaction that loses a race (40001, 40P01, or a duplicate request id)
wrote nothing, so the whole use case runs again on a fresh snapshot, after a jittered
exponential pause: retrying at once tends to hit the same pivot transaction again.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from moneymovement.domain.errors import (
    DomainError,
    Reason,
    database_unavailable,
    deadline_exceeded,
)
from moneymovement.observability import metrics
from moneymovement.observability.tracing import tracer
from moneymovement.service.account_queue import AccountQueue
from moneymovement.storage.errors import DatabaseUnavailable, SerializationConflict
from moneymovement.storage.session import Database, Session

T = TypeVar("T")
# Transaction attempts made for the current request, for its log line and span.
_attempts: contextvars.ContextVar[int] = contextvars.ContextVar("attempts", default=0)


def reset_attempts() -> None:
    """Starts counting attempts for a new request."""
    _attempts.set(0)


def attempts_made() -> int:
    """Transaction attempts made so far for the current request."""
    return _attempts.get()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a conflicting transaction is retried."""

    max_attempts: int = 12
    first_backoff_s: float = 0.002
    max_backoff_s: float = 0.1


@dataclass(frozen=True)
class Caller:
    """Who asks, and until when: the tenant, the absolute deadline in event-loop time
    (None: no deadline) and the W3C trace id of the request, when it came with one."""

    tenant_id: str
    deadline: float | None = None
    trace_id: str | None = None


class UnitOfWork:
    """Runs use cases in transactions on one Database."""

    def __init__(self, database: Database, policy: RetryPolicy | None = None) -> None:
        self.database = database
        self._policy = policy or RetryPolicy()
        self.queue = AccountQueue()

    async def write(
        self,
        caller: Caller,
        work: Callable[[Session], Awaitable[T]],
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
        accounts: Collection[str] = (),
    ) -> T:
        """Runs `work` in a SERIALIZABLE transaction, retried on conflicts.

        Before each retry, `before_retry` may answer instead (not None): a request whose
        duplicate committed meanwhile is answered from that duplicate's outcome.
        `accounts`, the accounts `work` will lock when known beforehand, are waited for
        in this process first (service/account_queue.py): hot accounts then queue
        instead of failing each other.

        Raises:
            DomainError: CONCURRENCY_CONFLICT or REQUEST_IN_PROGRESS when the retries run
                out, DEADLINE_EXCEEDED, DATABASE_UNAVAILABLE; and whatever `work` raises.
        """
        if not accounts:
            return await self._write(caller, work, before_retry)
        try:
            async with self.queue.turn(caller.tenant_id, accounts, caller.deadline):
                return await self._write(caller, work, before_retry)
        except TimeoutError as error:  # only the queue raises it; attempts translate theirs
            raise DomainError(
                Reason.DEADLINE_EXCEEDED, "the deadline passed while waiting for the accounts"
            ) from error

    async def _write(
        self,
        caller: Caller,
        work: Callable[[Session], Awaitable[T]],
        before_retry: Callable[[], Awaitable[T | None]] | None,
    ) -> T:
        policy = self._policy
        retry_reason = ""
        for attempt in range(1, policy.max_attempts + 1):
            _attempts.set(_attempts.get() + 1)
            attributes: dict[str, str | int] = {"db.transaction.attempt": attempt}
            if retry_reason:
                attributes["db.transaction.retry_reason"] = retry_reason
            try:
                if attempt > 1 and before_retry is not None:
                    answer = await before_retry()
                    if answer is not None:
                        return answer
                with tracer.start_as_current_span("transaction", attributes=attributes):
                    return await self._attempt(caller, work, write=True)
            except SerializationConflict as conflict:
                retry_reason = "request_id" if conflict.on_request_id else "serialization"
                if attempt == policy.max_attempts:
                    metrics.tx_aborts.add(1)
                    raise _exhausted(conflict) from conflict
                metrics.tx_retries.add(1, {"reason": retry_reason})
                backoff = min(policy.max_backoff_s, policy.first_backoff_s * 2**attempt)
                await self._sleep(caller, random.uniform(0, backoff), conflict)
        raise AssertionError("unreachable: the loop returns or raises")

    async def read(self, caller: Caller, work: Callable[[Session], Awaitable[T]]) -> T:
        """Runs `work` in a read-only snapshot (no retries are ever needed)."""
        return await self._attempt(caller, work, write=False)

    async def _attempt(
        self,
        caller: Caller,
        work: Callable[[Session], Awaitable[T]],
        *,
        write: bool,
    ) -> T:
        try:
            async with asyncio.timeout_at(caller.deadline):
                async with self.database.session(caller.tenant_id, write=write) as session:
                    return await work(session)
        except TimeoutError as error:
            raise deadline_exceeded() from error
        except DatabaseUnavailable as error:
            raise database_unavailable() from error

    async def _sleep(self, caller: Caller, pause_s: float, conflict: SerializationConflict) -> None:
        loop = asyncio.get_running_loop()
        if caller.deadline is not None and loop.time() + pause_s >= caller.deadline:
            raise DomainError(
                Reason.DEADLINE_EXCEEDED, "the deadline passed while retrying a conflict"
            ) from conflict
        await asyncio.sleep(pause_s)


def _exhausted(conflict: SerializationConflict) -> DomainError:
    if conflict.on_request_id:
        return DomainError(
            Reason.REQUEST_IN_PROGRESS,
            "a request with this request_id is being processed; retry to get its outcome",
        )
    return DomainError(
        Reason.CONCURRENCY_CONFLICT,
        "the transaction kept conflicting with concurrent ones; retry with the same request_id",
    )
