"""One batch of commands in one SERIALIZABLE transaction: lock, decide, write, commit.

The write pipeline (service/pipeline.py) decides which commands go together and retries
or splits a batch; this module runs one attempt of it. The recorded outcomes of the
batch's request ids are read outside the transaction (storage/sql/ledger.sql says why),
on another connection while BEGIN and the locks go on; then the domain decides each
command in arrival order on the running state (domain/ledger.py), idempotency rules
decide which commands run at all (service/idempotency.py), and one statement writes
every effect and outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import structlog
from opentelemetry import trace

from moneymovement.domain.commands import Command, CreateTransfers
from moneymovement.domain.errors import DomainError, InvalidInput, Rejected, deadline_exceeded
from moneymovement.domain.ledger import Issued, Ledger
from moneymovement.domain.transfers import Transfer, TransferSpec
from moneymovement.observability import metrics
from moneymovement.observability.tracing import spans_recorded, tracer
from moneymovement.service import events
from moneymovement.service.idempotency import Deduplicator, Replay, Twin, outcome_of
from moneymovement.service.unit_of_work import Caller
from moneymovement.storage.ledger import NewOutcome, StoredOutcome
from moneymovement.storage.session import Database, Session

# Other members' request spans an attempt's span links to.
_SPAN_LINKS = 32


@dataclass
class Answer:
    """What one command of a batch gets: its result or error, whether its effect was
    committed now (its events are due), and the transaction attempts it took."""

    result: Any = None
    error: BaseException | None = None
    fresh: bool = False  # an effect committed now, not a replay: its events are due
    attempts: int = 0


@dataclass(eq=False)
class Pending:
    """A command waiting for its answer: who asked, what, its request fingerprint, the
    keys that keep batches apart, and the future its caller waits on."""

    caller: Caller
    request_id: str
    command: Command[Any]
    digest: bytes
    keys: frozenset[tuple[str, str]]
    future: asyncio.Future[Answer]
    abandoned: bool = False  # the caller stopped waiting (deadline, cancellation)
    # The caller's context, taken when it submitted (a copy is O(1)): the log fields of
    # its request (method, request id, tenant, trace) for a line if it leaves before the
    # commit; taken at once, since a caller's own task may not run again before then.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    span: trace.SpanContext | None = None  # the request's, when spans are made

    def gone(self, now: float) -> bool:
        """Whether the caller gave up, or its deadline has passed."""
        deadline = self.caller.deadline
        return self.abandoned or (deadline is not None and deadline <= now)

    def answer(self, answer: Answer) -> None:
        if self.future.done():  # cancelled: the caller gave up; nobody else will tell
            if answer.fresh:
                # Committed after the caller left (another member's deadline kept the
                # batch going): a line of its own, with the request's method and request
                # id, so the log says the money moved though the caller got an error.
                self.context.run(_tell_committed_after_leaving, self.command, answer.result)
            return
        self.future.set_result(answer)


def _tell_committed_after_leaving(command: Command[Any], result: Any) -> None:
    structlog.contextvars.bind_contextvars(caller_gone=True)  # in the copy only
    emit_events(command, result, own_line=True)


class BatchTransaction:
    """Runs attempts of batches on one Database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def commit(self, tenant_id: str, items: Sequence[Pending]) -> list[Answer]:
        """One transaction for `items`: lock and read, decide, write, commit. The recorded
        outcomes of their request ids are read outside the transaction (storage/sql/
        ledger.sql says why), on another connection while BEGIN and the locks go on."""
        request_ids = {p.request_id for p in items if p.command.recorded}
        recorded = asyncio.ensure_future(self._recorded(tenant_id, request_ids))
        try:
            async with self._database.session(tenant_id, write=True) as session:
                snapshot = await session.ledger.lock(
                    {a for p in items for a in p.command.account_ids()},
                    {t for p in items for t in p.command.transfer_ids()},
                    {x for p in items for x in p.command.external_ids()},
                    {a for p in items for a in p.command.funds_account_ids()},
                    {f for p in items for f in p.command.named_funds_ids()},
                    {m for p in items for m in p.command.monitor_ids()},
                    {r for p in items for r in p.command.record_ids()},
                    {c for p in items for c in p.command.asset_codes()},
                    any(p.command.counts_assets for p in items),
                    {h for p in items for h in p.command.holder_ids()},
                    {e for p in items for e in p.command.holder_external_ids()},
                    {h for p in items for h in p.command.counted_holder_ids()},
                    {a for p in items for a in p.command.closed_account_ids()},
                )
                ledger = Ledger(
                    snapshot.now,
                    snapshot.accounts,
                    snapshot.transfers,
                    snapshot.taken_external_ids,
                    snapshot.funds,
                    snapshot.monitors,
                    snapshot.debit_usage,
                    snapshot.records,
                    snapshot.assets,
                    snapshot.asset_count,
                    snapshot.holders,
                    snapshot.reserve_debts_owed,
                )
                dedup = Deduplicator(await recorded)
                answers, told = await self._decide_and_write(items, session, ledger, dedup)
            metrics.events_written.add(told)  # committed: the session ended without error
            return answers
        finally:
            if not recorded.done():
                recorded.cancel()
            await asyncio.gather(recorded, return_exceptions=True)  # never left unretrieved

    async def _recorded(self, tenant_id: str, request_ids: set[str]) -> dict[str, StoredOutcome]:
        if not request_ids:
            return {}
        async with self._database.reader(tenant_id) as reader:
            return await reader.ledger.outcomes(request_ids)

    async def _decide_and_write(
        self, items: Sequence[Pending], session: Session, ledger: Ledger, dedup: Deduplicator
    ) -> tuple[list[Answer], int]:
        """Each command decided in order on the running state, then one write of all:
        the answers, and how many events were written."""
        answers: list[Answer] = []
        outcomes: list[NewOutcome] = []
        now = asyncio.get_running_loop().time()
        for index, pending in enumerate(items):
            command, request_id = pending.command, pending.request_id
            if pending.gone(now):  # its time ran out while the batch began: never run
                answers.append(Answer(error=deadline_exceeded()))
                continue
            earlier = dedup.check(index, command, request_id, pending.digest)
            if isinstance(earlier, Twin):
                twin = answers[earlier.index]
                answers.append(Answer(twin.result, twin.error))
                continue
            if isinstance(earlier, Replay):
                replayed = earlier.answer
                if isinstance(replayed, DomainError):
                    answers.append(Answer(error=replayed))
                else:
                    answers.append(Answer(result=replayed))
                continue
            try:
                caller = pending.caller
                result = ledger.apply(
                    command, Issued(request_id, caller.trace_id, caller.holder_id)
                )
            except Rejected as rejection:
                answers.append(Answer(error=rejection))
                if command.recorded:
                    outcomes.append(outcome_of(command, request_id, pending.digest, rejection))
                continue
            except InvalidInput as invalid:  # not recorded: a repeat decides afresh
                answers.append(Answer(error=invalid))
                continue
            answers.append(Answer(result=result, fresh=True))
            if command.recorded:
                outcomes.append(outcome_of(command, request_id, pending.digest, result))
        writes = ledger.writes()
        if writes or outcomes:
            await session.ledger.write(writes, outcomes, ledger.now)
        return answers, len(writes.events)


def transaction_span(
    attributes: dict[str, str | int], items: Sequence[Pending]
) -> AbstractContextManager[object]:
    """The attempt's span: a child of its first member's request span (always of the
    batch's own tenant), linked to the other members' (up to _SPAN_LINKS)."""
    if not spans_recorded():
        return contextlib.nullcontext()
    spans = [p.span for p in items if p.span is not None and p.span.is_valid]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(spans[0])) if spans else None
    links = [trace.Link(span) for span in spans[1 : _SPAN_LINKS + 1]]
    return tracer.start_as_current_span(
        "transaction", context=parent, attributes=attributes, links=links
    )


def transfers_in(result: Any) -> list[Transfer]:
    if isinstance(result, Transfer):
        return [result]
    if isinstance(result, list | tuple):
        return [t for t in result if isinstance(t, Transfer)]
    return []


def effects_of(command: Command[Any], result: Any) -> tuple[list[Transfer], list[Transfer]]:
    """What a fresh effect did to money: (transfers it created, holds it changed)."""
    if result is None:
        return [], []
    if command.method in ("PostTransfer", "VoidTransfer", "ExpireHold", "IncrementHold",
                          "ExtendHold"):  # fmt: skip
        return [], [result]
    if command.method == "ReverseTransfer":
        return [result[0]], []
    if command.method == "ReleaseFunds":
        return ([] if result.fee_transfer is None else [result.fee_transfer]), []
    if isinstance(command, CreateTransfers):  # its items: new transfers, or holds changed
        pairs = list(zip(command.specs, result, strict=True))
        return (
            [t for spec, t in pairs if isinstance(spec, TransferSpec)],
            [t for spec, t in pairs if not isinstance(spec, TransferSpec)],
        )
    return transfers_in(result), []


def emit_events(command: Command[Any], result: Any, *, own_line: bool) -> None:
    """Tells what a fresh effect did (never for a replay); counting is per batch."""
    created, changed = effects_of(command, result)
    if command.method == "CreateTransfers" and changed:
        events.batch_operations(created, changed, own_line=own_line)
        return
    if created:
        events.transfers_created(created, own_line=own_line)
    for hold in changed:
        events.hold_changed(hold, own_line=own_line)
