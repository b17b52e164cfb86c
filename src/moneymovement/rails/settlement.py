"""Settlement reports as CSV files: the format banks hand over at the end of a day.

Columns, in this order in what we write: kind,tenant_id,reference,amount_minor,
currency_code,state. A reader accepts the columns in any order and keeps any extra column
(a bank's file may carry `account_id`, `reason` or `description`, which `FileRail` reads)
in `SettlementRow.extras`; `read_settlement_csv` ignores them.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from moneymovement.rails.base import InboundState, RailState, SettlementKind, SettlementLine

SETTLEMENT_COLUMNS = ("kind", "tenant_id", "reference", "amount_minor", "currency_code", "state")

_STATES_OF: Mapping[SettlementKind, frozenset[str]] = {
    SettlementKind.PAYOUT: frozenset(RailState),
    SettlementKind.INBOUND: frozenset(InboundState),
}
_AMOUNT = re.compile(r"[0-9]+")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class SettlementRow:
    """A settlement line with what else its CSV row said, and where it was (for errors)."""

    line: SettlementLine
    extras: Mapping[str, str]
    line_number: int


def read_settlement_csv(path: Path) -> list[SettlementLine]:
    """The lines of a settlement file, in file order; ValueError names a malformed line."""
    return [row.line for row in read_settlement_rows(path)]


def read_settlement_rows(path: Path) -> list[SettlementRow]:
    """The lines of a settlement file with their extra columns, in file order.

    ValueError names the file and the line number of the first malformed line: a
    settlement file is money, so a line we cannot read stops the reading rather than
    being skipped.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [column for column in SETTLEMENT_COLUMNS if column not in header]
        if missing:
            raise ValueError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        rows = []
        for fields in reader:
            rows.append(_parse_row(fields, path, reader.line_num))
        return rows


def write_settlement_csv(lines: Iterable[SettlementLine], path: Path) -> None:
    """Write a settlement file whole: readers never see half of one (temporary file,
    fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(SETTLEMENT_COLUMNS)
            for line in lines:
                writer.writerow(
                    (
                        line.kind,
                        line.tenant_id,
                        line.reference,
                        line.amount_minor,
                        line.currency_code,
                        line.state,
                    )
                )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _parse_row(fields: Mapping[str | None, object], path: Path, line_number: int) -> SettlementRow:
    def fail(problem: str) -> ValueError:
        return ValueError(f"{path}: line {line_number}: {problem}")

    if None in fields:
        raise fail("more fields than columns")
    values: dict[str, str] = {}
    for column, value in fields.items():
        if not isinstance(value, str):  # DictReader fills a short row with None
            raise fail(f"fewer fields than columns (no {column})")
        values[str(column)] = value
    try:
        kind = SettlementKind(values["kind"])
    except ValueError:
        raise fail(f"unknown kind {values['kind']!r}") from None
    for column in ("tenant_id", "reference"):
        if not values[column]:
            raise fail(f"empty {column}")
    if _AMOUNT.fullmatch(values["amount_minor"]) is None:
        raise fail(f"amount_minor {values['amount_minor']!r} is not a whole number")
    if _CURRENCY.fullmatch(values["currency_code"]) is None:
        raise fail(f"currency_code {values['currency_code']!r} is not three capital letters")
    if values["state"] not in _STATES_OF[kind]:
        raise fail(f"state {values['state']!r} is not one of {sorted(_STATES_OF[kind])}")
    line = SettlementLine(
        kind=kind,
        tenant_id=values["tenant_id"],
        reference=values["reference"],
        amount_minor=int(values["amount_minor"]),
        currency_code=values["currency_code"],
        state=values["state"],
    )
    extras = {column: value for column, value in values.items() if column not in SETTLEMENT_COLUMNS}
    return SettlementRow(line, extras, line_number)
