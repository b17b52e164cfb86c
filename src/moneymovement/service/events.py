"""Domain events: what happened to money, counted and told once it is committed.

Called after the transaction that made the change committed, and never for a replay, so
each event is counted once per effect. Told on the request's own canonical log line
(its fields are bound to the request's logging context: one line per RPC), or on a line
of its own when no request is waiting for it (the sweeper's expiries, a caller that gave
up before the commit).
"""

from __future__ import annotations

from typing import Any

import structlog

from moneymovement.domain.transfers import Transfer, TransferState
from moneymovement.observability import metrics

log = structlog.get_logger("moneymovement.events")


def transfers_created(transfers: list[Transfer], *, own_line: bool = False) -> None:
    """New transfers: immediate ones moved money, pending ones reserved it."""
    for transfer in transfers:
        _moved(transfer, _kind(transfer), transfer.amount_minor)
    if not transfers:
        return
    first = transfers[0]
    fields: dict[str, Any] = {
        "transfer_id": first.id,
        "transfer_kind": _kind(first),
        "state": first.state.value,
        "amount_minor": sum(t.amount_minor for t in transfers),
        "currency_code": first.currency_code,
    }
    if first.batch_id:
        fields.update(batch_id=first.batch_id, transfers=len(transfers))
    if first.reversal_of_id:
        fields["reversal_of_id"] = first.reversal_of_id
    _tell("transfer_created", fields, own_line)


def hold_ended(transfer: Transfer, *, own_line: bool = False) -> None:
    """A hold was posted, voided or expired."""
    if transfer.state is TransferState.POSTED:
        _moved(transfer, "capture", transfer.posted_amount_minor)
    elif transfer.state is TransferState.EXPIRED:
        metrics.holds_expired.add(1, {"currency": transfer.currency_code})
    fields = {
        "transfer_id": transfer.id,
        "hold_state": transfer.state.value,
        "amount_minor": transfer.amount_minor,
        "posted_amount_minor": transfer.posted_amount_minor,
        "currency_code": transfer.currency_code,
    }
    _tell(f"hold_{transfer.state.value.lower()}", fields, own_line)


def _kind(transfer: Transfer) -> str:
    if transfer.reversal_of_id:
        return "reversal"
    return "hold" if transfer.state is TransferState.PENDING else "immediate"


def _tell(event: str, fields: dict[str, Any], own_line: bool) -> None:
    if own_line:
        log.info(event, **fields)
    else:
        structlog.contextvars.bind_contextvars(domain_event=event, **fields)


def _moved(transfer: Transfer, kind: str, amount_minor: int) -> None:
    labels = {"currency": transfer.currency_code, "kind": kind}
    metrics.transfers.add(1, labels)
    metrics.amount_moved.add(amount_minor, labels)
