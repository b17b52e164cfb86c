"""The write pipeline: every mutation is a command, and commands commit in groups.

`submit` queues a command and waits for its own answer. Whenever a writer is free, it
takes every command waiting for one tenant (up to MAX_BATCH_ITEMS) that touches nothing
a running batch holds, and applies them in ONE SERIALIZABLE transaction
(service/write_batch.py): one statement locks everything they touch in a fixed order,
the domain decides each command in arrival order against the running state (each gets
its own result or its own rejection, and one command's rejection never fails another),
one statement writes every effect and outcome, COMMIT; then each caller is answered.
No timer: a lone request on an idle server goes at once, and under load a batch is
whatever arrived while the previous one was in the database.

Routing. Each command has keys: its accounts, the transfers it changes (and, for an
open hold this process made, its accounts), its request id and claimed external ids.
A command whose keys meet those of a running batch, or of a command ahead of it in the
queue, waits for a later batch: within a process, batches never conflict with each
other, an account's commands are decided in arrival order, and two copies of one request
never run at once. Across processes (replicas, workers) the database decides, and a
conflict (40001/40P01) retries the whole batch as a unit, with jittered backoff, within
the members' deadlines.

Failure isolation. A batch that fails for any reason other than a conflict, the database
being unreachable or time running out is split in two and each half is run again, down
to the one command that fails, which alone gets the error. Every command is answered
exactly once.

Deadlines. A command whose deadline passed before its batch starts is answered
DEADLINE_EXCEEDED and never executed. A caller whose deadline passes while its batch is
in the database gets DEADLINE_EXCEEDED at once, but its command may still commit with
the batch: a resend with the same request id then returns the committed outcome.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from opentelemetry import trace

from moneymovement.domain.commands import Command
from moneymovement.domain.errors import (
    DomainError,
    Reason,
    database_unavailable,
    deadline_exceeded,
)
from moneymovement.domain.holder_scope import recorded_request_id
from moneymovement.domain.transfers import Transfer, TransferState
from moneymovement.observability import metrics
from moneymovement.observability.tracing import spans_recorded
from moneymovement.service import events
from moneymovement.service.idempotency import digest_of
from moneymovement.service.unit_of_work import Caller, RetryPolicy
from moneymovement.service.write_batch import (
    Answer,
    BatchTransaction,
    Pending,
    effects_of,
    emit_events,
    transaction_span,
)
from moneymovement.storage.errors import DatabaseUnavailable, SerializationConflict
from moneymovement.storage.session import Database

R = TypeVar("R")
log = structlog.get_logger("moneymovement.pipeline")

# Commands in one transaction (a CreateTransfers counts as its items): large enough that
# one transaction moves what the database could not do one at a time, small enough that
# a batch's statement stays a few milliseconds (docs/performance.md).
MAX_BATCH_ITEMS = 256
# Write transactions at once per process. One: on a few cores the next batch forms while
# one is in the database, and two batches of one process could only conflict with each
# other (SSI locks B-tree pages, not just rows): measured in docs/performance.md.
WRITERS = 1
# Open holds whose accounts this process remembers, to route their captures and voids.
_REMEMBERED_HOLDS = 100_000

# Transaction attempts made for the current request, for its log line and span.
_attempts: contextvars.ContextVar[int] = contextvars.ContextVar("attempts", default=0)

Key = tuple[str, str]  # (kind, id) within a tenant


def attempts_made() -> int:
    """Transaction attempts made for the current request (0 for reads)."""
    return _attempts.get()


def reset_attempts() -> None:
    """Starts counting attempts for a new request."""
    _attempts.set(0)


@dataclass
class _Batch:
    tenant_id: str
    items: list[Pending]
    keys: set[Key] = field(default_factory=set)


class WritePipeline:
    """Queues commands and commits them in groups (one instance per process)."""

    def __init__(
        self,
        database: Database,
        policy: RetryPolicy | None = None,
        *,
        max_batch_items: int = MAX_BATCH_ITEMS,
        writers: int = WRITERS,
    ) -> None:
        self._transaction = BatchTransaction(database)
        self._policy = policy or RetryPolicy()
        self._max_items = max_batch_items
        self._writers = writers
        self._waiting: dict[str, deque[Pending]] = {}
        self._busy: dict[str, set[Key]] = {}  # per tenant, keys of running batches
        self._running: set[asyncio.Task[None]] = set()
        self._accounts_of: dict[Key, tuple[str, str]] = {}
        self.batches_committed = 0  # for tests and curious operators

    async def submit(self, caller: Caller, request_id: str, command: Command[R]) -> R:
        """Runs `command` once for this tenant and request id; returns its result.

        Raises:
            Rejected: the command's business rejection, first time or replayed.
            InvalidInput: input found invalid inside the transaction.
            DomainError: REQUEST_ID_REUSED, DEADLINE_EXCEEDED, CONCURRENCY_CONFLICT,
                REQUEST_IN_PROGRESS, DATABASE_UNAVAILABLE.
        """
        # Acting for a holder, request ids are the holder's own (domain/holder_scope.py).
        request_id = recorded_request_id(caller.holder_id, request_id)
        loop = asyncio.get_running_loop()
        pending = Pending(
            caller,
            request_id,
            command,
            digest_of(command) if command.recorded else b"",
            self._keys(caller.tenant_id, request_id, command),
            loop.create_future(),
            span=trace.get_current_span().get_span_context() if spans_recorded() else None,
        )
        self._waiting.setdefault(caller.tenant_id, deque()).append(pending)
        self._dispatch()
        # The future itself is cancelled when the caller gives up (its deadline, or its RPC
        # cancelled): the batch's answer() then finds it done, and the batch goes on.
        try:
            async with asyncio.timeout_at(caller.deadline):
                answer = await pending.future
        except (TimeoutError, asyncio.CancelledError) as error:
            if pending.future.done() and not pending.future.cancelled():
                answer = pending.future.result()  # answered in the very turn time ran out
            else:
                pending.abandoned = True
                if isinstance(error, asyncio.CancelledError):
                    raise
                raise deadline_exceeded() from error
        _attempts.set(_attempts.get() + answer.attempts)
        if answer.error is not None:
            raise answer.error
        if answer.fresh:
            emit_events(command, answer.result, own_line=not command.recorded)
        return answer.result  # type: ignore[no-any-return]

    async def drain(self) -> None:
        """Waits for every running batch (for a graceful stop and for tests)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _keys(self, tenant_id: str, request_id: str, command: Command[Any]) -> frozenset[Key]:
        keys: set[Key] = {("account", a) for a in command.account_ids()}
        for transfer_id in command.transfer_ids():
            keys.add(("transfer", transfer_id))
            known = self._accounts_of.get((tenant_id, transfer_id))
            if known is not None:
                keys.update(("account", a) for a in known)
        keys.update(("external_id", x) for x in command.external_ids())
        keys.update(("monitor", m) for m in command.monitor_ids())
        if command.recorded:
            keys.add(("request", request_id))
        return frozenset(keys)

    def _dispatch(self) -> None:
        """Starts batches while writers are free and commands can go."""
        while len(self._running) < self._writers:
            batch = self._take()
            if batch is None:
                return
            self._busy.setdefault(batch.tenant_id, set()).update(batch.keys)
            # A context of its own: the batch serves many requests (of other tenants
            # too), so it must not inherit the dispatching request's span or log fields.
            task = asyncio.create_task(
                self._run(batch), name="write-batch", context=contextvars.Context()
            )
            self._running.add(task)

    def _take(self) -> _Batch | None:
        """The next batch: for the first tenant (round robin) with a command that can go,
        every waiting command of that tenant that meets no running batch and no command
        left waiting ahead of it, up to the size cap."""
        for tenant_id in list(self._waiting):
            queue = self._waiting.pop(tenant_id)
            batch = _Batch(tenant_id, [])
            blocked = set(self._busy.get(tenant_id, ()))
            left: deque[Pending] = deque()
            size = 0
            for pending in queue:
                if pending.abandoned:
                    pending.answer(Answer(error=deadline_exceeded()))
                    continue
                items = pending.command.items()
                full = bool(batch.items) and size + items > self._max_items
                if full or not blocked.isdisjoint(pending.keys):
                    left.append(pending)
                    blocked.update(pending.keys)  # nothing behind it may overtake it
                    continue
                batch.items.append(pending)
                batch.keys.update(pending.keys)
                size += items
            if left:
                self._waiting[tenant_id] = left  # re-inserted last: round robin
            if batch.items:
                return batch
        return None

    async def _run(self, batch: _Batch) -> None:
        try:
            await self._execute(batch.tenant_id, batch.items)
        except BaseException as error:  # never leave a caller without an answer
            for pending in batch.items:
                pending.answer(Answer(error=error))
            if not isinstance(error, Exception):
                raise
            log.exception("write_batch_crashed")
        finally:
            self._busy[batch.tenant_id].difference_update(batch.keys)
            if not self._busy[batch.tenant_id]:
                del self._busy[batch.tenant_id]
            task = asyncio.current_task()
            self._running.discard(task)
            self._dispatch()

    async def _execute(self, tenant_id: str, items: list[Pending]) -> None:
        """Commits `items` in one transaction, retried on conflicts, split on failures."""
        policy = self._policy
        loop = asyncio.get_running_loop()
        retry_reason = ""
        for attempt in range(1, policy.max_attempts + 1):
            items = _still_waited_for(items, loop.time())
            if not items:
                return
            attributes: dict[str, str | int] = {
                "moneymovement.transaction.attempt": attempt,
                "moneymovement.batch_size": len(items),
            }
            if retry_reason:
                attributes["moneymovement.transaction.retry_reason"] = retry_reason
            try:
                with transaction_span(attributes, items):
                    async with asyncio.timeout_at(_latest_deadline(items)):
                        answers = await self._transaction.commit(tenant_id, items)
            except SerializationConflict as conflict:
                if attempt == policy.max_attempts:
                    metrics.tx_aborts.add(len(items))
                    lone = conflict.on_request_id and len(items) == 1
                    _answer_all(items, functools.partial(_exhausted, lone), attempt)
                    return
                retry_reason = "request_id" if conflict.on_request_id else "serialization"
                metrics.tx_retries.add(1, {"reason": retry_reason})
                backoff = min(policy.max_backoff_s, policy.first_backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(0, backoff))
                continue
            except DatabaseUnavailable:
                _answer_all(items, database_unavailable, attempt)
                return
            except TimeoutError:
                _answer_all(items, deadline_exceeded, attempt)
                return
            except Exception as error:
                if len(items) == 1:
                    log.error("write_command_failed", method=items[0].command.method)
                    items[0].answer(Answer(error=error, attempts=attempt))
                    return
                log.warning("write_batch_split", size=len(items), error=repr(error))
                middle = len(items) // 2
                await self._execute(tenant_id, items[:middle])
                await self._execute(tenant_id, items[middle:])
                return
            self._committed(tenant_id, items, answers, attempt)
            return

    def _committed(
        self, tenant_id: str, items: list[Pending], answers: list[Answer], attempt: int
    ) -> None:
        self.batches_committed += 1
        for pending, answer in zip(items, answers, strict=True):
            answer.attempts = attempt
            pending.answer(answer)  # committed: every caller learns it before anything else
        try:
            self._remember(tenant_id, items, answers)
        except Exception:  # bookkeeping must never turn a committed answer into an error
            log.exception("write_bookkeeping_failed")

    def _remember(self, tenant_id: str, items: list[Pending], answers: list[Answer]) -> None:
        """Metrics of a committed batch, and the accounts of its open holds (to route
        their captures and voids), forgotten when they end."""
        metrics.write_commits.add(1)
        metrics.write_batch_size.record(len(items))
        if len(self._accounts_of) > _REMEMBERED_HOLDS:
            self._accounts_of.clear()  # a bound, not a cache policy: misses only cost a retry
        created: list[Transfer] = []
        changed: list[Transfer] = []
        for pending, answer in zip(items, answers, strict=True):
            if answer.fresh:
                new, steps = effects_of(pending.command, answer.result)
                created += new
                changed += steps
        for transfer in created:
            if transfer.state is TransferState.PENDING:
                key = (tenant_id, transfer.id)
                self._accounts_of[key] = (transfer.debit_account_id, transfer.credit_account_id)
        for hold in changed:
            if hold.state is not TransferState.PENDING:  # a partial capture leaves it open
                self._accounts_of.pop((tenant_id, hold.id), None)
        events.count(created, changed)


def _still_waited_for(items: list[Pending], now: float) -> list[Pending]:
    """Drops the commands whose caller gave up or whose deadline passed: they are
    answered so, and never executed."""
    kept = []
    for pending in items:
        if pending.gone(now):
            pending.answer(Answer(error=deadline_exceeded()))
        else:
            kept.append(pending)
    return kept


def _latest_deadline(items: Sequence[Pending]) -> float | None:
    deadlines = [p.caller.deadline for p in items]
    return None if None in deadlines else max(d for d in deadlines if d is not None)


def _answer_all(
    items: Sequence[Pending], error: Callable[[], BaseException], attempts: int
) -> None:
    """Answers each with an error of its own (one object raised in many tasks would mix
    their tracebacks)."""
    for pending in items:
        pending.answer(Answer(error=error(), attempts=attempts))


def _exhausted(on_request_id: bool) -> DomainError:
    """ABORTED, retries spent. REQUEST_IN_PROGRESS only for a batch of one whose own
    request id kept colliding: in a larger batch, the others' requests are not in
    progress anywhere."""
    if on_request_id:
        return DomainError(
            Reason.REQUEST_IN_PROGRESS,
            "a request with this request_id is being processed; retry to get its outcome",
        )
    return DomainError(
        Reason.CONCURRENCY_CONFLICT,
        "the transaction kept conflicting with concurrent ones; retry with the same request_id",
    )
