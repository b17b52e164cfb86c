"""Races over a real port: many writers on one balance, a hot account, one request id.

Each test lets the server's own retries run and then checks, in PostgreSQL itself, that
every request had exactly the effect it reported: no lost update, no double effect.
"""

from __future__ import annotations

import asyncio
import collections
import random

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from moneymovement.v1 import account_pb2
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client

Code = grpc.StatusCode
ABORTED_REASONS = {"CONCURRENCY_CONFLICT", "REQUEST_IN_PROGRESS"}


def code_and_reason(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason of a failed call (reason '' if none)."""
    assert isinstance(error, grpc.aio.AioRpcError), repr(error)
    status = rpc_status.from_call(error)
    reason = ""
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "moneymovement"
            reason = info.reason
    return error.code(), reason


async def available(api: Api, *account_ids: str) -> list[int]:
    reply = await api.a.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=account_ids), metadata=api.a.md
    )
    return [b.available_minor for b in reply.balances]


async def transfer_rows(dsn: str, request_ids: list[str]) -> dict[str, list[str]]:
    """request id -> the transfer ids stored with it."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT request_id, transfer_id FROM transfers WHERE request_id = ANY($1::text[])",
            request_ids,
        )
    finally:
        await connection.close()
    found: dict[str, list[str]] = collections.defaultdict(list)
    for row in rows:
        found[row["request_id"]].append(row["transfer_id"])
    return found


async def pay_until_settled(
    client: Client, request_id: str, debit: str, credit: str, amount: int, tries: int
) -> tuple[mpb.CreateTransferResponse | None, str, int]:
    """Sends one request, resending the same request id while it is ABORTED.

    Returns (response or None, the final refusal reason or '', how many resends).
    """
    for attempt in range(tries):
        try:
            return await client.pay(request_id, debit, credit, amount), "", attempt
        except grpc.aio.AioRpcError as error:
            code, reason = code_and_reason(error)
            if code == Code.ABORTED and reason in ABORTED_REASONS and attempt + 1 < tries:
                await asyncio.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            if code == Code.FAILED_PRECONDITION and reason == "INSUFFICIENT_FUNDS":
                return None, reason, attempt
            raise AssertionError(f"{request_id}: {code.name} {reason} {error.details()}") from error
    raise AssertionError("unreachable")


async def fund(client: Client, request_id: str, amount: int) -> tuple[str, str]:
    """Client.fund, resent while ABORTED: setting up many accounts at once also races."""
    for attempt in range(10):
        try:
            return await client.fund(request_id, amount)
        except grpc.aio.AioRpcError as error:
            if code_and_reason(error)[0] != Code.ABORTED or attempt == 9:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


@pytest.mark.timeout(120)
async def test_concurrent_debits_never_overdraw_and_spend_exactly_the_balance(api: Api) -> None:
    n, k, amount = 64, 23, 100
    funding = await api.a.open(
        "od-funding",
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    wallet = await api.a.open(
        "od-wallet",
        normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_NONE,
    )
    sinks = [(await api.a.open(f"od-sink-{i}")).id for i in range(4)]
    await api.a.pay("od-fund", funding.id, wallet.id, k * amount)

    request_ids = [f"od-{i}" for i in range(n)]
    results = await asyncio.gather(
        *(api.a.pay(rid, wallet.id, sinks[i % 4], amount) for i, rid in enumerate(request_ids)),
        return_exceptions=True,
    )
    succeeded = [rid for rid, r in zip(request_ids, results, strict=True) if not _failed(r)]
    insufficient, aborted = [], []
    for rid, result in zip(request_ids, results, strict=True):
        if not _failed(result):
            continue
        assert isinstance(result, BaseException)
        code, reason = code_and_reason(result)
        if (code, reason) == (Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"):
            insufficient.append(rid)
        elif code == Code.ABORTED and reason in ABORTED_REASONS:
            aborted.append(rid)
        else:
            raise AssertionError(f"{rid}: unexpected {code.name} {reason}")
    print(
        f"\n64 debits: {len(succeeded)} ok, {len(insufficient)} insufficient, "
        f"{len(aborted)} aborted"
    )
    assert len(succeeded) + len(insufficient) + len(aborted) == n
    if aborted:
        assert len(succeeded) <= k
        for rid in aborted:
            i = request_ids.index(rid)
            response, _, _ = await pay_until_settled(
                api.a, rid, wallet.id, sinks[i % 4], amount, tries=20
            )
            if response is not None:
                succeeded.append(rid)
    assert len(succeeded) == k

    assert await available(api, wallet.id) == [0]
    assert sum(await available(api, *sinks)) == k * amount
    rows = await transfer_rows(api.dsn, request_ids)
    assert sorted(rows) == sorted(succeeded)
    assert all(len(ids) == 1 for ids in rows.values())


@pytest.mark.timeout(120)
async def test_a_hot_merchant_account_gets_every_transfer_exactly_once(api: Api) -> None:
    clients_n, per_client = 32, 10
    merchant = (await api.a.open("hot-merchant")).id
    customers = await asyncio.gather(*(fund(api.a, f"hot-c{c}", 100_000) for c in range(clients_n)))
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") for _ in range(4)]
    retries: list[int] = []
    try:
        clients = []
        for channel in channels:
            client = Client(channel, None)
            client.md = api.a.md
            clients.append(client)

        async def one_client(c: int) -> list[tuple[str, int, str]]:
            client = clients[c % len(clients)]
            customer, _ = customers[c]
            done = []
            for i in range(per_client):
                rid, amount = f"hot-{c}-{i}", 1 + c * per_client + i
                response, refusal, resent = await pay_until_settled(
                    client, rid, customer, merchant, amount, tries=10
                )
                assert response is not None, (rid, refusal)
                retries.append(resent)
                done.append((rid, amount, response.transfer.id))
            return done

        per_client_results = await asyncio.gather(*(one_client(c) for c in range(clients_n)))
    finally:
        for channel in channels:
            await channel.close()

    done = [t for client_results in per_client_results for t in client_results]
    print(
        f"\nhot account: {len(done)} transfers, {sum(retries)} client retries "
        f"({sum(1 for r in retries if r)} transfers needed one or more, at most {max(retries)})"
    )
    assert len(done) == clients_n * per_client
    assert len({transfer_id for _, _, transfer_id in done}) == len(done)
    rows = await transfer_rows(api.dsn, [rid for rid, _, _ in done])
    assert {rid: ids for rid, ids in rows.items()} == {
        rid: [transfer_id] for rid, _, transfer_id in done
    }
    total = sum(amount for _, amount, _ in done)
    assert await available(api, merchant) == [total]
    for c, (customer, _) in enumerate(customers):
        spent = sum(1 + c * per_client + i for i in range(per_client))
        assert await available(api, customer) == [100_000 - spent]


@pytest.mark.timeout(120)
async def test_fifty_copies_of_one_request_at_once_have_one_effect(api: Api) -> None:
    customer, _ = await api.a.fund("same", 1_000)
    merchant = (await api.a.open("same-m")).id
    results = await asyncio.gather(
        *(api.a.pay("same-pay", customer, merchant, 7) for _ in range(50)),
        return_exceptions=True,
    )
    ok = [r for r in results if not _failed(r)]
    failed = [r for r in results if _failed(r)]
    print(f"\n50 copies: {len(ok)} ok, {len(failed)} aborted")
    assert ok, "no copy succeeded"
    ids = {r.transfer.id for r in ok if isinstance(r, mpb.CreateTransferResponse)}
    assert len(ids) == 1
    for error in failed:
        assert isinstance(error, BaseException)
        code, reason = code_and_reason(error)
        assert code == Code.ABORTED, (code, reason)
        assert reason in ABORTED_REASONS, (code, reason)

    rows = await transfer_rows(api.dsn, ["same-pay"])
    assert rows == {"same-pay": list(ids)}
    connection = await asyncpg.connect(api.dsn)
    try:
        outcomes = await connection.fetchval(
            "SELECT count(*) FROM request_outcomes WHERE request_id = 'same-pay'"
        )
    finally:
        await connection.close()
    assert outcomes == 1
    assert await available(api, customer, merchant) == [993, 7]
    replay = await api.a.pay("same-pay", customer, merchant, 7)
    assert {replay.transfer.id} == ids


def _failed(result: object) -> bool:
    if isinstance(result, grpc.aio.AioRpcError):
        return True
    if isinstance(result, BaseException):
        raise result
    return False
