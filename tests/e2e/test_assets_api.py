"""AssetService over a real port: tenant assets registered, listed beside the ISO 4217
table, used by accounts and transfers, refused where they do not belong, and never seen
by another tenant."""

from __future__ import annotations

import grpc

from moneymovement.domain.money import CURRENCY_EXPONENTS
from moneymovement.v1 import account_pb2, asset_pb2, transfer_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import asset_service_pb2 as pb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import payout_service_pb2 as ppb
from tests.e2e.conftest import Api, Client, Failure, failure

Code = grpc.StatusCode
ISO = asset_pb2.CURRENCY_KIND_ISO_4217
OWN = asset_pb2.CURRENCY_KIND_TENANT_ASSET
DEBIT = account_pb2.NORMAL_BALANCE_DEBIT
UNLIMITED = account_pb2.OVERDRAFT_MODE_UNLIMITED


async def register(
    client: Client, request_id: str, code: str, exponent: int, name: str = "", **more: str
) -> asset_pb2.Currency:
    request = pb.RegisterAssetRequest(
        request_id=request_id, currency_code=code, exponent=exponent, name=name or code, **more
    )
    return (await client.assets.RegisterAsset(request, metadata=client.md)).currency


async def currencies(client: Client, page_size: int = 0) -> list[asset_pb2.Currency]:
    """Every page of ListCurrencies, in order."""
    listed: list[asset_pb2.Currency] = []
    token = ""
    while True:
        request = pb.ListCurrenciesRequest(page_size=page_size, page_token=token)
        page = await client.assets.ListCurrencies(request, metadata=client.md)
        listed += page.currencies
        token = page.next_page_token
        if not token:
            return listed


async def test_register_then_list_with_the_iso_table(api: Api) -> None:
    coin = await register(api.a, "r1", "USDC", 6, "USD Coin", description="a dollar stable coin")
    assert (coin.currency_code, coin.exponent, coin.kind) == ("USDC", 6, OWN)
    assert (coin.name, coin.description) == ("USD Coin", "a dollar stable coin")
    assert coin.create_time.seconds > 0
    # The same request again answers from its recorded outcome; the same registration
    # under another request id answers the asset as it is.
    assert (
        await register(api.a, "r1", "USDC", 6, "USD Coin", description="a dollar stable coin")
        == coin
    )
    assert (
        await register(api.a, "r2", "USDC", 6, "USD Coin", description="a dollar stable coin")
        == coin
    )
    await register(api.a, "r3", "XAU", 4, "Gold, troy ounces")  # a metal ISO leaves out

    listed = await currencies(api.a)
    codes = [c.currency_code for c in listed]
    assert codes == sorted(codes)
    iso = {c.currency_code: c.exponent for c in listed if c.kind == ISO}
    assert iso == CURRENCY_EXPONENTS
    assert all(c.name == "" and not c.HasField("create_time") for c in listed if c.kind == ISO)
    own = [c for c in listed if c.kind == OWN]
    assert [(c.currency_code, c.exponent) for c in own] == [("USDC", 6), ("XAU", 4)]
    assert own[0] == coin
    # Small pages walk the same list.
    assert await currencies(api.a, page_size=7) == listed
    # Tenant B sees the ISO table only.
    assert [c for c in await currencies(api.b) if c.kind == OWN] == []


async def test_money_moves_in_an_asset_with_exact_balances(api: Api) -> None:
    await register(api.a, "pts", "POINTS", 0, "Loyalty points")
    md = api.a.md
    issuer = await api.a.open(
        "issuer", currency_code="POINTS", normal_balance=DEBIT, overdraft_mode=UNLIMITED
    )
    alice = await api.a.open("alice", currency_code="POINTS")
    bob = await api.a.open("bob", currency_code="POINTS")
    assert alice.currency_code == "POINTS"
    await api.a.pay("earn", issuer.id, alice.id, 1_000, "POINTS")
    await api.a.pay("gift", alice.id, bob.id, 250, "POINTS")
    hold = mpb.CreateTransferRequest(
        request_id="hold", debit_account_id=alice.id, credit_account_id=bob.id,
        amount_minor=100, currency_code="POINTS", pending=True,
    )  # fmt: skip
    held = (await api.a.movements.CreateTransfer(hold, metadata=md)).transfer
    assert held.state == transfer_pb2.Transfer.STATE_PENDING
    post = mpb.PostTransferRequest(request_id="post", transfer_id=held.id, amount_minor=60)
    await api.a.movements.PostTransfer(post, metadata=md)

    response = await api.a.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=[issuer.id, alice.id, bob.id]), metadata=md
    )
    got = [(b.currency_code, b.posted_minor, b.available_minor) for b in response.balances]
    assert got == [("POINTS", 1_000, 1_000), ("POINTS", 690, 690), ("POINTS", 310, 310)]
    statement = await api.a.balances.ListEntries(
        bpb.ListEntriesRequest(account_id=bob.id), metadata=md
    )
    assert {e.balance_after.currency_code for e in statement.entries} == {"POINTS"}
    last = max(statement.entries, key=lambda e: e.balance_after.version).balance_after
    assert (last.posted_minor, last.pending_inbound_minor) == (310, 0)

    # An asset is a currency of its own: it never meets another in one transfer.
    dollars = await api.a.open("dollars")
    mixed = await failure(api.a.pay("mixed", alice.id, dollars.id, 1, "POINTS"))
    assert (mixed.code, mixed.reason) == (Code.FAILED_PRECONDITION, "CURRENCY_MISMATCH")
    assert mixed.metadata["account_currency_code"] == "USD"
    named_usd = await failure(api.a.pay("as-usd", alice.id, bob.id, 1, "USD"))
    assert (named_usd.code, named_usd.reason) == (Code.FAILED_PRECONDITION, "CURRENCY_MISMATCH")
    listed = await api.a.accounts.ListAccounts(
        apb.ListAccountsRequest(currency_code="POINTS"), metadata=md
    )
    assert {a.id for a in listed.accounts} == {issuer.id, alice.id, bob.id}


async def test_registration_refusals(api: Api) -> None:
    for code in ("usdc", "1COIN", "AB", "ABCDEFGHIJKLM", "US-D", "ÄBC"):
        bad = await failure(register(api.a, f"bad-{len(code)}", code, 2))
        assert (bad.code, bad.reason) == (Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        assert bad.field_violations == [("currency_code", "INVALID_FORMAT")], code
    for exponent in (-1, 19):
        bad = await failure(register(api.a, "exp", "COIN", exponent))
        assert bad.field_violations == [("exponent", "OUT_OF_RANGE")]
    unnamed = pb.RegisterAssetRequest(request_id="unnamed", currency_code="COIN", exponent=2)
    bad = await failure(api.a.assets.RegisterAsset(unnamed, metadata=api.a.md))
    assert bad.field_violations == [("name", "REQUIRED")]

    for code, exponent in (("EUR", "2"), ("JPY", "0"), ("KWD", "3")):
        iso = await failure(register(api.a, f"iso-{code}", code, 2))
        assert (iso.code, iso.reason) == (Code.ALREADY_EXISTS, "ASSET_CODE_RESERVED")
        assert iso.metadata == {"currency_code": code, "exponent": exponent}

    await register(api.a, "gold", "GOLD", 3, "Gold grams")
    for request_id, exponent, name in (("gold-2", 2, "Gold grams"), ("gold-3", 3, "Gold")):
        taken = await failure(register(api.a, request_id, "GOLD", exponent, name))
        assert (taken.code, taken.reason) == (Code.ALREADY_EXISTS, "ASSET_CODE_TAKEN")
        assert taken.metadata == {"currency_code": "GOLD", "exponent": "3"}
    reused = await failure(register(api.a, "gold", "GOLD", 4, "Gold grams"))
    assert (reused.code, reused.reason) == (Code.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    # Nothing of it registered anything else.
    assert [c.currency_code for c in await currencies(api.a) if c.kind == OWN] == ["GOLD"]

    size = pb.ListCurrenciesRequest(page_size=1001)
    bad = await failure(api.a.assets.ListCurrencies(size, metadata=api.a.md))
    assert bad.field_violations == [("page_size", "OUT_OF_RANGE")]
    token = pb.ListCurrenciesRequest(page_token="bm90IGEgdG9rZW4")
    bad = await failure(api.a.assets.ListCurrencies(token, metadata=api.a.md))
    assert bad.field_violations == [("page_token", "INVALID_PAGE_TOKEN")]


def same_answer(one: Failure, other: Failure) -> None:
    assert (one.code, one.reason, one.message, one.metadata, one.field_violations) == (
        other.code, other.reason, other.message, other.metadata, other.field_violations,
    )  # fmt: skip


async def test_an_unregistered_code_is_answered_as_before(api: Api) -> None:
    """A code of an asset's shape nobody registered, and another tenant's asset, get the
    answer a malformed code gets at the edge: the answer an unknown currency always got."""
    await register(api.a, "a-coin", "ACOIN", 2, "A's coin")
    malformed = await failure(api.a.open("malformed", currency_code="us dollars"))
    assert malformed.field_violations == [("currency_code", "UNKNOWN_CURRENCY")]
    same_answer(await failure(api.a.open("unregistered", currency_code="XYZ")), malformed)
    same_answer(await failure(api.a.open("long", currency_code="NOTACOIN")), malformed)
    same_answer(await failure(api.b.open("a-coin-in-b", currency_code="ACOIN")), malformed)
    # The same request once the asset exists: the refusal was not recorded.
    await register(api.a, "xyz", "XYZ", 2, "now it exists")
    assert (await api.a.open("unregistered", currency_code="XYZ")).currency_code == "XYZ"

    customer, _ = await api.a.fund("f", 100)
    other = (await api.a.open("other")).id
    edge = await failure(api.a.pay("edge", customer, other, 1, "us"))
    assert edge.field_violations == [("currency_code", "UNKNOWN_CURRENCY")]
    same_answer(await failure(api.a.pay("zzz", customer, other, 1, "ZZZ")), edge)
    b_customer, _ = await api.b.fund("f", 100)
    b_other = (await api.b.open("other")).id
    same_answer(await failure(api.b.pay("acoin", b_customer, b_other, 1, "ACOIN")), edge)
    batch = mpb.CreateTransfersRequest(
        request_id="batch",
        transfers=[
            mpb.CreateTransfersRequest.Item(
                debit_account_id=customer,
                credit_account_id=other,
                amount_minor=1,
                currency_code=code,
            )
            for code in ("USD", "QQQ")
        ],
    )
    item = await failure(api.a.movements.CreateTransfers(batch, metadata=api.a.md))
    assert item.field_violations == [("transfers[1].currency_code", "UNKNOWN_CURRENCY")]


async def test_assets_stay_in_the_ledger(api: Api) -> None:
    """Rails move ISO 4217 currencies: no bank destination or payout in an asset."""
    await register(api.a, "coin", "COIN", 2, "Coin")
    wallet = await api.a.open("wallet", currency_code="COIN")
    destination = ppb.CreateExternalAccountRequest(
        request_id="dest", rail="simulated", currency_code="COIN", routing_reference="021000021",
        account_number="000123456789",
    )  # fmt: skip
    refused = await failure(api.a.payouts.CreateExternalAccount(destination, metadata=api.a.md))
    assert refused.field_violations == [("currency_code", "UNKNOWN_CURRENCY")]
    payout = ppb.CreatePayoutRequest(
        request_id="payout", account_id=wallet.id, external_account_id="xacct_" + "0" * 26,
        amount_minor=1, currency_code="COIN",
    )  # fmt: skip
    refused = await failure(api.a.payouts.CreatePayout(payout, metadata=api.a.md))
    assert ("currency_code", "UNKNOWN_CURRENCY") in refused.field_violations
