"""Tokens: issued, listed and revoked; a revoked token is refused from the very next call
on, with the token cache on; health and reflection open or behind a token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from moneymovement.service.tenants import TenantDirectory, UnknownTenant
from moneymovement.storage.session import Database
from moneymovement.v1 import account_service_pb2
from tests.e2e.conftest import Api, Client, failure, start_api, stop_api

# Long enough that only an invalidation, never expiry, can explain a refusal here.
CACHED = {"MM_AUTH_CACHE_TTL_S": "300"}


@pytest.fixture
async def cached_api(dsn: str) -> AsyncIterator[Api]:
    """A server caching token lookups, once its token-change listener is up."""
    api = await start_api(dsn, **CACHED)
    await _until(lambda: api.server.directory.caching)
    yield api
    await stop_api(api)


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _get(client: Client) -> grpc.StatusCode:
    """Any authenticated call: NOT_FOUND means the token was accepted."""
    request = account_service_pb2.GetAccountRequest(account_id="acct_" + "a" * 26)
    try:
        await client.accounts.GetAccount(request, metadata=client.md)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_revoked_token_is_refused_on_the_very_next_call(cached_api: Api) -> None:
    # Another directory on another pool: what the CLI or another replica does.
    other = await Database.connect(cached_api.dsn, max_size=2)
    try:
        admin = TenantDirectory(other, dsn=cached_api.dsn)
        for round_ in range(10):
            issued = await admin.create_token("tenant-a")
            client = Client(cached_api.channel, issued.token)
            assert await _get(client) == grpc.StatusCode.NOT_FOUND, round_
            assert await _get(client) == grpc.StatusCode.NOT_FOUND, round_  # from the cache

            revocation = await admin.revoke_token(issued.token_id)
            assert (revocation.servers, revocation.confirmed) == (1, 1), round_
            refused = await failure(client.accounts.GetAccount(
                account_service_pb2.GetAccountRequest(account_id="acct_" + "a" * 26),
                metadata=client.md,
            ))  # fmt: skip
            assert (refused.code, refused.reason) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_INVALID",
            ), round_
    finally:
        await other.close()
    # The tenant's other token still works.
    assert await _get(cached_api.a) == grpc.StatusCode.NOT_FOUND


async def test_the_cache_is_real_and_the_notification_is_what_empties_it(
    cached_api: Api,
) -> None:
    issued = await cached_api.server.directory.create_token("tenant-b")
    client = Client(cached_api.channel, issued.token)
    assert await _get(client) == grpc.StatusCode.NOT_FOUND
    connection = await asyncpg.connect(cached_api.dsn)
    try:
        # Revoked behind the trigger's back: no notification, so the cached answer stands.
        async with connection.transaction():
            await connection.execute("ALTER TABLE api_tokens DISABLE TRIGGER api_tokens_changed")
            await connection.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1", issued.token_id
            )
            await connection.execute("ALTER TABLE api_tokens ENABLE TRIGGER api_tokens_changed")
        assert await _get(client) == grpc.StatusCode.NOT_FOUND
        # Any change to the row notifies (an operator's UPDATE by hand too).
        await connection.execute(
            "UPDATE api_tokens SET revoked_at = revoked_at WHERE token_id = $1", issued.token_id
        )
    finally:
        await connection.close()
    assert await _get(client) == grpc.StatusCode.UNAUTHENTICATED


async def test_nothing_is_cached_while_the_listener_is_down(cached_api: Api) -> None:
    directory = cached_api.server.directory
    issued = await directory.create_token("tenant-a")
    client = Client(cached_api.channel, issued.token)
    assert await _get(client) == grpc.StatusCode.NOT_FOUND
    connection = await asyncpg.connect(cached_api.dsn)
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'moneymovement-token-changes'"
            " AND datname = current_database()"
        )
        await _until(lambda: not directory.caching)
        # A revocation nobody hears about: refused anyway, since nothing is cached now.
        async with connection.transaction():
            await connection.execute("ALTER TABLE api_tokens DISABLE TRIGGER api_tokens_changed")
            await connection.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1", issued.token_id
            )
            await connection.execute("ALTER TABLE api_tokens ENABLE TRIGGER api_tokens_changed")
        assert await _get(client) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await connection.close()
    await _until(lambda: directory.caching)  # it reconnects by itself
    assert await _get(cached_api.a) == grpc.StatusCode.NOT_FOUND


async def test_tokens_are_listed_without_secrets_and_created_for_existing_tenants(
    api: Api,
) -> None:
    directory = api.server.directory
    tenants = {str(t["name"]): str(t["tenant_id"]) for t in await directory.list_tenants()}
    by_name = await directory.create_token("tenant-a")
    by_id = await directory.create_token(tenants["tenant-a"])
    assert by_name.tenant_id == by_id.tenant_id == tenants["tenant-a"]
    assert by_name.token != by_id.token
    with pytest.raises(UnknownTenant):
        await directory.create_token("no-such-tenant")

    listed = await directory.list_tokens("tenant-a")
    assert {t["token_id"] for t in listed} >= {by_name.token_id, by_id.token_id}
    assert all(t["tenant_id"] == tenants["tenant-a"] for t in listed)
    assert set(listed[0]) == {
        "token_id", "tenant_id", "tenant_name", "created_at", "revoked_at", "holder_id",
    }  # fmt: skip
    assert len(await directory.list_tokens()) == len(listed) + 1  # tenant-b's

    first = (await directory.revoke_token(by_name.token_id)).revoked_at
    again = (await directory.revoke_token(by_name.token_id)).revoked_at
    assert first is not None
    assert again == first
    assert (await directory.revoke_token("tok_nothing")).revoked_at is None
    revoked = {t["token_id"]: t["revoked_at"] for t in await directory.list_tokens("tenant-a")}
    assert revoked[by_name.token_id] == first
    assert revoked[by_id.token_id] is None

    # Only digests are stored: no column of the table holds a token.
    connection = await asyncpg.connect(api.dsn)
    try:
        rows = await connection.fetch("SELECT * FROM api_tokens")
    finally:
        await connection.close()
    stored = " ".join(repr(value) for row in rows for value in row.values())
    assert by_name.token not in stored
    assert by_id.token not in stored


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "MM_LOG_FORMAT": "json"}
    return subprocess.run(
        [sys.executable, "-m", "moneymovement", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_the_tokens_command_and_revocation_from_another_process(cached_api: Api) -> None:
    created = await asyncio.to_thread(_cli, cached_api.dsn, "tokens", "create", "tenant-a")
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(": ", 1) for line in created.stdout.splitlines())
    token, token_id = fields["token"], fields["token_id"]
    client = Client(cached_api.channel, token)
    assert await _get(client) == grpc.StatusCode.NOT_FOUND

    listed = await asyncio.to_thread(_cli, cached_api.dsn, "tokens", "list", "tenant-a")
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout
    assert token not in listed.stdout

    revoked = await asyncio.to_thread(_cli, cached_api.dsn, "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "1 of 1 running servers confirmed" in revoked.stdout
    assert await _get(client) == grpc.StatusCode.UNAUTHENTICATED

    unknown = await asyncio.to_thread(_cli, cached_api.dsn, "tokens", "revoke", "tok_nope")
    assert unknown.returncode == 1
    assert "no token" in unknown.stderr
    no_tenant = await asyncio.to_thread(_cli, cached_api.dsn, "tokens", "create", "nobody")
    assert no_tenant.returncode == 1
    assert "no tenant" in no_tenant.stderr


async def _health(channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...]) -> object:
    request = health_pb2.HealthCheckRequest(service="")
    return await health_pb2_grpc.HealthStub(channel).Check(request, metadata=md, timeout=5)


async def _services(channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...]) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in stub.ServerReflectionInfo(iter([request]), metadata=md, timeout=5):
        return [s.name for s in reply.list_services_response.service]
    return []


async def test_health_and_reflection_are_open_by_default(api: Api) -> None:
    reply = await _health(api.channel, ())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[attr-defined]
    assert "moneymovement.v1.AccountService" in await _services(api.channel, ())
    # Nothing else is.
    missing = await failure(api.anonymous.accounts.GetAccount(
        account_service_pb2.GetAccountRequest(account_id="acct_" + "a" * 26)
    ))  # fmt: skip
    assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_health_and_reflection_can_require_a_token(dsn: str) -> None:
    api = await start_api(dsn, MM_OPEN_HEALTH_AND_REFLECTION="false")
    try:
        for call in (_health(api.channel, ()), _services(api.channel, ())):
            refused = await failure(call)
            assert (refused.code, refused.reason) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_MISSING",
            )
        bad = (("authorization", "Bearer mm_not-a-token"),)
        refused = await failure(_health(api.channel, bad))
        assert refused.reason == "TOKEN_INVALID"
        # Watch (a server stream) is guarded too.
        watch = health_pb2_grpc.HealthStub(api.channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in watch:
                pass
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED

        reply = await _health(api.channel, api.a.md)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[attr-defined]
        assert "moneymovement.v1.AccountService" in await _services(api.channel, api.a.md)
        watch = health_pb2_grpc.HealthStub(api.channel).Watch(
            health_pb2.HealthCheckRequest(service=""), metadata=api.a.md, timeout=5
        )
        async for update in watch:
            assert update.status == health_pb2.HealthCheckResponse.SERVING
            break
        watch.cancel()
    finally:
        await stop_api(api)
