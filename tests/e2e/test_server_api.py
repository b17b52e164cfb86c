"""Authentication, tenant isolation, health and reflection on a real port."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from moneymovement.transport.server import SERVICE_NAMES
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client, failure

Code = grpc.StatusCode


async def test_calls_without_a_valid_token_are_unauthenticated(api: Api) -> None:
    missing = await failure(api.anonymous.accounts.ListAccounts(apb.ListAccountsRequest()))
    assert (missing.code, missing.reason) == (Code.UNAUTHENTICATED, "TOKEN_MISSING")
    forged = Client(api.channel, "mm_not-a-real-token")
    invalid = await failure(
        forged.accounts.ListAccounts(apb.ListAccountsRequest(), metadata=forged.md)
    )
    assert (invalid.code, invalid.reason) == (Code.UNAUTHENTICATED, "TOKEN_INVALID")
    mutation = await failure(api.anonymous.open("nope"))
    assert (mutation.code, mutation.reason) == (Code.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_another_tenants_ids_look_exactly_like_missing_ones(api: Api) -> None:
    theirs, _ = await api.b.fund("b", 100)
    made_up = "acct_" + "z" * 26
    mine = (await api.a.open("mine")).id

    async def get(account_id: str) -> tuple[object, ...]:
        got = await failure(
            api.a.accounts.GetAccount(
                apb.GetAccountRequest(account_id=account_id), metadata=api.a.md
            )
        )
        return (got.code, got.reason, got.message.replace(account_id, "<id>"), sorted(got.metadata))

    async def pay(account_id: str) -> tuple[object, ...]:
        got = await failure(api.a.pay("p-" + account_id[-6:], account_id, mine, 1))
        return (got.code, got.reason, got.message.replace(account_id, "<id>"), sorted(got.metadata))

    async def balance(account_id: str) -> tuple[object, ...]:
        got = await failure(
            api.a.balances.GetBalance(
                bpb.GetBalanceRequest(account_id=account_id), metadata=api.a.md
            )
        )
        return (got.code, got.reason, got.message.replace(account_id, "<id>"))

    for probe in (get, pay, balance):
        assert await probe(theirs) == await probe(made_up)
    assert (await get(theirs))[:2] == (Code.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    listed = await api.a.accounts.ListAccounts(apb.ListAccountsRequest(), metadata=api.a.md)
    assert theirs not in {a.id for a in listed.accounts}
    # Another tenant's account is as unknown as a made-up one: NOT_FOUND, not "no activity".
    for account_id in (theirs, made_up):
        hidden = await failure(
            api.a.movements.ListTransfers(
                mpb.ListTransfersRequest(account_id=account_id), metadata=api.a.md
            )
        )
        assert (hidden.code, hidden.reason) == (Code.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        assert hidden.metadata == {"account_id": account_id}
    mine = await api.a.open("quiet")
    quiet = await api.a.movements.ListTransfers(
        mpb.ListTransfersRequest(account_id=mine.id), metadata=api.a.md
    )
    assert list(quiet.transfers) == []  # an account of its own without transfers: empty


async def test_health_overall_and_per_service_needs_no_token(api: Api) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", *SERVICE_NAMES):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_services(api: Api) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in reply.list_services_response.service}
    assert {*SERVICE_NAMES, "grpc.health.v1.Health"} <= names
