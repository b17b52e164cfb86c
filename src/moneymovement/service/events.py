"""Domain events: what happened to money, counted and told once it is committed.

Called after the transaction that made the change committed, and never for a replay, so
each event is counted once per effect: counted by batch (`count`, one call per kind
and currency instead of one per transfer), told per request. Told on the request's own
canonical log line
(its fields are bound to the request's logging context: one line per RPC), or on a line
of its own when no request is waiting for it (the sweeper's expiries, a caller that gave
up before the commit).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog

from moneymovement.domain.transfers import EventKind, Transfer, TransferState
from moneymovement.observability import metrics

log = structlog.get_logger("moneymovement.events")


def count(created: list[Transfer], changed_holds: list[Transfer]) -> None:
    """Counts a committed batch's new transfers and the steps of holds it changed (by
    each hold's newest step: a capture's amount, an expiry) in the metrics."""
    moved: Counter[tuple[str, str]] = Counter()
    amounts: Counter[tuple[str, str]] = Counter()
    for transfer in created:
        key = (transfer.currency_code, _kind(transfer))
        moved[key] += 1
        amounts[key] += transfer.amount_minor
    expired: Counter[str] = Counter()
    for hold in changed_holds:
        step = hold.history[-1]
        if step.kind in (EventKind.POSTED, EventKind.CAPTURED):
            moved[(hold.currency_code, "capture")] += 1
            amounts[(hold.currency_code, "capture")] += step.amount_minor
        elif step.kind is EventKind.EXPIRED:
            expired[hold.currency_code] += 1
    for (currency, kind), n in moved.items():
        labels = {"currency": currency, "kind": kind}
        metrics.transfers.add(n, labels)
        metrics.amount_moved.add(amounts[(currency, kind)], labels)
    for currency, n in expired.items():
        metrics.holds_expired.add(n, {"currency": currency})


def transfers_created(transfers: list[Transfer], *, own_line: bool = False) -> None:
    """New transfers: immediate ones moved money, pending ones reserved it."""
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


def hold_changed(transfer: Transfer, *, own_line: bool = False) -> None:
    """A hold was captured (in part or for good), increased, extended, voided or
    expired: told by its newest step (hold_posted, hold_captured, hold_voided, ...)."""
    step = transfer.history[-1]
    fields = {
        "transfer_id": transfer.id,
        "hold_state": transfer.state.value,
        "step_amount_minor": step.amount_minor,
        "amount_minor": transfer.amount_minor,
        "posted_amount_minor": transfer.posted_amount_minor,
        "currency_code": transfer.currency_code,
    }
    _tell(f"hold_{step.kind.value.lower()}", fields, own_line)


def batch_operations(
    created: list[Transfer], changed: list[Transfer], *, own_line: bool = False
) -> None:
    """A batch given as operations that changed holds too (and maybe made transfers):
    one domain event for all of it, each hold step named, rather than the last step's
    fields over the first's."""
    first = created[0] if created else None
    fields: dict[str, Any] = {
        "transfers": len(created),
        "amount_minor": sum(t.amount_minor for t in created),
        "hold_steps": [f"{h.id}:{h.history[-1].kind.value}" for h in changed],
        "currency_code": (first or changed[0]).currency_code,
    }
    if first is not None and first.batch_id:
        fields["batch_id"] = first.batch_id
    _tell("batch_operations", fields, own_line)


def _kind(transfer: Transfer) -> str:
    if transfer.reversal_of_id:
        return "reversal"
    return "hold" if transfer.state is TransferState.PENDING else "immediate"


def _tell(event: str, fields: dict[str, Any], own_line: bool) -> None:
    if own_line:
        log.info(event, **fields)
    else:
        structlog.contextvars.bind_contextvars(domain_event=event, **fields)
