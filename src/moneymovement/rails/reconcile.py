"""Reconciliation: the rail's settlement report against what the ledger believes. Pure.

Lines are matched by (kind, tenant_id, reference). For each reference at most one break
is reported, plus a DUPLICATE_IN_REPORT when the report lists it more than once (the
first occurrence is still compared). The amount (with the currency) is compared before
the state, so a wrong amount hides a wrong state: fix the amount, run again.

Ledger payouts in state PENDING or CANCELED never reached the rail, so their absence from
the report is expected and not a break. If the report does have one, that is a
STATE_MISMATCH (both sides know the reference and disagree about where it is), whose
detail says the ledger never sent it: the payout may have gone out twice or under a
reused key, which an operator must look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from moneymovement.rails.base import SettlementKind, SettlementLine

# Ledger payout states that mean "never submitted to the rail".
NOT_SENT_STATES = frozenset({"PENDING", "CANCELED"})

_Identity = tuple[SettlementKind, str, str]  # kind, tenant_id, reference


@dataclass(frozen=True)
class LedgerItem:
    """What the ledger believes about one payout or inbound credit, in report terms."""

    kind: SettlementKind
    tenant_id: str
    reference: str
    amount_minor: int
    currency_code: str
    state: str


class BreakKind(StrEnum):
    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"
    MISSING_IN_REPORT = "MISSING_IN_REPORT"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    STATE_MISMATCH = "STATE_MISMATCH"
    DUPLICATE_IN_REPORT = "DUPLICATE_IN_REPORT"


@dataclass(frozen=True)
class Break:
    """One disagreement, with both sides as they were (None for a side that is missing)."""

    kind: BreakKind
    settlement_kind: SettlementKind
    reference: str
    ledger: LedgerItem | None
    report: SettlementLine | None
    detail: str


@dataclass(frozen=True)
class Reconciliation:
    matched: int  # report lines that agree with the ledger in amount and state
    breaks: tuple[Break, ...]

    @property
    def clean(self) -> bool:
        return not self.breaks


def reconcile(report: Sequence[SettlementLine], ledger: Sequence[LedgerItem]) -> Reconciliation:
    """Compare the rail's report with the ledger. ValueError if the ledger lists one
    reference twice: the ledger's rows are unique, so that is the caller's bug."""
    ledger_by_identity: dict[_Identity, LedgerItem] = {}
    for item in ledger:
        identity = (item.kind, item.tenant_id, item.reference)
        if identity in ledger_by_identity:
            raise ValueError(f"the ledger lists {item.kind} {item.reference} twice")
        ledger_by_identity[identity] = item

    first_lines: dict[_Identity, SettlementLine] = {}
    occurrences: dict[_Identity, int] = {}
    for line in report:
        identity = (line.kind, line.tenant_id, line.reference)
        first_lines.setdefault(identity, line)
        occurrences[identity] = occurrences.get(identity, 0) + 1

    breaks: list[Break] = []
    matched = 0
    for identity, line in first_lines.items():
        if occurrences[identity] > 1:
            detail = f"listed {occurrences[identity]} times in the report"
            breaks.append(_break(BreakKind.DUPLICATE_IN_REPORT, None, line, detail))
        found = _compare(ledger_by_identity.get(identity), line)
        if found is None:
            matched += 1
        else:
            breaks.append(found)
    for identity, item in ledger_by_identity.items():
        if identity not in first_lines and not _never_sent(item):
            detail = f"ledger has it {item.state}, the report does not list it"
            breaks.append(_break(BreakKind.MISSING_IN_REPORT, item, None, detail))

    breaks.sort(key=_sort_key)
    return Reconciliation(matched, tuple(breaks))


def render(result: Reconciliation) -> str:
    """A plain-text report for an operator: a summary line, then one line per break."""
    lines = [f"matched {result.matched}, breaks {len(result.breaks)}"]
    for found in result.breaks:
        lines.append(
            f"{found.kind} {found.settlement_kind} {found.reference} "
            f"(tenant {_tenant_of(found)}): {found.detail}"
        )
    return "\n".join(lines) + "\n"


def _compare(item: LedgerItem | None, line: SettlementLine) -> Break | None:
    """The one break between a report line and its ledger item, or None when they agree."""
    if item is None:
        detail = f"report has it {line.state} for {_money(line)}, the ledger does not know it"
        return _break(BreakKind.MISSING_IN_LEDGER, None, line, detail)
    if (item.amount_minor, item.currency_code) != (line.amount_minor, line.currency_code):
        detail = f"ledger {_money(item)}, report {_money(line)}"
        return _break(BreakKind.AMOUNT_MISMATCH, item, line, detail)
    if _never_sent(item):
        detail = f"ledger has it {item.state} (never sent to the rail), report {line.state}"
        return _break(BreakKind.STATE_MISMATCH, item, line, detail)
    if item.state != line.state:
        detail = f"ledger {item.state}, report {line.state}"
        return _break(BreakKind.STATE_MISMATCH, item, line, detail)
    return None


def _never_sent(item: LedgerItem) -> bool:
    return item.kind is SettlementKind.PAYOUT and item.state in NOT_SENT_STATES


def _break(
    kind: BreakKind, item: LedgerItem | None, line: SettlementLine | None, detail: str
) -> Break:
    side = item if item is not None else line
    assert side is not None  # every break has at least one side
    return Break(kind, side.kind, side.reference, item, line, detail)


def _tenant_of(found: Break) -> str:
    side = found.ledger if found.ledger is not None else found.report
    return side.tenant_id if side is not None else ""


def _sort_key(found: Break) -> tuple[str, str, str, str]:
    return (found.kind, found.reference, found.settlement_kind, _tenant_of(found))


def _money(side: LedgerItem | SettlementLine) -> str:
    return f"{side.amount_minor} {side.currency_code}"
