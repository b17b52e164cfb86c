"""How a request's outcome is recorded, so that a repeat gets exactly the same answer.

An outcome is the result object (an account, a transfer, ...) or the rejection. Both are
stored as plain JSON next to a fingerprint of the request, written by explicit codecs
below so that the stored form is readable in the database and stable across releases.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from moneymovement.domain.accounts import Account, AccountState, FreezeScope, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.commands import FundsRelease
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.funds import (
    AT_ONCE,
    Availability,
    FundsKind,
    Part,
    policy_from_json,
    policy_to_json,
)
from moneymovement.domain.transfers import EventKind, Transfer, TransferEvent, TransferState
from moneymovement.storage.rows import funds_document, funds_from_document


def fingerprint(method: str, command: object) -> bytes:
    """A digest of what was asked: the method and every field of its command.

    Fields at their default value are left out, so that a command gaining a new field in
    a later release keeps the digest of requests that do not use it: a retry across a
    deploy still replays instead of failing with REQUEST_ID_REUSED.
    """
    fields: object = command
    if dataclasses.is_dataclass(command) and not isinstance(command, type):
        fields = _set_fields(command)
    text = json.dumps([method, fields], sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode("utf-8")).digest()


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _set_fields(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def _set_fields(instance: object) -> dict[str, object]:
    """The fields of a dataclass instance that differ from their defaults."""
    kept = {}
    for name, default in _defaults(type(instance)):
        value = getattr(instance, name)
        if default is not dataclasses.MISSING and value == default:
            continue
        kept[name] = value
    return kept


_DEFAULTS: dict[type, tuple[tuple[str, object], ...]] = {}


def _defaults(kind: type) -> tuple[tuple[str, object], ...]:
    """Each field of a dataclass with its default value (MISSING when it has none),
    worked out once per class."""
    known = _DEFAULTS.get(kind)
    if known is not None:
        return known
    defaults = []
    for item in dataclasses.fields(kind):
        default = item.default
        if item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        defaults.append((item.name, default))
    _DEFAULTS[kind] = tuple(defaults)
    return _DEFAULTS[kind]


def rejection_to_json(rejection: Rejected) -> dict[str, Any]:
    """A rejection as stored."""
    return {
        "rejected": {
            "reason": rejection.reason.value,
            "message": rejection.message,
            "metadata": rejection.metadata,
        }
    }


def rejection_from_json(stored: dict[str, Any]) -> Rejected | None:
    """The stored rejection, or None when the outcome was a success."""
    data = stored.get("rejected")
    if data is None:
        return None
    return Rejected(Reason(data["reason"]), data["message"], data["metadata"])


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _required_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def account_to_json(account: Account) -> dict[str, Any]:
    """An account as stored in an outcome."""
    return {
        "id": account.id,
        "external_id": account.external_id,
        "name": account.name,
        "currency_code": account.currency_code,
        "normal_balance": account.normal_balance.value,
        "overdraft_mode": account.overdraft_mode.value,
        "overdraft_limit_minor": account.overdraft_limit_minor,
        "holder_id": account.holder_id,
        "metadata": dict(account.metadata),
        "state": account.state.value,
        "version": account.version,
        "balances": dataclasses.asdict(account.balances),
        "created_at": _time(account.created_at),
        "updated_at": _time(account.updated_at),
        "funds_policy": policy_to_json(account.funds_policy),
        "freeze_scope": None if account.freeze_scope is None else account.freeze_scope.value,
        "freeze_reason": account.freeze_reason,
        "attributes_version": account.attributes_version,
        "open_to_holders": account.open_to_holders,
        "negative_balance_reserve_account_id": account.negative_balance_reserve_account_id,
        "reserve_debt_minor": account.reserve_debt_minor,
    }


def account_from_json(data: dict[str, Any]) -> Account:
    """The account of a stored outcome."""
    return Account(
        id=data["id"],
        external_id=data["external_id"],
        name=data["name"],
        currency_code=data["currency_code"],
        normal_balance=NormalBalance(data["normal_balance"]),
        overdraft_mode=OverdraftMode(data["overdraft_mode"]),
        overdraft_limit_minor=data["overdraft_limit_minor"],
        holder_id=data["holder_id"],
        metadata=data["metadata"],
        state=AccountState(data["state"]),
        version=data["version"],
        balances=Balances(**data["balances"]),
        created_at=_required_time(data["created_at"]),
        updated_at=_required_time(data["updated_at"]),
        funds_policy=policy_from_json(data.get("funds_policy") or {}),
        freeze_scope=FreezeScope(data["freeze_scope"]) if data.get("freeze_scope") else None,
        freeze_reason=data.get("freeze_reason", ""),
        attributes_version=data.get("attributes_version", 1),
        open_to_holders=data.get("open_to_holders", False),
        negative_balance_reserve_account_id=data.get("negative_balance_reserve_account_id", ""),
        reserve_debt_minor=data.get("reserve_debt_minor", 0),
    )


def transfer_to_json(transfer: Transfer) -> dict[str, Any]:
    """A transfer as stored in an outcome."""
    return {
        "id": transfer.id,
        "request_id": transfer.request_id,
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "amount_minor": transfer.amount_minor,
        "currency_code": transfer.currency_code,
        "state": transfer.state.value,
        "description": transfer.description,
        "metadata": dict(transfer.metadata),
        "expires_at": _time(transfer.expires_at),
        "posted_amount_minor": transfer.posted_amount_minor,
        "reversed_amount_minor": transfer.reversed_amount_minor,
        "reversal_of_id": transfer.reversal_of_id,
        "reversal_ids": list(transfer.reversal_ids),
        "batch_id": transfer.batch_id,
        "trace_id": transfer.trace_id,
        "created_at": _time(transfer.created_at),
        "updated_at": _time(transfer.updated_at),
        "history": [
            {
                "kind": event.kind.value,
                "amount_minor": event.amount_minor,
                "at": _time(event.at),
                "request_id": event.request_id,
                "related_transfer_id": event.related_transfer_id,
                **({} if event.expires_at is None else {"expires_at": _time(event.expires_at)}),
            }
            for event in transfer.history
        ],
        **({"over_capture_bps": transfer.over_capture_bps} if transfer.over_capture_bps else {}),
        "available_at": _time(transfer.availability.at),
        "availability_delay_s": None
        if transfer.availability.delay is None
        else transfer.availability.delay.total_seconds(),
    }


def transfer_from_json(data: dict[str, Any]) -> Transfer:
    """The transfer of a stored outcome."""
    return Transfer(
        id=data["id"],
        request_id=data["request_id"],
        debit_account_id=data["debit_account_id"],
        credit_account_id=data["credit_account_id"],
        amount_minor=data["amount_minor"],
        currency_code=data["currency_code"],
        state=TransferState(data["state"]),
        description=data["description"],
        metadata=data["metadata"],
        expires_at=_parse_time(data["expires_at"]),
        posted_amount_minor=data["posted_amount_minor"],
        reversed_amount_minor=data["reversed_amount_minor"],
        reversal_of_id=data["reversal_of_id"],
        reversal_ids=tuple(data["reversal_ids"]),
        batch_id=data["batch_id"],
        trace_id=data["trace_id"],
        created_at=_required_time(data["created_at"]),
        updated_at=_required_time(data["updated_at"]),
        history=tuple(
            TransferEvent(
                kind=EventKind(event["kind"]),
                amount_minor=event["amount_minor"],
                at=_required_time(event["at"]),
                request_id=event["request_id"],
                related_transfer_id=event["related_transfer_id"],
                expires_at=_parse_time(event.get("expires_at")),
            )
            for event in data["history"]
        ),
        availability=_availability_from_json(data),
        over_capture_bps=data.get("over_capture_bps", 0),
    )


def _availability_from_json(data: dict[str, Any]) -> Availability:
    at = _parse_time(data.get("available_at"))
    delay = data.get("availability_delay_s")
    if at is None and delay is None:
        return AT_ONCE
    return Availability(at, None if delay is None else timedelta(seconds=delay))


def release_to_json(release: FundsRelease) -> dict[str, Any]:
    """ReleaseFunds' result as stored in an outcome."""
    return {
        "released": [funds_document(f) for f in release.released],
        "released_minor": release.released_minor,
        "fee_transfer": None
        if release.fee_transfer is None
        else transfer_to_json(release.fee_transfer),
        "account": account_to_json(release.account),
        "schedule": [
            [_time(p.available_at), p.kind.value, p.amount_minor] for p in release.schedule
        ],
    }


def release_from_json(data: dict[str, Any]) -> FundsRelease:
    """ReleaseFunds' result of a stored outcome."""
    fee = data["fee_transfer"]
    return FundsRelease(
        released=tuple(funds_from_document(f) for f in data["released"]),
        released_minor=data["released_minor"],
        fee_transfer=None if fee is None else transfer_from_json(fee),
        account=account_from_json(data["account"]),
        schedule=tuple(
            Part(FundsKind(kind), amount, _required_time(at))
            for at, kind, amount in data.get("schedule", ())
        ),
    )
