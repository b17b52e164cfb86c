"""The limits at the edge, each exceeded on purpose: the code, the reason, the RetryInfo,
and that the refused call changed nothing."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from moneymovement.client import MoneyMovementClient, RetryPolicy
from moneymovement.v1 import account_pb2, account_service_pb2
from tests.e2e.conftest import Api, failure, start_api, stop_api


def _retry_delay_s(call_error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(call_error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    raise AssertionError("no RetryInfo in the status details")


async def _refused(call: object) -> tuple[str, dict[str, str], float]:
    """(reason, ErrorInfo metadata, RetryInfo delay) of a RESOURCE_EXHAUSTED call."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay_s = _retry_delay_s(raised.value)

    async def again() -> None:
        raise raised.value

    info = await failure(again())
    return info.reason, info.metadata, delay_s


def _create(request_id: str) -> account_service_pb2.CreateAccountRequest:
    return account_service_pb2.CreateAccountRequest(
        request_id=request_id,
        currency_code="USD",
        normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
    )


async def _counts(dsn: str) -> tuple[int, int, int]:
    """Accounts, transfers and recorded request outcomes in the whole database."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM transfers),"
            " (SELECT count(*) FROM request_outcomes)"
        )
    finally:
        await connection.close()
    assert row is not None
    return row[0], row[1], row[2]


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def limited(dsn: str) -> object:
    """A server allowing 2 RPCs at once."""
    api = await start_api(dsn, MM_MAX_CONCURRENT_RPCS="2")
    yield api
    await stop_api(api)


async def test_calls_past_the_concurrency_limit_are_refused_at_once(limited: Api) -> None:
    api = limited
    account = await api.a.open("open-1")
    before = await _counts(api.dsn)
    blocker = await asyncpg.connect(api.dsn)
    watcher = await asyncpg.connect(api.dsn)
    try:
        # Two reads that wait on a table lock hold both slots.
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        get = account_service_pb2.GetAccountRequest(account_id=account.id)
        stuck = [
            asyncio.ensure_future(api.a.accounts.GetAccount(get, metadata=api.a.md))
            for _ in range(2)
        ]

        async def both_waiting() -> bool:
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            return bool(waiting >= 2)

        await _until(both_waiting)

        loop = asyncio.get_running_loop()
        started = loop.time()
        reason, metadata, delay_s = await _refused(
            api.a.accounts.CreateAccount(_create("refused-1"), metadata=api.a.md)
        )
        assert loop.time() - started < 1.0  # answered, not queued behind the lock
        assert reason == "OVERLOADED"
        assert metadata == {"max_concurrent_rpcs": "2"}
        assert delay_s == pytest.approx(0.1)
        # Whoever asks, and even without a token: the limit comes before the lookup.
        reason, _, _ = await _refused(api.anonymous.accounts.GetAccount(get))
        assert reason == "OVERLOADED"
        # Probes are not counted: a server refusing load still answers its health checks.
        health = health_pb2_grpc.HealthStub(api.channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        await lock.rollback()
        results = await asyncio.gather(*stuck)  # the two in flight were served normally
        assert [r.account.id for r in results] == [account.id, account.id]
    finally:
        await blocker.close()
        await watcher.close()
    assert await _counts(api.dsn) == before  # the refused CreateAccount left no trace
    # Slots are free again, and the refused request id was never recorded: it runs now.
    created = await api.a.accounts.CreateAccount(_create("refused-1"), metadata=api.a.md)
    assert created.account.id


async def test_a_tenant_past_its_rate_is_refused_with_the_time_to_wait(dsn: str) -> None:
    api = await start_api(dsn, MM_TENANT_RATE_PER_S="2", MM_TENANT_BURST="3")
    try:
        account = await api.a.open("rate-1")
        get = account_service_pb2.GetAccountRequest(account_id=account.id)
        await api.a.accounts.GetAccount(get, metadata=api.a.md)
        await api.a.accounts.GetAccount(get, metadata=api.a.md)  # the burst of 3 is used up
        before = await _counts(api.dsn)

        reason, metadata, delay_s = await _refused(
            api.a.accounts.CreateAccount(_create("rate-2"), metadata=api.a.md)
        )
        assert reason == "RATE_LIMITED"
        assert metadata == {"rate_per_s": "2", "burst": "3"}
        assert 0 < delay_s <= 0.5  # one call per 0.5 s
        assert await _counts(api.dsn) == before  # nothing changed, nothing recorded

        # Another tenant has its own bucket.
        await api.b.open("rate-b")
        # After the delay the same request is accepted, and runs once.
        await asyncio.sleep(delay_s)
        created = await api.a.accounts.CreateAccount(_create("rate-2"), metadata=api.a.md)
        assert created.account.id
        accounts, _, outcomes = await _counts(api.dsn)
        assert (accounts, outcomes) == (before[0] + 2, before[2] + 2)  # rate-b and rate-2
        # Probes do not count against any tenant.
        health = health_pb2_grpc.HealthStub(api.channel)
        for _ in range(5):
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await stop_api(api)


async def test_the_client_waits_out_the_retry_delay(dsn: str) -> None:
    api = await start_api(dsn, MM_TENANT_RATE_PER_S="20", MM_TENANT_BURST="1")
    token = api.a.md[0][1].removeprefix("Bearer ")
    try:
        async with MoneyMovementClient(
            f"127.0.0.1:{api.port}", token, RetryPolicy(max_attempts=20)
        ) as client:
            opened = [
                await client.create_account(currency_code="USD", normal_balance="CREDIT")
                for _ in range(5)
            ]
            assert len({a.id for a in opened}) == 5
    finally:
        await stop_api(api)
    accounts, _, _ = await _counts(api.dsn)
    assert accounts == 5


async def test_a_message_over_the_limit_is_refused_by_grpc(dsn: str) -> None:
    api = await start_api(dsn, MM_MAX_MESSAGE_BYTES="2048")
    try:
        request = _create("big-1")
        request.metadata.update({f"k{i}": "v" * 400 for i in range(10)})  # ~4 KiB
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.a.accounts.CreateAccount(request, metadata=api.a.md)
        # gRPC itself refuses it, before our code: no ErrorInfo, and no RetryInfo since
        # the same message would be refused again.
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await _counts(api.dsn) == (0, 0, 0)
        assert (await api.a.open("small-1")).id  # the server serves on
    finally:
        await stop_api(api)


async def test_metadata_over_the_limit_is_refused_by_grpc(dsn: str) -> None:
    api = await start_api(dsn, MM_MAX_METADATA_BYTES="2048")
    try:
        padded = (*api.a.md, ("x-padding", "p" * 3000))
        for _ in range(5):  # every time: the soft and hard limits are the same
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await api.a.accounts.CreateAccount(_create("padded-1"), metadata=padded)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await _counts(api.dsn) == (0, 0, 0)
        assert (await api.a.open("plain-1")).id
    finally:
        await stop_api(api)
