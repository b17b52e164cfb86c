"""The payout worker's pages of payouts in flight (storage/sql/payouts.sql,
migrations 0012 and 0014): every PROCESSING payout and every payout POSTED within the
window comes back exactly once per walk, ties of time included, and none outside it."""

from __future__ import annotations

import asyncpg

from moneymovement.storage.session import PageCursor
from tests.integration.conftest import Ledger
from tests.integration.test_verify_payouts import payouts_ledger


async def test_pages_of_payouts_in_flight_cover_each_once(ledger: Ledger, dsn: str) -> None:
    names = await payouts_ledger(ledger)
    processing = [names[s] for s in ("PENDING", "PROCESSING", "POSTED")]
    posted = [names[s] for s in ("FAILED", "CANCELED")]
    too_old = names["RETURNED"]
    connection = await asyncpg.connect(dsn)
    try:
        # One time for each group: payouts settled by one batch share its time.
        await connection.execute(
            "UPDATE payouts SET state = 'PROCESSING', processing_at = '2026-01-01T00:00:00Z', "
            "settled_at = NULL, return_transfer_id = NULL WHERE payout_id = ANY($1)",
            processing,
        )
        await connection.execute(
            "UPDATE payouts SET state = 'POSTED', settled_at = now() - interval '1 second', "
            "return_transfer_id = NULL WHERE payout_id = ANY($1)",
            posted,
        )
        await connection.execute(
            "UPDATE payouts SET state = 'POSTED', settled_at = now() - interval '700 seconds', "
            "return_transfer_id = NULL WHERE payout_id = $1",
            too_old,
        )
    finally:
        await connection.close()
    database = ledger.database

    seen_processing: list[str] = []
    after: PageCursor | None = None
    for _ in range(len(processing) + 1):  # pages of 2: 2, 1, then it starts over
        page = await database.payouts_in_flight(2, 0.0, after, None)
        assert page.posted == []  # no window, no POSTED page
        seen_processing += [payout for _, payout in page.processing]
        after = page.processing_next
        if after is None:
            break
    assert sorted(seen_processing) == sorted(processing)
    again = await database.payouts_in_flight(2, 0.0, None, None)
    assert [p for _, p in again.processing] == sorted(processing)[:2]  # the oldest again

    seen_posted: list[str] = []
    before: PageCursor | None = None
    while True:
        page = await database.payouts_in_flight(1, 600.0, None, before)
        seen_posted += [payout for _, payout in page.posted]
        before = page.posted_next
        if before is None:
            break
    assert sorted(seen_posted) == sorted(posted)  # each once; the one past 600 s never
