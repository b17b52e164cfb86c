"""AdminService: off by default; with the admin token, a tenant provisioned over it alone
serves traffic, and its token revoked over it is refused at once on two replicas; only
the admin token administers, and it means nothing to the tenant services."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest
from google.protobuf import descriptor_pb2, message_factory

from moneymovement.client import AdminClient, NotFound, PermissionDenied, ServerError
from moneymovement.observability.logging import configure_logging
from moneymovement.storage.tenants import token_digest
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import admin_service_pb2 as adpb
from moneymovement.v1 import admin_service_pb2_grpc as adgrpc
from moneymovement.v1 import holder_service_pb2 as hpb
from tests.e2e.conftest import Api, Client, failure, start_api, stop_api

ADMIN_TOKEN = "admin-" + "s3cret" * 8
ADMIN_ENV = {
    "MM_ADMIN_TOKEN_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
    # Long enough that only the revocation's invalidation can explain a refusal.
    "MM_AUTH_CACHE_TTL_S": "300",
}
SERVICE = adpb.DESCRIPTOR.services_by_name["AdminService"]


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _every_rpc(stub: adgrpc.AdminServiceStub) -> Iterator[tuple[str, object, object]]:
    """(name, stub method, a well-formed request) of every AdminService RPC, read from the
    descriptor so that a new RPC cannot be left out of the refusal checks."""
    filled = {
        "request_id": "r-1",
        "name": "someone",
        "tenant_id": "ten_" + "a" * 26,
        "token_id": "tok_" + "a" * 26,
    }
    for method in SERVICE.methods:
        request = message_factory.GetMessageClass(method.input_type)()
        for field in method.input_type.fields:
            if field.name in filled:
                setattr(request, field.name, filled[field.name])
        yield method.name, getattr(stub, method.name), request


async def _tenant_count(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM tenants"))
    finally:
        await connection.close()


@pytest.fixture
async def replicas(dsn: str) -> AsyncIterator[tuple[Api, Api]]:
    """Two servers with the admin token on one database, each caching token lookups."""
    first = await start_api(dsn, **ADMIN_ENV)
    second = await start_api(dsn, **ADMIN_ENV)
    try:
        await _until(lambda: first.server.directory.caching and second.server.directory.caching)
        yield first, second
    finally:
        await stop_api(second)
        await stop_api(first)


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_admin_service_is_off_by_default_whatever_the_call_sends(api: Api) -> None:
    stub = adgrpc.AdminServiceStub(api.channel)
    tenants_before = await _tenant_count(api.dsn)
    tenant_token = dict(api.a.md)["authorization"]
    for metadata in ((), _md(ADMIN_TOKEN), (("authorization", tenant_token),)):
        for name, call, request in _every_rpc(stub):
            refused = await failure(call(request, metadata=metadata))
            assert (refused.code, refused.reason) == (
                grpc.StatusCode.UNIMPLEMENTED,
                "ADMIN_DISABLED",
            ), name
            assert refused.metadata == {"setting": "MM_ADMIN_TOKEN_SHA256"}, name
    assert await _tenant_count(api.dsn) == tenants_before


async def test_a_tenant_provisioned_over_admin_service_serves_and_its_revocation_holds_everywhere(
    replicas: tuple[Api, Api], captured_logs: io.StringIO
) -> None:
    first, second = replicas
    admin = _md(ADMIN_TOKEN)
    stub_1 = adgrpc.AdminServiceStub(first.channel)
    stub_2 = adgrpc.AdminServiceStub(second.channel)

    made = await stub_1.CreateTenant(
        adpb.CreateTenantRequest(request_id="t-1", name="provisioned"), metadata=admin
    )
    assert made.created
    tenant = made.tenant
    assert tenant.tenant_id.startswith("ten_")
    assert tenant.name == "provisioned"
    assert tenant.live_token_count == 0
    again = await stub_2.CreateTenant(
        adpb.CreateTenantRequest(request_id="t-2", name="provisioned"), metadata=admin
    )
    assert (again.created, again.tenant.tenant_id) == (False, tenant.tenant_id)

    issued = await stub_1.CreateToken(
        adpb.CreateTokenRequest(request_id="k-1", tenant_id=tenant.tenant_id), metadata=admin
    )
    token, token_id = issued.bearer_token, issued.api_token.token_id
    assert token.startswith("mm_")
    assert token_id.startswith("tok_")
    assert issued.api_token.tenant_id == tenant.tenant_id
    assert issued.api_token.HasField("create_time")
    assert not issued.api_token.HasField("revoke_time")

    # It serves traffic, on either replica: accounts opened, money moved.
    on_1, on_2 = Client(first.channel, token), Client(second.channel, token)
    customer, _ = await on_1.fund("adm", 500)
    merchant = await on_2.open("adm-merchant")
    paid = await on_2.pay("adm-pay", customer, merchant.id, 200)
    assert paid.transfer.amount_minor == 200
    got = await on_1.accounts.GetAccount(
        apb.GetAccountRequest(account_id=customer), metadata=on_1.md
    )
    assert got.account.id == customer

    # Listed, page by page, and no answer carries a token or a digest.
    seen: list[adpb.Tenant] = []
    page_token = ""
    while True:
        page = await stub_2.ListTenants(
            adpb.ListTenantsRequest(page_size=1, page_token=page_token), metadata=admin
        )
        assert len(page.tenants) <= 1
        seen.extend(page.tenants)
        page_token = page.next_page_token
        if not page_token:
            break
    names = [t.name for t in seen]
    assert names == ["tenant-a", "tenant-b", "provisioned"], names
    assert seen[2].live_token_count == 1
    assert seen[0].live_token_count == 2  # one per replica's start_api
    listed = await stub_1.ListTokens(
        adpb.ListTokensRequest(tenant_id=tenant.tenant_id), metadata=admin
    )
    assert [t.token_id for t in listed.api_tokens] == [token_id]
    for answer in (page, listed, made, again):
        wire = answer.SerializeToString()
        assert token.encode() not in wire
        assert token_digest(token) not in wire
        assert token_digest(token).hex().encode() not in wire

    # Both replicas have the token cached: only the revocation can make them refuse it.
    for client in (on_1, on_2):
        await client.accounts.GetAccount(
            apb.GetAccountRequest(account_id=customer), metadata=client.md
        )
    revoked = await stub_2.RevokeToken(
        adpb.RevokeTokenRequest(request_id="v-1", token_id=token_id), metadata=admin
    )
    assert (revoked.replica_count, revoked.confirmed_replica_count) == (2, 2)
    assert revoked.all_replicas_confirmed
    assert revoked.token_id == token_id
    for client in (on_1, on_2):
        refused = await failure(
            client.accounts.GetAccount(
                apb.GetAccountRequest(account_id=customer), metadata=client.md
            )
        )
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")

    # Revoking again changes nothing; the listing shows the revocation.
    repeat = await stub_1.RevokeToken(
        adpb.RevokeTokenRequest(request_id="v-2", token_id=token_id), metadata=admin
    )
    assert repeat.revoke_time == revoked.revoke_time
    listed = await stub_1.ListTokens(
        adpb.ListTokensRequest(tenant_id=tenant.tenant_id), metadata=admin
    )
    assert listed.api_tokens[0].revoke_time == revoked.revoke_time

    # Each change is on its call's log line: who, what, which ids; never the token.
    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    done = {
        line["domain_event"]: line
        for line in lines
        if line.get("event") == "rpc_finished" and line.get("actor") == "admin"
        and "domain_event" in line
    }  # fmt: skip
    assert done["tenant_created"]["tenant_id"] == tenant.tenant_id
    assert done["token_created"]["token_id"] == token_id
    assert done["token_revoked"]["token_id"] == token_id
    assert token not in text
    assert ADMIN_TOKEN not in text


async def test_a_holder_scoped_token_from_admin_service_acts_for_its_holder_until_revoked(
    replicas: tuple[Api, Api],
) -> None:
    first, second = replicas
    stub, admin = adgrpc.AdminServiceStub(first.channel), _md(ADMIN_TOKEN)
    platform = first.a
    made = await platform.holders.CreateHolder(
        hpb.CreateHolderRequest(request_id="h-1", external_id="seller-1"), metadata=platform.md
    )
    holder_id = made.holder.holder_id
    platform_account = await platform.open("platform-own")

    issued = await stub.CreateToken(
        adpb.CreateTokenRequest(request_id="k-1", tenant_id=first.tenant_a, holder_id=holder_id),
        metadata=admin,
    )
    assert (issued.api_token.tenant_id, issued.api_token.holder_id) == (first.tenant_a, holder_id)
    listed = await stub.ListTokens(adpb.ListTokensRequest(tenant_id=first.tenant_a), metadata=admin)
    scopes = {t.token_id: t.holder_id for t in listed.api_tokens}
    assert scopes[issued.api_token.token_id] == holder_id
    assert sorted(scopes.values()) == ["", "", holder_id]  # the replicas' platform tokens

    # On either replica it acts for its holder: what it opens is the holder's, and the
    # platform's own account is, for it, an account that does not exist.
    on_1 = Client(first.channel, issued.bearer_token)
    on_2 = Client(second.channel, issued.bearer_token)
    opened = await on_1.open("scoped-1")
    assert opened.holder_id == holder_id
    got = await on_2.accounts.GetAccount(
        apb.GetAccountRequest(account_id=opened.id), metadata=on_2.md
    )
    assert got.account.holder_id == holder_id
    hidden = await failure(
        on_2.accounts.GetAccount(
            apb.GetAccountRequest(account_id=platform_account.id), metadata=on_2.md
        )
    )
    assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")

    # A holder the tenant does not have (made up, or another tenant's), or an id of no
    # holder's shape: refused, no token.
    other = await first.b.holders.CreateHolder(
        hpb.CreateHolderRequest(request_id="h-b", external_id="seller-b"), metadata=first.b.md
    )
    for holder, code, reason in (
        ("hld_" + "a" * 26, grpc.StatusCode.NOT_FOUND, "HOLDER_NOT_FOUND"),
        (other.holder.holder_id, grpc.StatusCode.NOT_FOUND, "HOLDER_NOT_FOUND"),
        ("seller-1", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ):
        refused = await failure(
            stub.CreateToken(
                adpb.CreateTokenRequest(
                    request_id="k-2", tenant_id=first.tenant_a, holder_id=holder
                ),
                metadata=admin,
            )
        )
        assert (refused.code, refused.reason) == (code, reason), holder
    again = await stub.ListTokens(adpb.ListTokensRequest(tenant_id=first.tenant_a), metadata=admin)
    assert len(again.api_tokens) == len(listed.api_tokens)

    # Revoked: refused at once by both replicas, which had it cached.
    revoked = await stub.RevokeToken(
        adpb.RevokeTokenRequest(request_id="v-1", token_id=issued.api_token.token_id),
        metadata=admin,
    )
    assert revoked.all_replicas_confirmed
    for client in (on_1, on_2):
        refused = await failure(
            client.accounts.GetAccount(
                apb.GetAccountRequest(account_id=opened.id), metadata=client.md
            )
        )
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_unknown_tenants_and_tokens_and_bad_input(replicas: tuple[Api, Api]) -> None:
    first, _ = replicas
    stub, admin = adgrpc.AdminServiceStub(first.channel), _md(ADMIN_TOKEN)
    nobody = "ten_" + "z" * 26
    for call in (
        stub.CreateToken(adpb.CreateTokenRequest(request_id="x", tenant_id=nobody), metadata=admin),
        stub.ListTokens(adpb.ListTokensRequest(tenant_id=nobody), metadata=admin),
    ):
        refused = await failure(call)
        assert (refused.code, refused.reason) == (grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")
        assert refused.metadata == {"tenant_id": nobody}
    # A tenant's name is no id here: tokens are made for the tenant with that id only.
    named = await failure(
        stub.CreateToken(
            adpb.CreateTokenRequest(request_id="y", tenant_id="tenant-a"), metadata=admin
        )
    )
    assert named.field_violations == [("tenant_id", "INVALID_FORMAT")]
    unknown = "tok_" + "z" * 26
    refused = await failure(
        stub.RevokeToken(adpb.RevokeTokenRequest(request_id="z", token_id=unknown), metadata=admin)
    )
    assert (refused.code, refused.reason, refused.metadata) == (
        grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND", {"token_id": unknown},
    )  # fmt: skip
    bad = await failure(stub.CreateTenant(adpb.CreateTenantRequest(), metadata=admin))
    assert sorted(bad.field_violations) == [("name", "REQUIRED"), ("request_id", "REQUIRED")]
    long_name = await failure(
        stub.CreateTenant(adpb.CreateTenantRequest(request_id="n", name="x" * 101), metadata=admin)
    )
    assert long_name.field_violations == [("name", "TOO_LONG")]
    other_scope = await stub.ListTokens(
        adpb.ListTokensRequest(tenant_id=first.tenant_a, page_size=1), metadata=admin
    )
    assert other_scope.next_page_token  # tenant-a has two tokens
    replayed = await failure(
        stub.ListTokens(
            adpb.ListTokensRequest(
                tenant_id=first.tenant_b, page_token=other_scope.next_page_token
            ),
            metadata=admin,
        )
    )
    assert replayed.field_violations == [("page_token", "INVALID_PAGE_TOKEN")]


async def test_only_the_admin_token_administers_and_it_is_no_tenant_token(
    replicas: tuple[Api, Api],
) -> None:
    first, _ = replicas
    stub = adgrpc.AdminServiceStub(first.channel)
    tenants_before = await _tenant_count(first.dsn)
    tenant_token = dict(first.a.md)["authorization"]
    for name, call, request in _every_rpc(stub):
        refused = await failure(call(request, metadata=(("authorization", tenant_token),)))
        assert (refused.code, refused.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "ADMIN_TOKEN_REQUIRED",
        ), name
        missing = await failure(call(request))
        assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
        for wrong in (ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1], "mm_" + "a" * 43):
            refused = await failure(call(request, metadata=_md(wrong)))
            assert (refused.code, refused.reason) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_INVALID",
            ), (name, wrong)
    assert await _tenant_count(first.dsn) == tenants_before
    # The admin token is unknown to the tenant services.
    admin_as_tenant = Client(first.channel, ADMIN_TOKEN)
    refused = await failure(
        admin_as_tenant.accounts.GetAccount(
            apb.GetAccountRequest(account_id="acct_" + "a" * 26), metadata=admin_as_tenant.md
        )
    )
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_the_python_admin_client(replicas: tuple[Api, Api], api: Api) -> None:
    first, _ = replicas
    target = f"127.0.0.1:{first.port}"
    async with AdminClient(target, ADMIN_TOKEN) as admin:
        made = await admin.create_tenant("by-client")
        assert made.created
        issued = await admin.create_token(made.tenant.tenant_id)
        second = await admin.create_token(made.tenant.tenant_id)
        listed = [t.token_id async for t in admin.iter_tokens(made.tenant.tenant_id, page_size=1)]
        assert listed == [issued.api_token.token_id, second.api_token.token_id]
        names = [t.name async for t in admin.iter_tenants(page_size=2)]
        assert names == ["tenant-a", "tenant-b", "by-client"]
        revoked = await admin.revoke_token(issued.api_token.token_id)
        # `api` (below) caches no tokens (MM_AUTH_CACHE_TTL_S 0): it has nothing to drop,
        # does not listen, and is not waited for.
        assert (revoked.replica_count, revoked.all_replicas_confirmed) == (2, True)
        with pytest.raises(NotFound) as missing:
            await admin.revoke_token("tok_" + "q" * 26)
        assert missing.value.reason == "TOKEN_NOT_FOUND"
    async with AdminClient(target, second.bearer_token) as tenant:
        with pytest.raises(PermissionDenied):
            await tenant.list_tenants()
    # `api` is a third replica of the same database, started without the admin digest:
    # there AdminService is off.
    async with AdminClient(f"127.0.0.1:{api.port}", ADMIN_TOKEN) as off:
        with pytest.raises(ServerError) as disabled:
            await off.list_tenants()
        assert disabled.value.reason == "ADMIN_DISABLED"


def test_every_admin_rpc_is_checked_here() -> None:
    # _every_rpc fills what each request needs from this list: a new field would be sent
    # empty, and the refusals above would then be INVALID_ARGUMENT.
    for method in SERVICE.methods:
        options = method.GetOptions().idempotency_level
        mutating = options != descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
        fields = {f.name for f in method.input_type.fields}
        assert not mutating or "request_id" in fields, method.name
        # holder_id is optional (CreateToken's scope): left empty, the request is whole.
        assert fields <= {
            "request_id", "name", "tenant_id", "token_id", "page_size", "page_token", "holder_id"
        }  # fmt: skip


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    yield buffer
    configure_logging("INFO", "console")
