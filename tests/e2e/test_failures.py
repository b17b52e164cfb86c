"""Failures over a real port: a lost COMMIT reply, a deadline and a cancel while blocked.

After each failure the tests check what PostgreSQL holds (at most one effect, the right
one), that the server gave its connections back, and that resending the same request id
ends with exactly one transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, failure, start_api, stop_api
from tests.ledger_checks import assert_ledger_consistent
from tests.tcp_proxy import TcpProxy

Code = grpc.StatusCode
# Sessions on the test's database, other than the checker's and the lock holder's.
SESSIONS = """
SELECT pid, state, wait_event_type, left(query, 80) AS query FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> ALL($1::int[])
"""


async def available(api: Api, *account_ids: str) -> list[int]:
    reply = await api.a.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=account_ids), metadata=api.a.md
    )
    return [b.available_minor for b in reply.balances]


async def transfer_ids(dsn: str, request_id: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT transfer_id FROM transfers WHERE request_id = $1", request_id
        )
    finally:
        await connection.close()
    return [row["transfer_id"] for row in rows]


async def sessions(dsn: str, exclude: tuple[int, ...] = ()) -> list[dict[str, object]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await connection.fetch(SESSIONS, list(exclude))]
    finally:
        await connection.close()


async def busy_sessions(dsn: str, exclude: tuple[int, ...] = ()) -> list[dict[str, object]]:
    """Sessions inside a transaction, or running anything but the health probe."""
    return [
        s
        for s in await sessions(dsn, exclude)
        if str(s["state"]).startswith("idle in transaction")
        or (s["state"] == "active" and s["query"] != "SELECT 1;")
    ]


async def wait_until_blocked_on_a_lock(dsn: str, holder: int) -> None:
    """Until a server session waits on a lock (the one `holder` holds)."""

    async def nobody_waits() -> object:
        found = await sessions(dsn, (holder,))
        return None if any(s["wait_event_type"] == "Lock" for s in found) else found

    await eventually(nobody_waits, 5.0, "no server session waits on the row lock")


async def eventually(check: Callable[[], Awaitable[object]], timeout_s: float, what: str) -> None:
    """Polls `check` until it returns something falsy; fails with the last thing it
    returned (the problem) after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        problem = await check()
        if not problem:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what} after {timeout_s} s: {problem}")
        await asyncio.sleep(0.05)


async def assert_server_settles(
    api: Api, timeout_s: float = 2.0, exclude: tuple[int, ...] = ()
) -> None:
    """No connection of the pool stays in use, none stays in a transaction or busy."""

    async def leaks() -> object:
        in_use, _ = api.database.pool_stats()
        busy = await busy_sessions(api.dsn, exclude)
        if in_use or busy:
            return {"pool_in_use": in_use, "sessions": busy}
        return None

    await eventually(leaks, timeout_s, "the server did not give its connections back")


@asynccontextmanager
async def row_lock(dsn: str, account_id: str) -> AsyncIterator[int]:
    """Holds FOR UPDATE on one account row in an open transaction until the block ends;
    gives the holder's backend pid."""
    connection = await asyncpg.connect(dsn)
    transaction = connection.transaction()
    await transaction.start()
    try:
        locked = await connection.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE) l",
            account_id,
        )
        assert locked == 1
        yield connection.get_server_pid()
    finally:
        await transaction.rollback()
        await connection.close()


def transfer_request(
    request_id: str, debit: str, credit: str, amount: int
) -> mpb.CreateTransferRequest:
    return mpb.CreateTransferRequest(
        request_id=request_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount,
        currency_code="USD",
    )


# --- 4. the reply to COMMIT is lost ---------------------------------------------------------


@asynccontextmanager
async def api_behind_proxy(dsn: str) -> AsyncIterator[tuple[Api, TcpProxy]]:
    """conftest's start_api, with every database connection of the server through a proxy.

    `Api.dsn` is the direct DSN, for the test's own checks.
    """
    parts = urlsplit(dsn)
    assert parts.hostname is not None
    assert parts.port is not None
    proxy = TcpProxy(parts.hostname, parts.port)
    port = await proxy.start()
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    proxied = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{port}"))
    try:
        api = await start_api(proxied)
    except BaseException:
        await proxy.close()
        raise
    api.dsn = dsn
    try:
        yield api, proxy
    finally:
        await stop_api(api)
        await proxy.close()


@pytest.mark.timeout(120)
async def test_a_lost_commit_reply_is_unavailable_and_a_resend_returns_the_committed_transfer(
    dsn: str,
) -> None:
    async with api_behind_proxy(dsn) as (api, proxy):
        customer, _ = await api.a.fund("lost", 1_000)
        merchant = (await api.a.open("lost-m")).id
        request = transfer_request("lost-commit-pay", customer, merchant, 250)

        proxy.arm(b"lost-commit-pay")
        lost = await failure(api.a.movements.CreateTransfer(request, metadata=api.a.md))
        assert (lost.code, lost.reason) == (Code.UNAVAILABLE, "DATABASE_UNAVAILABLE"), lost
        assert proxy.drops == 1

        # The server committed even though its client never heard so.
        async def not_committed() -> object:
            ids = await transfer_ids(dsn, "lost-commit-pay")
            return None if ids else "no transfer row"

        await eventually(not_committed, 5.0, "the COMMIT did not take effect")
        [committed_id] = await transfer_ids(dsn, "lost-commit-pay")
        proxy.disarm()

        replay = await api.a.movements.CreateTransfer(request, metadata=api.a.md)
        assert replay.transfer.id == committed_id
        assert await transfer_ids(dsn, "lost-commit-pay") == [committed_id]
        assert await available(api, customer, merchant) == [750, 250]
        await assert_server_settles(api)
    await assert_ledger_consistent(dsn)


# --- 5. the deadline passes while the transaction waits on a row lock ----------------------


async def setup_accounts(api: Api, prefix: str) -> tuple[str, str]:
    customer, _ = await api.a.fund(prefix, 1_000)
    merchant = (await api.a.open(prefix + "-m")).id
    return customer, merchant


async def deadline_while_blocked(api: Api, request: mpb.CreateTransferRequest, holder: int) -> None:
    """Sends `request` with a 0.5 s deadline; it must block on the held lock and then fail
    with DEADLINE_EXCEEDED."""
    call = api.a.movements.CreateTransfer(request, metadata=api.a.md, timeout=0.5)
    blocked = asyncio.create_task(wait_until_blocked_on_a_lock(api.dsn, holder))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == Code.DEADLINE_EXCEEDED
    await blocked  # the deadline passed while the transaction waited on the lock


@pytest.mark.timeout(120)
async def test_a_deadline_while_blocked_on_a_lock_releases_everything(api: Api) -> None:
    customer, merchant = await setup_accounts(api, "dl")
    request = transfer_request("dl-pay", customer, merchant, 100)

    async with row_lock(api.dsn, customer) as holder:
        await deadline_while_blocked(api, request, holder)
    await asyncio.sleep(1.0)

    await assert_server_settles(api)
    assert await transfer_ids(api.dsn, "dl-pay") == []
    first = await api.a.movements.CreateTransfer(request, metadata=api.a.md)
    again = await api.a.movements.CreateTransfer(request, metadata=api.a.md)
    assert again.transfer.id == first.transfer.id
    assert await transfer_ids(api.dsn, "dl-pay") == [first.transfer.id]
    assert await available(api, customer, merchant) == [900, 100]


@pytest.mark.timeout(120)
async def test_a_deadline_cancels_the_database_wait_too(api: Api) -> None:
    """While the lock is still held, the server must not keep a connection waiting on it
    (or a transaction open) for a caller who is gone."""
    customer, merchant = await setup_accounts(api, "dw")
    request = transfer_request("dw-pay", customer, merchant, 100)

    async with row_lock(api.dsn, customer) as holder:
        await deadline_while_blocked(api, request, holder)
        await assert_server_settles(api, timeout_s=2.0, exclude=(holder,))
    assert await transfer_ids(api.dsn, "dw-pay") == []


# --- 6. the client cancels while the transaction waits on a row lock -----------------------


@pytest.mark.timeout(120)
async def test_a_cancelled_call_gives_its_connection_back(api: Api) -> None:
    customer, merchant = await setup_accounts(api, "cx")
    request = transfer_request("cx-pay", customer, merchant, 100)

    async with row_lock(api.dsn, customer) as holder:
        call = api.a.movements.CreateTransfer(request, metadata=api.a.md)
        await asyncio.sleep(0.2)
        await wait_until_blocked_on_a_lock(api.dsn, holder)
        assert call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await call.code() == Code.CANCELLED
    await assert_server_settles(api, timeout_s=2.0)

    assert len(await transfer_ids(api.dsn, "cx-pay")) <= 1
    first = await api.a.movements.CreateTransfer(request, metadata=api.a.md)
    again = await api.a.movements.CreateTransfer(request, metadata=api.a.md)
    assert again.transfer.id == first.transfer.id
    assert await transfer_ids(api.dsn, "cx-pay") == [first.transfer.id]
    assert await available(api, customer, merchant) == [900, 100]
