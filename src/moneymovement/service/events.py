"""Domain events: what happened to money, logged and counted once it is committed.

Called after the transaction that made the change committed, and never for a replay, so
each event is logged once per effect.
"""

from __future__ import annotations

import structlog

from moneymovement.domain.transfers import Transfer, TransferState
from moneymovement.observability import metrics

log = structlog.get_logger("moneymovement.events")


def transfers_created(transfers: list[Transfer]) -> None:
    """New transfers: immediate ones moved money, pending ones reserved it."""
    for transfer in transfers:
        kind = "hold" if transfer.state is TransferState.PENDING else "immediate"
        if transfer.reversal_of_id:
            kind = "reversal"
        _moved(transfer, kind, transfer.amount_minor)
        log.info(
            "transfer_created",
            transfer_id=transfer.id,
            kind=kind,
            state=transfer.state.value,
            amount_minor=transfer.amount_minor,
            currency_code=transfer.currency_code,
            batch_id=transfer.batch_id,
            reversal_of_id=transfer.reversal_of_id,
        )


def hold_ended(transfer: Transfer) -> None:
    """A hold was posted, voided or expired."""
    if transfer.state is TransferState.POSTED:
        _moved(transfer, "capture", transfer.posted_amount_minor)
    elif transfer.state is TransferState.EXPIRED:
        metrics.holds_expired.add(1, {"currency": transfer.currency_code})
    log.info(
        f"hold_{transfer.state.value.lower()}",
        transfer_id=transfer.id,
        amount_minor=transfer.amount_minor,
        posted_amount_minor=transfer.posted_amount_minor,
        currency_code=transfer.currency_code,
    )


def _moved(transfer: Transfer, kind: str, amount_minor: int) -> None:
    labels = {"currency": transfer.currency_code, "kind": kind}
    metrics.transfers.add(1, labels)
    metrics.amount_moved.add(amount_minor, labels)
