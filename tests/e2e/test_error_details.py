"""Error details a program can act on without a second call (issue 18, its point 2 in
part): the account a refusal is about, what is left, what was asked and allowed."""

from __future__ import annotations

import grpc

from moneymovement.domain import ids
from moneymovement.v1 import account_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, failure

Code = grpc.StatusCode
INT64_MAX = 2**63 - 1


async def test_a_closed_account_is_named_by_every_rpc_that_refuses_it(api: Api) -> None:
    client = api.a
    closed = (await client.open("closing")).id
    await client.accounts.CloseAccount(
        apb.CloseAccountRequest(request_id="close", account_id=closed), metadata=client.md
    )
    wallet, _ = await client.fund("w", 100)
    calls = [
        client.accounts.FreezeAccount(
            apb.FreezeAccountRequest(request_id="f", account_id=closed), metadata=client.md
        ),
        client.accounts.UnfreezeAccount(
            apb.UnfreezeAccountRequest(request_id="u", account_id=closed), metadata=client.md
        ),
        client.accounts.UpdateAccount(
            apb.UpdateAccountRequest(request_id="n", account_id=closed, name="x"),
            metadata=client.md,
        ),
        client.pay("pay-in", wallet, closed, 1),
        client.pay("pay-out", closed, wallet, 1),
    ]
    for call in calls:
        refused = await failure(call)
        assert (refused.reason, refused.metadata.get("account_id")) == ("ACCOUNT_CLOSED", closed)


async def test_not_empty_insufficient_and_overflow_say_how_much_and_whose(api: Api) -> None:
    client = api.a
    wallet, _ = await client.fund("d", 1_000)
    shop = (await client.open("d-shop")).id
    hold = mpb.CreateTransferRequest(
        request_id="d-hold", debit_account_id=wallet, credit_account_id=shop, amount_minor=300,
        currency_code="USD", pending=True,
    )  # fmt: skip
    await client.movements.CreateTransfer(hold, metadata=client.md)

    not_empty = await failure(
        client.accounts.CloseAccount(
            apb.CloseAccountRequest(request_id="d-close", account_id=wallet), metadata=client.md
        )
    )
    assert not_empty.reason == "ACCOUNT_NOT_EMPTY"
    assert not_empty.metadata == {
        "account_id": wallet, "posted_minor": "1000", "pending_inbound_minor": "0",
        "pending_outbound_minor": "300", "pending_availability_minor": "0",
        "reserved_minor": "0",
    }  # fmt: skip

    short = await failure(client.pay("d-spend", wallet, shop, 701))
    assert short.reason == "INSUFFICIENT_FUNDS"
    assert {k: short.metadata[k] for k in ("account_id", "asked_minor", "available_minor",
                                           "floor_minor")} == {
        "account_id": wallet, "asked_minor": "701", "available_minor": "700", "floor_minor": "0",
    }  # fmt: skip

    sources = [
        await client.open(
            f"d-source-{n}",
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        )
        for n in range(2)
    ]
    # The shop's credit side is full: what it has posted with the open hold of 300
    # captured is the int64 maximum (a posting may not leave a hold uncapturable).
    too_much = await failure(client.pay("d-too-much", sources[0].id, shop, INT64_MAX))
    assert (too_much.reason, too_much.metadata) == ("BALANCE_OVERFLOW", {"account_id": shop})
    await client.pay("d-fill", sources[0].id, shop, INT64_MAX - 300)
    overflow = await failure(client.pay("d-overflow", sources[1].id, shop, 1))
    assert (overflow.reason, overflow.metadata) == ("BALANCE_OVERFLOW", {"account_id": shop})


async def test_batch_get_balances_names_every_missing_account(api: Api) -> None:
    client = api.a
    wallet, _ = await client.fund("b", 10)
    first, second = ids.new_id(ids.ACCOUNT), ids.new_id(ids.ACCOUNT)
    missing = await failure(
        client.balances.BatchGetBalances(
            bpb.BatchGetBalancesRequest(account_ids=[first, wallet, second, first]),
            metadata=client.md,
        )
    )
    assert (missing.code, missing.reason) == (Code.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert missing.metadata == {"account_id": first, "missing_account_ids": f"{first},{second}"}
    one = await failure(
        client.balances.BatchGetBalances(
            bpb.BatchGetBalancesRequest(account_ids=[wallet, second]), metadata=client.md
        )
    )
    assert one.metadata == {"account_id": second, "missing_account_ids": second}


async def test_a_whole_batch_of_missing_ids_fits_in_the_error(api: Api) -> None:
    asked = [ids.new_id(ids.ACCOUNT) for _ in range(100)]  # the most a batch may ask
    missing = await failure(
        api.a.balances.BatchGetBalances(
            bpb.BatchGetBalancesRequest(account_ids=asked), metadata=api.a.md
        )
    )
    assert (missing.code, missing.reason) == (Code.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert missing.metadata["missing_account_ids"].split(",") == asked
    assert len(missing.message) < 200
