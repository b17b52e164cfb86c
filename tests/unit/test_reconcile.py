"""Reconciliation of a rail's settlement report against the ledger (rails/reconcile.py)."""

from __future__ import annotations

import dataclasses

import pytest

from moneymovement.rails.base import SettlementKind, SettlementLine
from moneymovement.rails.reconcile import (
    Break,
    BreakKind,
    LedgerItem,
    Reconciliation,
    reconcile,
    render,
)

PAYOUT, INBOUND = SettlementKind.PAYOUT, SettlementKind.INBOUND

REPORT = (
    SettlementLine(PAYOUT, "ten_a", "po_1", 1_000, "USD", "POSTED"),
    SettlementLine(PAYOUT, "ten_a", "po_2", 2_500, "USD", "FAILED"),
    SettlementLine(PAYOUT, "ten_b", "po_3", 99, "EUR", "RETURNED"),
    SettlementLine(INBOUND, "ten_a", "in_1", 700, "USD", "RECEIVED"),
    SettlementLine(INBOUND, "ten_b", "in_2", 50, "EUR", "RETURNED"),
)


def ledger_of(report: tuple[SettlementLine, ...]) -> list[LedgerItem]:
    return [
        LedgerItem(
            line.kind,
            line.tenant_id,
            line.reference,
            line.amount_minor,
            line.currency_code,
            line.state,
        )
        for line in report
    ]


LEDGER = ledger_of(REPORT)


def only_break(result: Reconciliation) -> Break:
    assert len(result.breaks) == 1, render(result)
    return result.breaks[0]


def test_a_report_that_agrees_with_the_ledger_is_clean() -> None:
    never_sent = [
        LedgerItem(PAYOUT, "ten_a", "po_pending", 10, "USD", "PENDING"),
        LedgerItem(PAYOUT, "ten_a", "po_canceled", 10, "USD", "CANCELED"),
    ]
    result = reconcile(REPORT, [*LEDGER, *never_sent])
    assert result == Reconciliation(matched=5, breaks=())
    assert result.clean
    assert render(result) == "matched 5, breaks 0\n"


def test_a_line_the_ledger_does_not_know() -> None:
    result = reconcile(REPORT, LEDGER[1:])
    found = only_break(result)
    assert (found.kind, found.reference, found.ledger, found.report) == (
        BreakKind.MISSING_IN_LEDGER,
        "po_1",
        None,
        REPORT[0],
    )
    assert result.matched == 4
    assert not result.clean


def test_a_ledger_item_the_report_lacks() -> None:
    result = reconcile(REPORT[:-1], LEDGER)
    found = only_break(result)
    assert (found.kind, found.settlement_kind, found.reference) == (
        BreakKind.MISSING_IN_REPORT,
        INBOUND,
        "in_2",
    )
    assert (found.ledger, found.report) == (LEDGER[-1], None)


def test_a_line_listed_twice_is_one_duplicate_and_still_matched() -> None:
    result = reconcile([*REPORT, REPORT[2]], LEDGER)
    found = only_break(result)
    assert (found.kind, found.reference) == (BreakKind.DUPLICATE_IN_REPORT, "po_3")
    assert "2 times" in found.detail
    assert result.matched == 5


@pytest.mark.parametrize(
    "wrong",
    [
        dataclasses.replace(REPORT[3], amount_minor=699),
        dataclasses.replace(REPORT[3], currency_code="EUR"),
    ],
)
def test_an_amount_or_currency_off(wrong: SettlementLine) -> None:
    result = reconcile([*REPORT[:3], wrong, REPORT[4]], LEDGER)
    found = only_break(result)
    assert (found.kind, found.reference) == (BreakKind.AMOUNT_MISMATCH, "in_1")
    assert (found.ledger, found.report) == (LEDGER[3], wrong)


def test_a_wrong_amount_hides_a_wrong_state() -> None:
    wrong = dataclasses.replace(REPORT[0], amount_minor=1_001, state="RETURNED")
    found = only_break(reconcile([wrong, *REPORT[1:]], LEDGER))
    assert found.kind is BreakKind.AMOUNT_MISMATCH


def test_a_wrong_state() -> None:
    wrong = dataclasses.replace(REPORT[1], state="POSTED")
    found = only_break(reconcile([REPORT[0], wrong, *REPORT[2:]], LEDGER))
    assert (found.kind, found.reference) == (BreakKind.STATE_MISMATCH, "po_2")
    assert found.detail == "ledger FAILED, report POSTED"


def test_a_payout_the_ledger_never_sent_but_the_rail_has() -> None:
    ledger = [*LEDGER[1:], dataclasses.replace(LEDGER[0], state="PENDING")]
    found = only_break(reconcile(REPORT, ledger))
    assert (found.kind, found.reference) == (BreakKind.STATE_MISMATCH, "po_1")
    assert "never sent" in found.detail


def test_matching_is_by_tenant_too() -> None:
    moved = dataclasses.replace(REPORT[0], tenant_id="ten_b")
    result = reconcile([moved, *REPORT[1:]], LEDGER)
    assert [(found.kind, found.reference) for found in result.breaks] == [
        (BreakKind.MISSING_IN_LEDGER, "po_1"),
        (BreakKind.MISSING_IN_REPORT, "po_1"),
    ]


def test_breaks_are_sorted_and_rendered_one_a_line() -> None:
    report = [
        dataclasses.replace(REPORT[0], state="FAILED"),
        REPORT[1],
        REPORT[1],
        dataclasses.replace(REPORT[2], amount_minor=100),
        REPORT[3],
        SettlementLine(INBOUND, "ten_c", "in_9", 5, "USD", "RECEIVED"),
    ]
    result = reconcile(report, LEDGER)
    assert [(found.kind, found.reference) for found in result.breaks] == [
        (BreakKind.AMOUNT_MISMATCH, "po_3"),
        (BreakKind.DUPLICATE_IN_REPORT, "po_2"),
        (BreakKind.MISSING_IN_LEDGER, "in_9"),
        (BreakKind.MISSING_IN_REPORT, "in_2"),
        (BreakKind.STATE_MISMATCH, "po_1"),
    ]
    assert result.matched == 2
    assert render(result).splitlines() == [
        "matched 2, breaks 5",
        "AMOUNT_MISMATCH PAYOUT po_3 (tenant ten_b): ledger 99 EUR, report 100 EUR",
        "DUPLICATE_IN_REPORT PAYOUT po_2 (tenant ten_a): listed 2 times in the report",
        "MISSING_IN_LEDGER INBOUND in_9 (tenant ten_c): report has it RECEIVED for 5 USD, "
        "the ledger does not know it",
        "MISSING_IN_REPORT INBOUND in_2 (tenant ten_b): ledger has it RETURNED, "
        "the report does not list it",
        "STATE_MISMATCH PAYOUT po_1 (tenant ten_a): ledger POSTED, report FAILED",
    ]


def test_a_ledger_listing_a_reference_twice_is_a_bug() -> None:
    with pytest.raises(ValueError, match="po_1 twice"):
        reconcile(REPORT, [*LEDGER, LEDGER[0]])
