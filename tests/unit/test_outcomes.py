"""Stored outcomes: exact round trips through JSON, and request fingerprints."""

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.transfers import (
    EventKind,
    Transfer,
    TransferEvent,
    TransferSpec,
    TransferState,
)
from moneymovement.service import outcomes

CREATED = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
LATER = datetime(2025, 3, 2, 18, 0, 1, 7, tzinfo=timezone(timedelta(hours=5, minutes=30)))

ACCOUNT = Account(
    id="acct_aaaaaaaaaaaaaaaaaaaaaaaaaa",
    external_id="crm:4711",
    name="Operating account",
    currency_code="JPY",
    normal_balance=NormalBalance.DEBIT,
    overdraft_mode=OverdraftMode.LIMITED,
    overdraft_limit_minor=50_000,
    holder_id="cust-9",
    metadata={"team": "ops", "région": "eu-west"},
    state=AccountState.FROZEN,
    version=42,
    balances=Balances(11, 22, 33, 2**63 - 1),
    created_at=CREATED,
    updated_at=LATER,
)

TRANSFER = Transfer(
    id="tr_bbbbbbbbbbbbbbbbbbbbbbbbbb",
    request_id="req-1",
    debit_account_id="acct_aaaaaaaaaaaaaaaaaaaaaaaaaa",
    credit_account_id="acct_cccccccccccccccccccccccccc",
    amount_minor=9_000,
    currency_code="JPY",
    state=TransferState.POSTED,
    description="rent, March",
    metadata={"invoice": "INV-7"},
    expires_at=LATER + timedelta(days=7),
    posted_amount_minor=9_000,
    reversed_amount_minor=1_500,
    reversal_of_id=None,
    reversal_ids=("tr_dddddddddddddddddddddddddd", "tr_eeeeeeeeeeeeeeeeeeeeeeeeee"),
    batch_id="batch_ffffffffffffffffffffffffff",
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    created_at=CREATED,
    updated_at=LATER,
    history=(
        TransferEvent(EventKind.CREATED, 9_000, CREATED, "req-1"),
        TransferEvent(EventKind.REVERSED, 1_500, LATER, "req-2", "tr_dddddddddddddddddddddddddd"),
    ),
)


def through_text(data: dict[str, object]) -> dict[str, object]:
    """What comes back from the database: the JSON text, parsed again."""
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def test_account_round_trip() -> None:
    restored = outcomes.account_from_json(through_text(outcomes.account_to_json(ACCOUNT)))

    assert restored == ACCOUNT
    assert restored.created_at.utcoffset() == timedelta(0)
    assert restored.updated_at.utcoffset() == timedelta(hours=5, minutes=30)


def test_account_round_trip_with_optional_fields_empty() -> None:
    bare = replace(ACCOUNT, external_id=None, metadata={}, balances=Balances())

    assert outcomes.account_from_json(through_text(outcomes.account_to_json(bare))) == bare


def test_transfer_round_trip() -> None:
    restored = outcomes.transfer_from_json(through_text(outcomes.transfer_to_json(TRANSFER)))

    assert restored == TRANSFER
    assert restored.history[1].at.utcoffset() == timedelta(hours=5, minutes=30)


def test_transfer_round_trip_with_optional_fields_empty() -> None:
    bare = replace(
        TRANSFER,
        expires_at=None,
        reversal_of_id="tr_gggggggggggggggggggggggggg",
        reversal_ids=(),
        batch_id=None,
        trace_id=None,
        history=(),
    )

    assert outcomes.transfer_from_json(through_text(outcomes.transfer_to_json(bare))) == bare


def test_rejection_round_trip() -> None:
    rejection = Rejected(
        Reason.INSUFFICIENT_FUNDS,
        "account acct_x has insufficient funds",
        {"account_id": "acct_x", "available_minor": "-5"},
    )

    restored = outcomes.rejection_from_json(through_text(outcomes.rejection_to_json(rejection)))

    assert restored is not None
    assert (restored.reason, restored.message, restored.metadata) == (
        Reason.INSUFFICIENT_FUNDS,
        "account acct_x has insufficient funds",
        {"account_id": "acct_x", "available_minor": "-5"},
    )


def test_rejection_from_a_success_is_none() -> None:
    assert outcomes.rejection_from_json(outcomes.account_to_json(ACCOUNT)) is None


# --- fingerprint -----------------------------------------------------------------------

SPEC = TransferSpec(
    debit_account_id="acct_aaaaaaaaaaaaaaaaaaaaaaaaaa",
    credit_account_id="acct_cccccccccccccccccccccccccc",
    amount_minor=100,
    currency_code="USD",
    description="lunch",
    metadata={"a": "1", "b": "2"},
    pending=True,
    hold_expires_at=LATER,
)


def test_fingerprint_is_stable_for_equal_commands() -> None:
    twin = replace(SPEC, metadata=dict(SPEC.metadata))

    assert outcomes.fingerprint("CreateTransfer", SPEC) == outcomes.fingerprint(
        "CreateTransfer", twin
    )
    assert len(outcomes.fingerprint("CreateTransfer", SPEC)) == 32


def test_fingerprint_ignores_metadata_insertion_order() -> None:
    reordered = replace(SPEC, metadata={"b": "2", "a": "1"})

    assert outcomes.fingerprint("CreateTransfer", reordered) == outcomes.fingerprint(
        "CreateTransfer", SPEC
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"debit_account_id": "acct_dddddddddddddddddddddddddd"},
        {"credit_account_id": "acct_dddddddddddddddddddddddddd"},
        {"amount_minor": 101},
        {"currency_code": "EUR"},
        {"description": "dinner"},
        {"metadata": {"a": "1", "b": "3"}},
        {"metadata": {"a": "1"}},
        {"pending": False},
        {"hold_expires_at": LATER + timedelta(microseconds=1)},
        {"hold_expires_at": None},
        {"hold_timeout_s": 60.0},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_fingerprint_differs_when_a_field_differs(changes: dict[str, object]) -> None:
    other = replace(SPEC, **changes)

    assert outcomes.fingerprint("CreateTransfer", other) != outcomes.fingerprint(
        "CreateTransfer", SPEC
    )


def test_fingerprint_differs_by_method() -> None:
    assert outcomes.fingerprint("CreateTransfer", SPEC) != outcomes.fingerprint("CreateHold", SPEC)


def test_fingerprint_survives_a_command_gaining_a_defaulted_field() -> None:
    @dataclass(frozen=True)
    class Before:
        amount_minor: int

    @dataclass(frozen=True)
    class After:  # the same command one release later, with a new optional field
        amount_minor: int
        note: str = ""

    assert outcomes.fingerprint("M", Before(5)) == outcomes.fingerprint("M", After(5))
    assert outcomes.fingerprint("M", Before(5)) != outcomes.fingerprint("M", After(5, "x"))
