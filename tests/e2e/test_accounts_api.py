"""AccountService over a real port: every RPC, its rejections and its pagination."""

from __future__ import annotations

import grpc

from moneymovement.v1 import account_pb2
from moneymovement.v1 import account_service_pb2 as pb
from tests.e2e.conftest import Api, failure

Code = grpc.StatusCode


async def test_create_get_and_replay_an_account(api: Api) -> None:
    created = await api.a.open(
        "acc-1", name="Alice", external_id="cust:42", holder_id="user_7", metadata={"tier": "gold"}
    )
    assert created.id.startswith("acct_")
    assert created.state == account_pb2.Account.STATE_ACTIVE
    assert created.overdraft_mode == account_pb2.OVERDRAFT_MODE_NONE
    got = await api.a.accounts.GetAccount(
        pb.GetAccountRequest(account_id=created.id), metadata=api.a.md
    )
    assert got.account == created
    replay = await api.a.open(
        "acc-1", name="Alice", external_id="cust:42", holder_id="user_7", metadata={"tier": "gold"}
    )
    assert replay == created
    changed = await failure(api.a.open("acc-1", name="Bob"))
    assert (changed.code, changed.reason) == (Code.ALREADY_EXISTS, "REQUEST_ID_REUSED")


async def test_external_id_is_unique_per_tenant(api: Api) -> None:
    first = await api.a.open("x1", external_id="ext-1")
    taken = await failure(api.a.open("x2", external_id="ext-1"))
    assert (taken.code, taken.reason) == (Code.ALREADY_EXISTS, "EXTERNAL_ID_TAKEN")
    # It names the account that has it: no second call needed.
    assert taken.metadata == {"external_id": "ext-1", "account_id": first.id}
    assert (await api.b.open("x1", external_id="ext-1")).external_id == "ext-1"


async def test_bad_create_names_every_field(api: Api) -> None:
    bad = await failure(
        api.a.accounts.CreateAccount(
            pb.CreateAccountRequest(
                request_id="no spaces allowed",
                # Malformed: a code of an asset's shape ("XYZ") is the ledger's to refuse,
                # after the fields the edge checks (tests/e2e/test_assets_api.py).
                currency_code="xyz",
                overdraft_mode=account_pb2.OVERDRAFT_MODE_NONE,
                overdraft_limit_minor=5,
                metadata={"bad key!": "v"},
            ),
            metadata=api.a.md,
        )
    )
    assert (bad.code, bad.reason) == (Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert dict(bad.field_violations) == {
        "request_id": "INVALID_FORMAT",
        "currency_code": "UNKNOWN_CURRENCY",
        "normal_balance": "REQUIRED",
        "overdraft_limit_minor": "OUT_OF_RANGE",
        "metadata[bad key!]": "INVALID_FORMAT",
    }
    # A code of an asset's shape nobody registered ("XYZ") is refused by the ledger, once
    # the fields the edge checks are right: the same answer, naming the same field.
    unknown = await failure(
        api.a.accounts.CreateAccount(
            pb.CreateAccountRequest(
                request_id="unknown-asset", currency_code="XYZ",
                normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            ),
            metadata=api.a.md,
        )
    )  # fmt: skip
    assert (unknown.code, unknown.field_violations) == (
        Code.INVALID_ARGUMENT, [("currency_code", "UNKNOWN_CURRENCY")],
    )  # fmt: skip


async def test_update_with_expected_version(api: Api) -> None:
    account = await api.a.open("u0")
    request = pb.UpdateAccountRequest(
        request_id="u1", account_id=account.id, name="Renamed", metadata={"a": "1"},
        overdraft_mode=account_pb2.OVERDRAFT_MODE_LIMITED, overdraft_limit_minor=300,
        expected_version=account.version,
    )  # fmt: skip
    updated = (await api.a.accounts.UpdateAccount(request, metadata=api.a.md)).account
    assert (updated.name, dict(updated.metadata), updated.overdraft_limit_minor) == (
        "Renamed", {"a": "1"}, 300,
    )  # fmt: skip
    assert updated.version == account.version + 1
    stale = pb.UpdateAccountRequest(
        request_id="u2", account_id=account.id, name="Again", expected_version=account.version
    )
    mismatch = await failure(api.a.accounts.UpdateAccount(stale, metadata=api.a.md))
    assert (mismatch.code, mismatch.reason) == (Code.FAILED_PRECONDITION, "VERSION_MISMATCH")
    removal = pb.UpdateAccountRequest(request_id="u3", account_id=account.id, metadata={"a": ""})
    cleared = (await api.a.accounts.UpdateAccount(removal, metadata=api.a.md)).account
    assert dict(cleared.metadata) == {}


async def test_lowering_a_limit_below_usage_is_refused(api: Api) -> None:
    limited = await api.a.open(
        "l0", overdraft_mode=account_pb2.OVERDRAFT_MODE_LIMITED, overdraft_limit_minor=100
    )
    sink = await api.a.open("l1")
    await api.a.pay("l2", limited.id, sink.id, 80)
    lower = pb.UpdateAccountRequest(
        request_id="l3", account_id=limited.id, overdraft_limit_minor=50
    )
    refused = await failure(api.a.accounts.UpdateAccount(lower, metadata=api.a.md))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "OVERDRAFT_LIMIT_IN_USE")


async def test_freeze_unfreeze_close(api: Api) -> None:
    account = await api.a.open("f0")
    md = api.a.md
    frozen = (
        await api.a.accounts.FreezeAccount(
            pb.FreezeAccountRequest(request_id="f1", account_id=account.id), metadata=md
        )
    ).account
    assert frozen.state == account_pb2.Account.STATE_FROZEN
    active = (
        await api.a.accounts.UnfreezeAccount(
            pb.UnfreezeAccountRequest(request_id="f2", account_id=account.id), metadata=md
        )
    ).account
    assert active.state == account_pb2.Account.STATE_ACTIVE
    closed = (
        await api.a.accounts.CloseAccount(
            pb.CloseAccountRequest(request_id="f3", account_id=account.id), metadata=md
        )
    ).account
    assert closed.state == account_pb2.Account.STATE_CLOSED
    refused = await failure(
        api.a.accounts.FreezeAccount(
            pb.FreezeAccountRequest(request_id="f4", account_id=account.id), metadata=md
        )
    )
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "ACCOUNT_CLOSED")


async def test_close_refuses_an_account_with_money(api: Api) -> None:
    customer, _ = await api.a.fund("c", 10)
    refused = await failure(
        api.a.accounts.CloseAccount(
            pb.CloseAccountRequest(request_id="c9", account_id=customer), metadata=api.a.md
        )
    )
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "ACCOUNT_NOT_EMPTY")


async def test_list_filters_and_paginates_without_gaps_or_repeats(api: Api) -> None:
    opened = [
        await api.a.open(f"p{i}", metadata={"batch": "x" if i % 2 else "y"}) for i in range(7)
    ]
    await api.a.open("p-eur", currency_code="EUR")
    await api.b.open("p-other-tenant")
    seen: list[str] = []
    token = ""
    while True:
        page = await api.a.accounts.ListAccounts(
            pb.ListAccountsRequest(page_size=3, page_token=token, currency_code="USD"),
            metadata=api.a.md,
        )
        seen += [a.id for a in page.accounts]
        token = page.next_page_token
        if not token:
            break
    assert seen == [a.id for a in reversed(opened)]  # newest first, each once
    x_only = await api.a.accounts.ListAccounts(
        pb.ListAccountsRequest(metadata={"batch": "x"}), metadata=api.a.md
    )
    assert {a.id for a in x_only.accounts} == {a.id for a in opened[1::2]}
    first = await api.a.accounts.ListAccounts(
        pb.ListAccountsRequest(page_size=1), metadata=api.a.md
    )
    mismatch = await failure(
        api.a.accounts.ListAccounts(
            pb.ListAccountsRequest(
                page_size=1, page_token=first.next_page_token, currency_code="EUR"
            ),
            metadata=api.a.md,
        )
    )
    assert (mismatch.code, mismatch.field_violations) == (
        Code.INVALID_ARGUMENT,
        [("page_token", "INVALID_PAGE_TOKEN")],
    )


async def test_the_attributes_version_ignores_money_moving(api: Api) -> None:
    client = api.a
    customer, funding = await client.fund("av", 1_000)
    read = (
        await client.accounts.GetAccount(
            pb.GetAccountRequest(account_id=customer), metadata=client.md
        )
    ).account
    assert read.attributes_version == 1
    await client.pay("av-in", funding, customer, 50)  # money moves after the read
    update = pb.UpdateAccountRequest(
        request_id="av-rename", account_id=customer, name="Renamed",
        expected_attributes_version=read.attributes_version,
    )  # fmt: skip
    renamed = (await client.accounts.UpdateAccount(update, metadata=client.md)).account
    assert (renamed.name, renamed.attributes_version) == ("Renamed", 2)
    assert renamed.version == read.version + 2  # the credit, then the rename
    # The version the read saw is stale: the money moved.
    stale = await failure(
        client.accounts.UpdateAccount(
            pb.UpdateAccountRequest(
                request_id="av-stale", account_id=customer, name="X", expected_version=read.version
            ),
            metadata=client.md,
        )
    )
    assert (stale.code, stale.reason) == (Code.FAILED_PRECONDITION, "VERSION_MISMATCH")
    assert stale.metadata == {
        "account_id": customer, "current_version": str(renamed.version),
        "current_attributes_version": "2",
    }  # fmt: skip
    # A second writer who read attributes_version 1 loses, whatever moved.
    late = await failure(
        client.accounts.FreezeAccount(
            pb.FreezeAccountRequest(
                request_id="av-freeze", account_id=customer, expected_attributes_version=1
            ),
            metadata=client.md,
        )
    )
    assert late.reason == "VERSION_MISMATCH"
    frozen = await client.accounts.FreezeAccount(
        pb.FreezeAccountRequest(request_id="av-freeze-2", account_id=customer,
                                expected_attributes_version=2),
        metadata=client.md,
    )  # fmt: skip
    assert frozen.account.attributes_version == 3
