"""At most one effect per request id (invariant 4): every rule of it, in one place.

A recorded command's outcome (its result, or its business rejection) is written with its
effect, in the same statement of the same transaction, keyed by (tenant, request_id).
Just before a batch's transaction, the outcomes of all its request ids are read in one
statement (storage/sql/ledger.sql, find_outcomes). Then, command by command
(`Deduplicator`):

- a request id with a recorded outcome is not run again: the same request gets the
  recorded answer (a rejection too); another request with that id gets REQUEST_ID_REUSED;
- a request id seen earlier in the same batch: the same request shares the first one's
  answer, another gets REQUEST_ID_REUSED;
- otherwise the command runs, and its outcome is recorded.

Two copies racing each other in different processes both run, but only one can commit
its outcome row: the other's transaction fails on the key, is retried as a unit, and then
finds the winner's outcome. Within one process the pipeline never runs two batches
holding the same request id at once (service/pipeline.py).

Not recorded, so a repeat is decided afresh: bad input, the sweeper's expiries, and every
failure that is not an answer to the request (conflicts, deadlines, the database down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moneymovement.domain.commands import (
    CancelPayout,
    CloseAccount,
    Command,
    CreateAccount,
    CreateBalanceMonitor,
    CreateExternalAccount,
    CreateHolder,
    CreatePayout,
    CreateTransfer,
    CreateTransfers,
    DeleteBalanceMonitor,
    DisableExternalAccount,
    ExtendHold,
    FreezeAccount,
    IncrementHold,
    PostTransfer,
    ReceiveInbound,
    RegisterAsset,
    ReleaseFunds,
    ReverseTransfer,
    UnfreezeAccount,
    UpdateAccount,
    UpdateHolder,
    VoidTransfer,
)
from moneymovement.domain.errors import DomainError, Reason, Rejected
from moneymovement.domain.payouts import ExternalAccount, InboundTransfer, Payout
from moneymovement.service.outcomes import (
    account_from_json,
    account_to_json,
    fingerprint,
    rejection_from_json,
    rejection_to_json,
    release_from_json,
    release_to_json,
    transfer_from_json,
    transfer_to_json,
)
from moneymovement.storage.asset_rows import asset_document, asset_from_row
from moneymovement.storage.holder_rows import holder_document, holder_from_row
from moneymovement.storage.ledger import NewOutcome, StoredOutcome
from moneymovement.storage.rail_rows import record_document, record_from_row
from moneymovement.storage.rows import monitor_document, monitor_from_document


@dataclass(frozen=True)
class Codec:
    """How one kind of result is stored in an outcome."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


_ACCOUNT = Codec(account_to_json, account_from_json)
_TRANSFER = Codec(transfer_to_json, transfer_from_json)
_TRANSFERS = Codec(
    lambda items: [transfer_to_json(t) for t in items],
    lambda data: [transfer_from_json(t) for t in data],
)
_MONITOR = Codec(monitor_document, monitor_from_document)
_REVERSAL = Codec(
    lambda pair: [transfer_to_json(pair[0]), transfer_to_json(pair[1])],
    lambda data: (transfer_from_json(data[0]), transfer_from_json(data[1])),
)


def _record(kind: type[Any]) -> Codec:
    """External accounts, payouts, inbound transfers: their documents (rail_rows.py)."""
    return Codec(record_document, lambda data: record_from_row(kind, data))


CODECS: dict[type[Command[Any]], Codec] = {
    CreateAccount: _ACCOUNT,
    UpdateAccount: _ACCOUNT,
    FreezeAccount: _ACCOUNT,
    UnfreezeAccount: _ACCOUNT,
    CloseAccount: _ACCOUNT,
    CreateTransfer: _TRANSFER,
    PostTransfer: _TRANSFER,
    VoidTransfer: _TRANSFER,
    IncrementHold: _TRANSFER,
    ExtendHold: _TRANSFER,
    CreateTransfers: _TRANSFERS,
    ReverseTransfer: _REVERSAL,
    ReleaseFunds: Codec(release_to_json, release_from_json),
    CreateBalanceMonitor: _MONITOR,
    DeleteBalanceMonitor: _MONITOR,
    CreateExternalAccount: _record(ExternalAccount),
    DisableExternalAccount: _record(ExternalAccount),
    CreatePayout: _record(Payout),
    CancelPayout: _record(Payout),
    ReceiveInbound: _record(InboundTransfer),
    RegisterAsset: Codec(asset_document, asset_from_row),
    CreateHolder: Codec(holder_document, holder_from_row),
    UpdateHolder: Codec(holder_document, holder_from_row),
}


def digest_of(command: Command[Any]) -> bytes:
    """The request fingerprint: the method and what the command asks."""
    return fingerprint(command.method, command.fingerprint_payload())


def outcome_of(command: Command[Any], request_id: str, digest: bytes, answer: Any) -> NewOutcome:
    """How a request's answer is recorded: its rejection, or its encoded result."""
    if isinstance(answer, Rejected):
        return NewOutcome(request_id, digest, rejection_to_json(answer))
    return NewOutcome(request_id, digest, {"result": CODECS[type(command)].encode(answer)})


def reused(request_id: str) -> DomainError:
    """The answer to a request id used before for a different request."""
    return DomainError(
        Reason.REQUEST_ID_REUSED,
        "this request_id was already used for a different request",
        {"request_id": request_id},
    )


@dataclass(frozen=True)
class Replay:
    """Answer without running: the recorded or shared answer, or a refusal."""

    answer: Any  # the result, a Rejected to raise, or a DomainError (REQUEST_ID_REUSED)


@dataclass(frozen=True)
class Twin:
    """Same request as the batch's command at `index`: share its answer."""

    index: int


class Deduplicator:
    """Decides, command by command in batch order, whether a command runs."""

    def __init__(self, recorded: dict[str, StoredOutcome]) -> None:
        self._recorded = recorded
        self._first: dict[str, tuple[bytes, int]] = {}

    def check(
        self, index: int, command: Command[Any], request_id: str, digest: bytes
    ) -> Replay | Twin | None:
        """None when the command is to run; otherwise how it is answered instead.

        The record comes first: a true repeat of a recorded request replays its outcome
        even when a different request with the same id came before it in the batch.
        """
        if not command.recorded:
            return None
        stored = self._recorded.get(request_id)
        if stored is not None:
            if stored.fingerprint != digest:
                return Replay(reused(request_id))
            rejection = rejection_from_json(stored.outcome)
            if rejection is not None:
                return Replay(rejection)
            return Replay(CODECS[type(command)].decode(stored.outcome["result"]))
        first = self._first.get(request_id)
        if first is not None:
            return Twin(first[1]) if first[0] == digest else Replay(reused(request_id))
        self._first[request_id] = (digest, index)
        return None
