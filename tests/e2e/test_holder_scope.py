"""Acting for a holder (docs/platforms.md, "Acting for a holder"): what such a call may
do, what only the platform may, and how `mm-holder` and holder-scoped tokens combine.
What it may not see is test_holder_isolation.py's."""

from __future__ import annotations

import grpc
import pytest

from moneymovement.client import MoneyMovementClient, PermissionDenied
from moneymovement.service.tenants import TenantDirectory
from moneymovement.v1 import account_pb2, funds_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import holder_service_pb2 as hpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client, failure

FORBIDS = (grpc.StatusCode.PERMISSION_DENIED, "HOLDER_SCOPE_FORBIDS")


def _as(client: Client, holder_id: str) -> Client:
    """The same client, acting for `holder_id` (mm-holder)."""
    acting = Client.__new__(Client)
    acting.__dict__.update(client.__dict__)
    acting.md = (*client.md, ("mm-holder", holder_id))
    return acting


async def _holder(platform: Client, external_id: str) -> str:
    made = await platform.holders.CreateHolder(
        hpb.CreateHolderRequest(request_id=f"make-{external_id}", external_id=external_id),
        metadata=platform.md,
    )
    return made.holder.holder_id


async def test_acting_for_a_holder_moves_its_money_and_credits_open_platform_accounts(
    api: Api,
) -> None:
    platform = api.a
    seller = await _holder(platform, "seller-1")
    other = await _holder(platform, "seller-2")
    funding = await platform.open(
        "funding",
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    fees = await platform.open("fees", open_to_holders=True)
    assert fees.open_to_holders
    closed_to_holders = await platform.open("treasury")
    sales = await platform.open("sales", holder_id=seller)
    await platform.pay("top-up", funding.id, sales.id, 10_000)
    me = _as(platform, seller)

    # Opening: the holder's own, money owed to it; nothing else.
    savings = await me.open("savings")
    assert (savings.holder_id, savings.normal_balance) == (
        seller,
        account_pb2.NORMAL_BALANCE_CREDIT,
    )
    for label, fields, expected in (
        ("debit-normal", {"normal_balance": account_pb2.NORMAL_BALANCE_DEBIT}, FORBIDS),
        ("overdraft", {"overdraft_mode": account_pb2.OVERDRAFT_MODE_UNLIMITED}, FORBIDS),
        ("open to holders", {"open_to_holders": True}, FORBIDS),
        ("another holder's", {"holder_id": other}, (grpc.StatusCode.NOT_FOUND, "HOLDER_NOT_FOUND")),
    ):
        request_id = "refused-" + label.replace(" ", "-").replace("'", "")
        refused = await failure(me.open(request_id, **fields))  # type: ignore[arg-type]
        assert (refused.code, refused.reason) == expected, label

    # Moving: out of its own accounts, into its own or a platform account open to holders.
    await me.pay("to-savings", sales.id, savings.id, 1_000)
    fee = await me.pay("fee", sales.id, fees.id, 250)
    assert fee.transfer.request_id == f"{seller}/fee"  # its request ids are its own
    unseen = await failure(me.pay("to-treasury", sales.id, closed_to_holders.id, 1))
    assert (unseen.code, unseen.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    for amount in (1, 10**15):  # refused before its balance is looked at: nothing told
        taken = await failure(me.pay(f"from-fees-{amount}", fees.id, sales.id, amount))
        assert (taken.code, taken.reason) == FORBIDS
        assert taken.metadata == {"holder_id": seller, "account_id": fees.id}
    # A hold the platform placed on its own account for the holder is the platform's.
    platform_hold = mpb.CreateTransferRequest(
        request_id="platform-hold", debit_account_id=fees.id, credit_account_id=sales.id,
        amount_minor=50, currency_code="USD", pending=True,
    )  # fmt: skip
    funded = await platform.pay("fund-fees", funding.id, fees.id, 50)
    assert funded.transfer.amount_minor == 50
    placed = (await platform.movements.CreateTransfer(platform_hold, metadata=platform.md)).transfer
    for end in (
        me.movements.VoidTransfer(
            mpb.VoidTransferRequest(request_id="void-platform-hold", transfer_id=placed.id),
            metadata=me.md,
        ),
        me.movements.PostTransfer(
            mpb.PostTransferRequest(request_id="take-platform-hold", transfer_id=placed.id),
            metadata=me.md,
        ),
    ):
        refused = await failure(end)
        assert (refused.code, refused.reason) == FORBIDS
    undo = mpb.ReverseTransferRequest(request_id="undo-fee", transfer_id=fee.transfer.id)
    refused = await failure(me.movements.ReverseTransfer(undo, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS  # the reversal would debit the fees
    hold = mpb.CreateTransferRequest(
        request_id="fee-hold", debit_account_id=sales.id, credit_account_id=fees.id,
        amount_minor=100, currency_code="USD", pending=True,
    )  # fmt: skip
    held = (await me.movements.CreateTransfer(hold, metadata=me.md)).transfer
    capture = mpb.PostTransferRequest(request_id="fee-capture", transfer_id=held.id)
    captured = (await me.movements.PostTransfer(capture, metadata=me.md)).transfer
    assert captured.posted_amount_minor == 100

    # Reading: its own accounts and what touches them; the open platform account is not
    # its to read.
    for read in (
        me.accounts.GetAccount(apb.GetAccountRequest(account_id=fees.id), metadata=me.md),
        me.balances.GetBalance(bpb.GetBalanceRequest(account_id=fees.id), metadata=me.md),
    ):
        hidden = await failure(read)
        assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    listed = await me.accounts.ListAccounts(apb.ListAccountsRequest(), metadata=me.md)
    assert sorted(a.id for a in listed.accounts) == sorted([sales.id, savings.id])
    moved = await me.movements.ListTransfers(mpb.ListTransfersRequest(), metadata=me.md)
    # The top-up, to savings, the fee, the captured hold, and the platform's hold to it.
    assert len(moved.transfers) == 5
    mine = {sales.id, savings.id}
    assert all({t.debit_account_id, t.credit_account_id} & mine for t in moved.transfers)
    balances = await me.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=[sales.id, savings.id]), metadata=me.md
    )
    assert [b.available_minor for b in balances.balances] == [10_000 - 1_000 - 250 - 100, 1_000]
    sums = await me.holders.GetHolderBalances(
        hpb.GetHolderBalancesRequest(holder_id=seller), metadata=me.md
    )
    assert [(s.currency_code, s.posted_minor) for s in sums.balances] == [("USD", 9_650)]
    holders = await me.holders.ListHolders(hpb.ListHoldersRequest(), metadata=me.md)
    assert [h.holder_id for h in holders.holders] == [seller]

    # Its events: only the holder's, showing only its own accounts' balances.
    events = await me.events.ListEvents(
        epb.ListEventsRequest(start=epb.EVENT_START_OLDEST, page_size=100), metadata=me.md
    )
    assert events.events
    shown = {b.account_id for e in events.events for b in e.balances}
    shown |= {e.account.id for e in events.events if e.HasField("account")}
    assert shown == mine, shown
    everything = await platform.events.ListEvents(
        epb.ListEventsRequest(start=epb.EVENT_START_OLDEST, page_size=100), metadata=platform.md
    )
    assert fees.id in {b.account_id for e in everything.events for b in e.balances}

    # What only the platform decides.
    change = apb.UpdateAccountRequest(
        request_id="overdraft", account_id=sales.id,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )  # fmt: skip
    refused = await failure(me.accounts.UpdateAccount(change, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS
    renamed = await me.accounts.UpdateAccount(
        apb.UpdateAccountRequest(request_id="rename", account_id=sales.id, name="Sales"),
        metadata=me.md,
    )
    assert renamed.account.name == "Sales"
    freeze = apb.FreezeAccountRequest(request_id="freeze", account_id=sales.id)
    refused = await failure(me.accounts.FreezeAccount(freeze, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS
    create = hpb.CreateHolderRequest(request_id="make-another", external_id="seller-3")
    refused = await failure(me.holders.CreateHolder(create, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS
    assert refused.metadata == {"holder_id": seller}


async def test_request_ids_of_a_holder_are_its_own(api: Api) -> None:
    platform = api.a
    seller = await _holder(platform, "seller-1")
    funding = await platform.open(
        "funding",
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    sales = await platform.open("sales", holder_id=seller)
    other = await platform.open("other", holder_id=seller)
    await platform.pay("same-id", funding.id, sales.id, 500)
    me = _as(platform, seller)
    # The same request id, another request: the holder's own, not REQUEST_ID_REUSED.
    own = await me.pay("same-id", sales.id, other.id, 200)
    assert own.transfer.request_id == f"{seller}/same-id"
    again = await me.pay("same-id", sales.id, other.id, 200)  # a retry replays
    assert again.transfer.id == own.transfer.id
    reused = await failure(me.pay("same-id", sales.id, other.id, 201))
    assert reused.reason == "REQUEST_ID_REUSED"
    balances = await platform.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=[sales.id, other.id]), metadata=platform.md
    )
    assert [b.posted_minor for b in balances.balances] == [300, 200]


async def test_mm_holder_and_scoped_tokens(api: Api) -> None:
    platform = api.a
    seller = await _holder(platform, "seller-1")
    other = await _holder(platform, "seller-2")
    account = await platform.open("sales", holder_id=seller)
    scoped = await TenantDirectory(api.database).create_token(api.tenant_a, holder_id=seller)
    token = Client(api.channel, scoped.token)
    get = apb.GetAccountRequest(account_id=account.id)

    # A scoped token acts for its holder, with or without mm-holder naming it.
    for client in (token, _as(token, seller)):
        got = await client.accounts.GetAccount(get, metadata=client.md)
        assert got.account.id == account.id
    # Naming another holder is refused before anything is read, exists or not.
    for named in (other, "hld_" + "a" * 26):
        refused = await failure(
            _as(token, named).accounts.GetAccount(get, metadata=_as(token, named).md)
        )
        assert (refused.code, refused.reason) == (
            grpc.StatusCode.PERMISSION_DENIED, "HOLDER_SCOPE_MISMATCH",
        )  # fmt: skip
        assert refused.metadata == {"holder_id": seller}
    # Not a holder id at all: the metadata is named.
    bad = _as(platform, "seller-1")
    refused = await failure(bad.accounts.GetAccount(get, metadata=bad.md))
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.field_violations == [("mm-holder", "INVALID_FORMAT")]
    # The platform acting for a holder that does not exist sees nothing at all.
    nobody = _as(platform, "hld_" + "b" * 26)
    hidden = await failure(nobody.accounts.GetAccount(get, metadata=nobody.md))
    assert hidden.reason == "ACCOUNT_NOT_FOUND"
    listed = await nobody.accounts.ListAccounts(apb.ListAccountsRequest(), metadata=nobody.md)
    assert not listed.accounts
    # Another tenant's token naming this tenant's holder: still only its own tenant.
    stranger = _as(api.b, seller)
    listed = await stranger.accounts.ListAccounts(apb.ListAccountsRequest(), metadata=stranger.md)
    assert not listed.accounts


async def test_the_python_client_acts_for_a_holder(api: Api) -> None:
    platform = api.a
    seller = await _holder(platform, "seller-1")
    token = platform.md[0][1].removeprefix("Bearer ")
    target = f"127.0.0.1:{api.port}"
    async with MoneyMovementClient(target, token, acting_for=seller) as client:
        opened = await client.create_account(
            currency_code="USD", normal_balance="CREDIT", request_id="c-1"
        )
        assert opened.holder_id == seller
        with pytest.raises(PermissionDenied) as refused:
            await client.create_account(
                currency_code="USD", normal_balance="DEBIT", request_id="c-2"
            )
        assert refused.value.reason == "HOLDER_SCOPE_FORBIDS"
    async with MoneyMovementClient(target, token) as as_platform:
        fees = await as_platform.create_account(
            currency_code="USD", normal_balance="CREDIT", request_id="c-3", open_to_holders=True
        )
        assert fees.open_to_holders


async def test_acting_for_a_holder_repays_its_reserve_and_never_draws_on_it(api: Api) -> None:
    platform = api.a
    seller = await _holder(platform, "seller-1")
    funding = await platform.open(
        "funding",
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    reserve = await platform.open("reserve")
    customer = await platform.open("customer")
    await platform.pay("fund-reserve", funding.id, reserve.id, 5_000)
    await platform.pay("fund-customer", funding.id, customer.id, 5_000)
    sales = await platform.open(
        "sales", holder_id=seller, negative_balance_reserve_account_id=reserve.id
    )
    me = _as(platform, seller)
    savings = await me.open("savings")
    charge = await platform.pay("charge", customer.id, sales.id, 1_000)
    await me.pay("keep", sales.id, savings.id, 1_000)
    refund = mpb.ReverseTransferRequest(request_id="refund", transfer_id=charge.transfer.id)
    await platform.movements.ReverseTransfer(refund, metadata=platform.md)  # the reserve covers

    async def debt() -> tuple[int, int]:
        got = await platform.accounts.GetAccount(
            apb.GetAccountRequest(account_id=sales.id), metadata=platform.md
        )
        balance = await platform.balances.GetBalance(
            bpb.GetBalanceRequest(account_id=reserve.id), metadata=platform.md
        )
        return got.account.reserve_debt_minor, balance.balance.posted_minor

    assert await debt() == (1_000, 4_000)
    # The holder's own credit to the account repays the reserve, in the same transaction.
    back = await me.pay("back", savings.id, sales.id, 400)
    assert await debt() == (600, 4_400)
    # A refund acting for the holder that would need the reserve's cover: refused, as a
    # debit of a platform account; nothing moves.
    undo = mpb.ReverseTransferRequest(request_id="undo", transfer_id=back.transfer.id)
    refused = await failure(me.movements.ReverseTransfer(undo, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS
    assert refused.metadata == {"holder_id": seller, "account_id": reserve.id}
    assert await debt() == (600, 4_400)
    # Paying the reserve directly would not lower the debt: not an account it may name,
    # whether the transfer touches the account that owes it or not; its credits repay.
    for source in (savings, sales):
        direct = await failure(me.pay(f"pay-reserve-{source.id}", source.id, reserve.id, 1))
        assert (direct.code, direct.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    # A reserve that cannot take a repayment (its balance limit) does not stop the
    # credit: the debt waits for a later one.
    limit = apb.UpdateAccountRequest(
        request_id="cap-reserve", account_id=reserve.id,
        funds_policy=funds_pb2.FundsPolicy(max_balance_minor=4_400),
    )  # fmt: skip
    await platform.accounts.UpdateAccount(limit, metadata=platform.md)
    await me.pay("more", savings.id, sales.id, 100)
    assert await debt() == (600, 4_400)
    sales_now = await platform.balances.GetBalance(
        bpb.GetBalanceRequest(account_id=sales.id), metadata=platform.md
    )
    assert sales_now.balance.posted_minor == 100
    # The same refund as a batch's reverse_transfer: refused alike, nothing moves.
    as_batch = mpb.CreateTransfersRequest(
        request_id="undo-batch",
        operations=[
            mpb.CreateTransfersRequest.Operation(
                reverse_transfer=mpb.CreateTransfersRequest.ReverseTransfer(
                    transfer_id=back.transfer.id
                )
            )
        ],
    )
    refused = await failure(me.movements.CreateTransfers(as_batch, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS
    assert refused.metadata["account_id"] == reserve.id
    assert await debt() == (600, 4_400)
    # Naming or changing a reserve is the platform's.
    refused = await failure(me.open("with-reserve", negative_balance_reserve_account_id=reserve.id))
    assert (refused.code, refused.reason) == FORBIDS
    change = apb.UpdateAccountRequest(
        request_id="drop-reserve", account_id=sales.id, remove_negative_balance_reserve=True
    )
    refused = await failure(me.accounts.UpdateAccount(change, metadata=me.md))
    assert (refused.code, refused.reason) == FORBIDS
