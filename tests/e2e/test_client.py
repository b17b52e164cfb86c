"""The Python client library against the real server: typed errors, safe retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from moneymovement.client import (
    CursorExpired,
    InvalidRequest,
    MoneyMovementClient,
    Rejected,
    RetriesExhausted,
    RetryPolicy,
    Unauthenticated,
)
from moneymovement.service.retention import Retention
from moneymovement.storage.ledger import LedgerStore
from tests.e2e.conftest import Api


def _token(api: Api) -> str:
    return dict(api.a.md)["authorization"].split()[1]


async def test_money_moves_and_rejections_are_typed(api: Api) -> None:
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", _token(api)) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        moved = await mm.create_transfer(funding.id, wallet.id, 9_007_199_254_740_993, "USD")
        assert moved.amount_minor == 9_007_199_254_740_993
        assert (await mm.get_balance(wallet.id)).posted_minor == 9_007_199_254_740_993
        with pytest.raises(Rejected) as refused:
            await mm.create_transfer(wallet.id, funding.id, 9_007_199_254_740_994, "USD")
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.reason == "INSUFFICIENT_FUNDS"
        assert refused.value.metadata["account_id"] == wallet.id
        with pytest.raises(InvalidRequest) as bad:
            await mm.create_transfer(wallet.id, wallet.id, 0, "usd")
        assert {f for f, _ in bad.value.field_violations} == {
            "credit_account_id", "amount_minor", "currency_code",
        }  # fmt: skip
        with pytest.raises(Rejected) as missing:
            await mm.get_account("acct_" + "x" * 26)
        assert missing.value.reason == "ACCOUNT_NOT_FOUND"
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", "mm_wrong") as stranger:
        with pytest.raises(Unauthenticated) as denied:
            await stranger.get_account(wallet.id)
        assert denied.value.reason == "TOKEN_INVALID"


async def test_an_aborted_call_is_retried_with_the_same_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", _token(api)) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        # The server gives up after 12 attempts (ABORTED); the client then sends the
        # same request again, and that one goes through.
        original, conflicts = LedgerStore.write, iter(range(12))

        async def conflicting(self: LedgerStore, *written: object) -> None:
            if next(conflicts, None) is not None:
                raise asyncpg.SerializationError("forced by the test")
            await original(self, *written)  # type: ignore[arg-type]

        monkeypatch.setattr(LedgerStore, "write", conflicting)
        moved = await mm.create_transfer(funding.id, wallet.id, 25, "USD")
        assert mm.attempts == 2
        connection = await asyncpg.connect(api.dsn)
        try:
            count = await connection.fetchval(
                "SELECT count(*) FROM transfers WHERE request_id = $1", moved.request_id
            )
        finally:
            await connection.close()
        assert count == 1
        assert (await mm.get_balance(wallet.id)).posted_minor == 25


async def test_retries_are_bounded_and_keep_the_request_id(api: Api) -> None:
    await api.server.stop(0)  # nothing listens any more: every attempt is UNAVAILABLE
    policy = RetryPolicy(max_attempts=3, timeout_s=1, first_backoff_s=0.01)
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", _token(api), retry=policy) as mm:
        with pytest.raises(RetriesExhausted) as gave_up:
            await mm.create_transfer(
                "acct_" + "a" * 26, "acct_" + "b" * 26, 1, "USD", request_id="r-1"
            )
    assert gave_up.value.code == grpc.StatusCode.UNAVAILABLE
    assert gave_up.value.request_id == "r-1"
    assert mm.attempts == 3


async def test_events_are_listed_page_by_page_and_an_expired_cursor_is_typed(api: Api) -> None:
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", _token(api)) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        moved = await mm.create_transfer(funding.id, wallet.id, 5, "USD")
        first = await mm.list_events(page_size=2)
        assert [e.account.id for e in first.events] == [funding.id, wallet.id]
        rest = await mm.list_events(after_cursor=first.next_cursor)
        assert [e.transfer.id for e in rest.events] == [moved.id]
        only = await mm.list_events(types=["TRANSFER_CREATED"], account_id=wallet.id)
        assert [e.cursor for e in only.events] == [rest.events[0].cursor]
        assert (await mm.list_events(start="NOW")).events == []
        with pytest.raises(InvalidRequest) as bad:
            await mm.list_events(after_cursor="x")
        assert bad.value.field_violations == [("after_cursor", "INVALID_FORMAT")]

        retention = Retention(
            api.database, event_retention_s=60, outcome_retention_s=86400, interval_s=60
        )
        await retention.prune_once(datetime.now(UTC) + timedelta(minutes=2))
        with pytest.raises(CursorExpired) as expired:
            await mm.list_events(after_cursor="1")
        assert expired.value.code == grpc.StatusCode.OUT_OF_RANGE
        assert expired.value.oldest_cursor == rest.next_cursor
        with pytest.raises(CursorExpired):
            await anext(mm.watch_events(after_cursor="1"))
