"""A batch rail on daily files: proof that the `Rail` interface fits one.

Layout of `directory`:

- `outgoing/<UTC date>.csv`: the payouts we send, one row each, appended as they are
  submitted (columns `OUTGOING_COLUMNS`). The bank picks the files up.
- `incoming/*.csv`: the bank's settlement files, in the settlement CSV format
  (`settlement.py`), read in name order. Optional extra columns: `account_id` (required on
  INBOUND lines: which of the tenant's accounts the money is for), `reason` (a failure or
  return reason code) and `description`.
- `acked.txt`: the inbound notices we applied, one `KIND<TAB>reference` a line.

A payout's status is its latest line in the incoming files, PROCESSING while it is only
in an outgoing file. A file rail never times out: writing a file either happens or raises.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from moneymovement.rails.base import (
    InboundKind,
    InboundNotice,
    InboundState,
    RailPayout,
    RailState,
    RailStatus,
    SettlementKind,
    SettlementLine,
)
from moneymovement.rails.settlement import SettlementRow, read_settlement_rows

OUTGOING_COLUMNS = (
    "key",
    "tenant_id",
    "amount_minor",
    "currency_code",
    "method",
    "routing_reference",
    "last4",
    "fingerprint",
)

Clock = Callable[[], float]


class FileRail:
    """Payouts out and settlements in as CSV files in `directory` (see the module docstring)."""

    name: str = "file"

    def __init__(self, directory: Path, *, clock: Clock = time.time) -> None:
        self._directory = directory
        self._outgoing = directory / "outgoing"
        self._incoming = directory / "incoming"
        self._acked = directory / "acked.txt"
        self._clock = clock
        self._rows_seen: dict[str, int] = {}  # incoming file name -> rows already called back
        for folder in (self._outgoing, self._incoming):
            folder.mkdir(parents=True, exist_ok=True)

    async def submit(self, payout: RailPayout) -> RailStatus:
        """Append the payout to today's outgoing file unless a file already has its key,
        and answer its status."""
        return await asyncio.to_thread(self._submit, payout)

    async def status(self, key: str) -> RailStatus | None:
        return await asyncio.to_thread(self._status, key)

    async def callbacks(self) -> list[RailStatus]:
        """The PAYOUT lines of incoming files this instance has not reported yet."""
        return await asyncio.to_thread(self._unseen_payout_lines)

    async def inbound(self) -> list[InboundNotice]:
        """INBOUND lines not acknowledged: RECEIVED gives a CREDIT notice, RETURNED a CREDIT
        then a RETURN (the credit may never have been seen, its return is in the same
        file). Each (kind, reference) once per call."""
        return await asyncio.to_thread(self._unacked_notices)

    async def ack_inbound(self, notices: Sequence[InboundNotice]) -> None:
        await asyncio.to_thread(self._acknowledge, notices)

    async def settlement_report(self) -> list[SettlementLine]:
        """Every line of every incoming file, in file order."""
        return await asyncio.to_thread(lambda: [row.line for _, row in self._incoming_rows()])

    def _submit(self, payout: RailPayout) -> RailStatus:
        with self._locked():
            if payout.key not in self._outgoing_rows():
                today = datetime.fromtimestamp(self._clock(), tz=UTC).date().isoformat()
                _append_csv_row(self._outgoing / f"{today}.csv", _outgoing_row(payout))
        status = self._status(payout.key)
        assert status is not None  # it is in an outgoing file now
        return status

    def _status(self, key: str) -> RailStatus | None:
        settled = [
            row
            for _, row in self._incoming_rows()
            if row.line.kind is SettlementKind.PAYOUT and row.line.reference == key
        ]
        if settled:
            latest = settled[-1]
            return RailStatus(
                key,
                RailState(latest.line.state),
                latest.line.amount_minor,
                latest.line.currency_code,
                latest.extras.get("reason", ""),
            )
        sent = self._outgoing_rows().get(key)
        if sent is None:
            return None
        return RailStatus(
            key, RailState.PROCESSING, int(sent["amount_minor"]), sent["currency_code"]
        )

    def _unseen_payout_lines(self) -> list[RailStatus]:
        counts: dict[str, int] = {}
        notices = []
        for name, row in self._incoming_rows():
            counts[name] = counts.get(name, 0) + 1
            if counts[name] <= self._rows_seen.get(name, 0):
                continue
            if row.line.kind is SettlementKind.PAYOUT:
                notices.append(
                    RailStatus(
                        row.line.reference,
                        RailState(row.line.state),
                        row.line.amount_minor,
                        row.line.currency_code,
                        row.extras.get("reason", ""),
                    )
                )
        self._rows_seen.update(counts)
        return notices

    def _unacked_notices(self) -> list[InboundNotice]:
        acked = self._acked_keys()
        notices: list[InboundNotice] = []
        for name, row in self._incoming_rows():
            if row.line.kind is not SettlementKind.INBOUND:
                continue
            for notice in _notices_of(name, row):
                key = (notice.kind, notice.reference)
                if key not in acked:
                    acked.add(key)  # once per call
                    notices.append(notice)
        return notices

    def _acknowledge(self, notices: Sequence[InboundNotice]) -> None:
        with self._locked():
            acked = self._acked_keys()
            new = []
            for notice in notices:
                key = (notice.kind, notice.reference)
                if key not in acked:
                    acked.add(key)
                    new.append(f"{notice.kind}\t{notice.reference}\n")
            if new:
                with self._acked.open("a", encoding="utf-8") as handle:
                    handle.writelines(new)
                    handle.flush()
                    os.fsync(handle.fileno())

    def _acked_keys(self) -> set[tuple[InboundKind, str]]:
        if not self._acked.exists():
            return set()
        keys = set()
        for line in self._acked.read_text(encoding="utf-8").splitlines():
            kind, _, reference = line.partition("\t")
            if reference:  # a torn last line has no tab yet: not acknowledged
                keys.add((InboundKind(kind), reference))
        return keys

    def _incoming_rows(self) -> Iterator[tuple[str, SettlementRow]]:
        for path in sorted(self._incoming.glob("*.csv")):
            for row in read_settlement_rows(path):
                yield path.name, row

    def _outgoing_rows(self) -> dict[str, dict[str, str]]:
        rows: dict[str, dict[str, str]] = {}
        for path in sorted(self._outgoing.glob("*.csv")):
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    rows.setdefault(row["key"], row)
        return rows

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes, so a key is never written to outgoing twice."""
        descriptor = os.open(self._directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def _outgoing_row(payout: RailPayout) -> dict[str, str]:
    return {
        "key": payout.key,
        "tenant_id": payout.tenant_id,
        "amount_minor": str(payout.amount_minor),
        "currency_code": payout.currency_code,
        "method": payout.method,
        "routing_reference": payout.routing_reference,
        "last4": payout.last4,
        "fingerprint": payout.fingerprint,
    }


def _append_csv_row(path: Path, row: dict[str, str]) -> None:
    new_file = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=OUTGOING_COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


def _notices_of(file_name: str, row: SettlementRow) -> list[InboundNotice]:
    line = row.line
    account_id = row.extras.get("account_id", "")
    if not account_id:
        raise ValueError(f"{file_name}: line {row.line_number}: an INBOUND line needs account_id")
    credit = InboundNotice(
        kind=InboundKind.CREDIT,
        reference=line.reference,
        tenant_id=line.tenant_id,
        account_id=account_id,
        amount_minor=line.amount_minor,
        currency_code=line.currency_code,
        description=row.extras.get("description", ""),
    )
    if line.state == InboundState.RETURNED:
        returned = InboundNotice(
            kind=InboundKind.RETURN,
            reference=line.reference,
            tenant_id=line.tenant_id,
            account_id=account_id,
            amount_minor=line.amount_minor,
            currency_code=line.currency_code,
            reason=row.extras.get("reason", ""),
        )
        return [credit, returned]
    return [credit]
