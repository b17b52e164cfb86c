"""Platform flows over the real API, with exact balances: a destination charge (the
customer's payment split into the seller's share and the platform's fee, one batch), a
separate transfer from the platform to a seller, a refund taking the fee back in
proportion (one batch of two reverse_transfer operations), and the negative-balance
reserve covering what a seller cannot refund and recovering it from the seller's next
credits (docs/platforms.md). The `api` fixture checks the whole ledger after each test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from moneymovement.client import (
    FailedPrecondition,
    MoneyMovementClient,
    reverse_operation,
    transfer_operation,
)
from moneymovement.v1 import account_pb2, event_pb2, funds_pb2, transfer_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import holder_service_pb2 as hpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client, failure

Op = mpb.CreateTransfersRequest.Operation
Item = mpb.CreateTransfersRequest.Item
Reverse = mpb.CreateTransfersRequest.ReverseTransfer


@dataclass
class Platform:
    """A platform's accounts and one seller (a holder) whose account names the reserve."""

    client: Client
    customer: str
    fees: str
    balance: str
    reserve: str
    bank: str  # where a seller's payouts go (a payout-like move out of the ledger)
    seller: str
    holder: str


@dataclass
class Charge:
    """A destination charge: the seller's share and the fee, two transfers of one batch."""

    amount: int
    fee: int
    share_id: str
    fee_id: str


async def _platform(api: Api, reserve_minor: int = 20000, name: str = "p") -> Platform:
    c = api.a
    funding = await c.open(
        f"{name}-funding",
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    customer = await c.open(f"{name}-customer")
    fees = await c.open(f"{name}-fees")
    balance = await c.open(f"{name}-balance")
    reserve = await c.open(f"{name}-reserve")
    bank = await c.open(f"{name}-bank")
    await c.pay(f"{name}-fund-customer", funding.id, customer.id, 100000)
    await c.pay(f"{name}-fund-balance", funding.id, balance.id, 50000)
    if reserve_minor:
        await c.pay(f"{name}-fund-reserve", funding.id, reserve.id, reserve_minor)
    holder = await c.holders.CreateHolder(
        hpb.CreateHolderRequest(request_id=f"{name}-holder", external_id=f"{name}-seller-1"),
        metadata=c.md,
    )
    seller = await c.open(
        f"{name}-seller",
        holder_id=holder.holder.holder_id,
        negative_balance_reserve_account_id=reserve.id,
    )
    assert seller.negative_balance_reserve_account_id == reserve.id
    return Platform(
        c, customer.id, fees.id, balance.id, reserve.id, bank.id, seller.id, holder.holder.holder_id
    )


async def _charge(p: Platform, request_id: str, amount: int, fee: int) -> Charge:
    items = [
        Op(transfer=Item(debit_account_id=p.customer, credit_account_id=p.seller,
                         amount_minor=amount - fee, currency_code="USD")),
        Op(transfer=Item(debit_account_id=p.customer, credit_account_id=p.fees,
                         amount_minor=fee, currency_code="USD")),
    ]  # fmt: skip
    response = await p.client.movements.CreateTransfers(
        mpb.CreateTransfersRequest(request_id=request_id, operations=items), metadata=p.client.md
    )
    share, fee_transfer = response.transfers
    assert share.batch_id == fee_transfer.batch_id != ""
    return Charge(amount, fee, share.id, fee_transfer.id)


def _refund_ops(charge: Charge, refund: int) -> list[mpb.CreateTransfersRequest.Operation]:
    """The fee comes back in proportion, rounded down: fee x refund / amount; the seller
    gives back the rest. A zero part is left out (amount 0 would reverse all of it)."""
    fee_back = charge.fee * refund // charge.amount
    parts = [(charge.share_id, refund - fee_back), (charge.fee_id, fee_back)]
    return [
        Op(reverse_transfer=Reverse(transfer_id=t, amount_minor=a, description="refund"))
        for t, a in parts
        if a
    ]


async def _refund(
    p: Platform, request_id: str, charge: Charge, refund: int
) -> mpb.CreateTransfersResponse:
    return await p.client.movements.CreateTransfers(
        mpb.CreateTransfersRequest(request_id=request_id, operations=_refund_ops(charge, refund)),
        metadata=p.client.md,
    )


async def _available(p: Platform, *account_ids: str) -> list[int]:
    response = await p.client.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=list(account_ids)), metadata=p.client.md
    )
    by_id = {b.account_id: b for b in response.balances}
    for b in response.balances:
        assert b.available_minor == b.posted_minor  # nothing held in these flows
    return [by_id[a].available_minor for a in account_ids]


async def _debt(p: Platform) -> int:
    """The seller's debt, as GetAccount and GetBalance both show it."""
    account = await p.client.accounts.GetAccount(
        apb.GetAccountRequest(account_id=p.seller), metadata=p.client.md
    )
    balance = await p.client.balances.GetBalance(
        bpb.GetBalanceRequest(account_id=p.seller), metadata=p.client.md
    )
    assert account.account.reserve_debt_minor == balance.balance.reserve_debt_minor
    return account.account.reserve_debt_minor


async def _reserve_transfers(p: Platform, movement: str) -> list[transfer_pb2.Transfer]:
    response = await p.client.movements.ListTransfers(
        mpb.ListTransfersRequest(
            account_id=p.seller, metadata={"negative_balance_reserve": movement}
        ),
        metadata=p.client.md,
    )
    return list(response.transfers)


async def _pay_out(p: Platform, request_id: str, amount: int) -> None:
    await p.client.pay(request_id, p.seller, p.bank, amount)


async def test_destination_charge_separate_transfer_and_proportional_refund(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await p.client.pay("bonus-1", p.balance, p.seller, 500)
    assert await _available(p, p.customer, p.seller, p.fees, p.balance) == [
        90000, 9500, 1000, 49500,
    ]  # fmt: skip

    # 3000 of 10000 refunded: the fee gives back 1000 x 3000 / 10000 = 300, the seller 2700.
    refunded = await _refund(p, "refund-1", charge, 3000)
    share_back, fee_back = refunded.transfers
    assert (share_back.amount_minor, fee_back.amount_minor) == (2700, 300)
    assert share_back.reversal_of_transfer_id == charge.share_id
    assert fee_back.reversal_of_transfer_id == charge.fee_id
    assert share_back.batch_id == fee_back.batch_id != ""
    assert await _available(p, p.customer, p.seller, p.fees, p.balance, p.reserve) == [
        93000, 6800, 700, 49500, 20000,
    ]  # fmt: skip
    assert await _debt(p) == 0
    assert await _reserve_transfers(p, "COVER") == []

    # A refund of an odd amount: 1000 x 333 / 10000 = 33.3, rounded down to 33.
    odd = await _refund(p, "refund-2", charge, 333)
    assert [t.amount_minor for t in odd.transfers] == [300, 33]
    assert await _available(p, p.customer, p.seller, p.fees) == [93333, 6500, 667]


async def test_the_reserve_covers_what_the_seller_cannot_refund(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 8000)  # the seller keeps 1000
    refunded = await _refund(p, "refund-all", charge, 10000)
    share_back, fee_back = refunded.transfers
    assert (share_back.amount_minor, fee_back.amount_minor) == (9000, 1000)
    # The seller had 1000: the reserve covered the other 8000, and the seller owes it.
    assert await _available(p, p.customer, p.seller, p.fees, p.reserve) == [100000, 0, 0, 12000]
    assert await _debt(p) == 8000
    [cover] = await _reserve_transfers(p, "COVER")
    assert (cover.debit_account_id, cover.credit_account_id) == (p.reserve, p.seller)
    assert cover.amount_minor == 8000
    assert cover.state == transfer_pb2.Transfer.STATE_POSTED
    assert cover.metadata["reversal_transfer_id"] == share_back.id
    assert cover.request_id == "refund-all"

    # The cover is told as any transfer, and the batch's event shows the reserve after it.
    events = await p.client.events.ListEvents(
        epb.ListEventsRequest(
            start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(account_id=p.reserve)
        ),
        metadata=p.client.md,
    )
    created = [
        e.transfer.id for e in events.events if e.type == event_pb2.EVENT_TYPE_TRANSFER_CREATED
    ]
    assert cover.id in created
    [batch] = [
        e for e in events.events
        if e.type == event_pb2.EVENT_TYPE_BATCH_COMMITTED and e.request_id == "refund-all"
    ]  # fmt: skip
    after = {b.account_id: (b.available_minor, b.reserve_debt_minor) for b in batch.balances}
    assert after[p.reserve] == (12000, 0)
    assert after[p.seller] == (0, 8000)

    # A cover is not reversible: the debt is counted from the covers.
    refused = await failure(
        p.client.movements.ReverseTransfer(
            mpb.ReverseTransferRequest(request_id="undo-cover", transfer_id=cover.id),
            metadata=p.client.md,
        )
    )
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.reason == "RESERVE_TRANSFER_NOT_REVERSIBLE"
    assert refused.metadata == {"transfer_id": cover.id, "reserve_movement": "COVER"}


async def test_reverse_transfer_alone_is_covered_too(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 9000)
    response = await p.client.movements.ReverseTransfer(
        mpb.ReverseTransferRequest(
            request_id="refund-share", transfer_id=charge.share_id, amount_minor=4000
        ),
        metadata=p.client.md,
    )
    assert response.reversal.amount_minor == 4000
    assert await _available(p, p.customer, p.seller, p.reserve) == [94000, 0, 16000]
    assert await _debt(p) == 4000


async def test_later_credits_repay_the_debt_partly_then_fully(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 9000)
    await _refund(p, "refund-all", charge, 10000)
    assert await _debt(p) == 9000
    assert await _available(p, p.seller, p.reserve) == [0, 11000]

    # A charge's seller share of 4500 goes to the reserve whole: the debt is larger.
    await _charge(p, "charge-2", 5000, 500)
    assert await _available(p, p.seller, p.reserve) == [0, 15500]
    assert await _debt(p) == 4500
    # Its retry replays: no second recovery, nothing moves again.
    await _charge(p, "charge-2", 5000, 500)
    assert await _available(p, p.seller, p.reserve) == [0, 15500]
    assert await _debt(p) == 4500
    assert len(await _reserve_transfers(p, "RECOVERY")) == 1
    # A transfer from the platform's balance repays too.
    await p.client.pay("bonus-1", p.balance, p.seller, 2000)
    assert await _available(p, p.seller, p.reserve, p.balance) == [0, 17500, 48000]
    assert await _debt(p) == 2500
    # A share of 2700 repays the last 2500; the seller keeps 200.
    await _charge(p, "charge-3", 3000, 300)
    assert await _available(p, p.seller, p.reserve) == [200, 20000]
    assert await _debt(p) == 0
    recoveries = await _reserve_transfers(p, "RECOVERY")
    assert sorted(t.amount_minor for t in recoveries) == [2000, 2500, 4500]
    assert {(t.debit_account_id, t.credit_account_id) for t in recoveries} == {
        (p.seller, p.reserve)
    }
    # With no debt left, a credit stays the seller's.
    await _charge(p, "charge-4", 1000, 100)
    assert await _available(p, p.seller, p.reserve) == [1100, 20000]
    assert len(await _reserve_transfers(p, "RECOVERY")) == 3

    # A balance as of a past time shows the debt as it was then: none just before the
    # cover, all of it just before the first recovery.
    [cover] = await _reserve_transfers(p, "COVER")
    first = min(recoveries, key=lambda t: t.create_time.ToDatetime())
    assert [await _debt_as_of(p, cover), await _debt_as_of(p, first)] == [0, 9000]


async def _debt_as_of(p: Platform, transfer: transfer_pb2.Transfer) -> int:
    """The seller's debt a microsecond before `transfer`'s transaction began."""
    before = timestamp_pb2.Timestamp()
    before.FromDatetime(transfer.create_time.ToDatetime() - timedelta(microseconds=1))
    past = await p.client.balances.GetBalance(
        bpb.GetBalanceRequest(account_id=p.seller, as_of_time=before), metadata=p.client.md
    )
    return past.balance.reserve_debt_minor


async def test_a_reserve_that_cannot_pay_refuses_the_whole_refund(api: Api) -> None:
    p = await _platform(api, reserve_minor=1000)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 8000)
    refused = await failure(_refund(p, "refund-all", charge, 10000))
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.reason == "INSUFFICIENT_FUNDS"
    assert refused.metadata["account_id"] == p.reserve
    assert refused.metadata["item_index"] == "0"
    assert refused.metadata["available_minor"] == "1000"
    assert refused.message.startswith("operations[0].reverse_transfer")
    # Nothing moved: not the cover, not the seller's reversal, not the fee's.
    assert await _available(p, p.customer, p.seller, p.fees, p.reserve) == [90000, 1000, 1000, 1000]
    assert await _debt(p) == 0
    assert await _reserve_transfers(p, "COVER") == []
    # What the reserve can cover still goes: 1000 of the seller's own, 1000 covered.
    await _refund(p, "refund-part", charge, 2000)  # seller 1800, fee 200
    assert await _available(p, p.seller, p.fees, p.reserve) == [0, 800, 200]
    assert await _debt(p) == 800


async def test_replaying_the_refund_covers_once(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 8000)
    first = await _refund(p, "refund-all", charge, 10000)
    again = await _refund(p, "refund-all", charge, 10000)
    assert [t.id for t in again.transfers] == [t.id for t in first.transfers]
    assert await _available(p, p.customer, p.seller, p.reserve) == [100000, 0, 12000]
    assert await _debt(p) == 8000
    assert len(await _reserve_transfers(p, "COVER")) == 1


async def test_batch_reverse_errors_name_the_item_and_move_nothing(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    before = await _available(p, p.customer, p.seller, p.fees, p.reserve)
    ok = Op(reverse_transfer=Reverse(transfer_id=charge.fee_id, amount_minor=100))

    unknown = "tr_" + "a" * 26
    missing = await failure(
        p.client.movements.CreateTransfers(
            mpb.CreateTransfersRequest(
                request_id="bad-1",
                operations=[ok, Op(reverse_transfer=Reverse(transfer_id=unknown))],
            ),
            metadata=p.client.md,
        )
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND")
    assert missing.metadata["item_index"] == "1"
    assert missing.metadata["transfer_id"] == unknown

    too_much = await failure(
        p.client.movements.CreateTransfers(
            mpb.CreateTransfersRequest(
                request_id="bad-2",
                operations=[
                    ok,
                    Op(reverse_transfer=Reverse(transfer_id=charge.fee_id, amount_minor=901)),
                ],
            ),
            metadata=p.client.md,
        )
    )
    assert too_much.reason == "REVERSAL_EXCEEDS_ORIGINAL"
    # The operation before it in the same batch counts: 1000 - 100 remain, not 1000.
    assert too_much.metadata == {
        "transfer_id": charge.fee_id, "remaining_minor": "900", "item_index": "1",
    }  # fmt: skip
    assert too_much.message.startswith("operations[1].reverse_transfer")

    malformed = await failure(
        p.client.movements.CreateTransfers(
            mpb.CreateTransfersRequest(
                request_id="bad-3",
                operations=[Op(reverse_transfer=Reverse(transfer_id="nope", amount_minor=-1))],
            ),
            metadata=p.client.md,
        )
    )
    assert malformed.code == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in malformed.field_violations}
    assert fields == {
        "operations[0].reverse_transfer.transfer_id",
        "operations[0].reverse_transfer.amount_minor",
    }
    assert await _available(p, p.customer, p.seller, p.fees, p.reserve) == before
    fee = await p.client.movements.GetTransfer(
        mpb.GetTransferRequest(transfer_id=charge.fee_id), metadata=p.client.md
    )
    assert fee.transfer.reversed_amount_minor == 0


async def test_reserve_rules_on_create_update_and_close(api: Api) -> None:
    p = await _platform(api)
    c = p.client

    async def refused_open(request_id: str, **fields: object) -> tuple[str, dict[str, str]]:
        refusal = await failure(c.open(request_id, **fields))
        assert refusal.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refusal.reason == "RESERVE_ACCOUNT_INELIGIBLE"
        assert refusal.metadata["field"] == "negative_balance_reserve_account_id"
        return refusal.metadata["rule"], refusal.metadata

    holder = p.holder
    rule, meta = await refused_open("r-1", negative_balance_reserve_account_id=p.reserve)
    assert rule == "NOT_HOLDER_ACCOUNT"
    assert meta["reserve_account_id"] == p.reserve
    assert (
        await refused_open("r-2", holder_id=holder, negative_balance_reserve_account_id=p.seller)
    )[0] == "HOLDER_OWNED"
    euro = await c.open("euro", currency_code="EUR")
    assert (
        await refused_open("r-3", holder_id=holder, negative_balance_reserve_account_id=euro.id)
    )[0] == "CURRENCY"
    assert (
        await refused_open(
            "r-4", holder_id=holder, negative_balance_reserve_account_id="acct_" + "a" * 26
        )
    )[0] == "NOT_FOUND"

    # A debt keeps the reserve in place and the account open.
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 9000)
    await _refund(p, "refund-all", charge, 10000)
    removal = await failure(
        c.accounts.UpdateAccount(
            apb.UpdateAccountRequest(
                request_id="u-1", account_id=p.seller, remove_negative_balance_reserve=True
            ),
            metadata=c.md,
        )
    )
    assert removal.reason == "RESERVE_DEBT_OUTSTANDING"
    assert removal.metadata == {
        "account_id": p.seller, "reserve_account_id": p.reserve, "reserve_debt_minor": "9000",
    }  # fmt: skip
    closing = await failure(
        c.accounts.CloseAccount(
            apb.CloseAccountRequest(request_id="close-1", account_id=p.seller), metadata=c.md
        )
    )
    assert closing.reason == "RESERVE_DEBT_OUTSTANDING"
    policy = await failure(
        c.accounts.UpdateAccount(
            apb.UpdateAccountRequest(
                request_id="u-2",
                account_id=p.seller,
                funds_policy=funds_pb2.FundsPolicy(
                    availability=funds_pb2.AvailabilityPolicy(delay_days=2)
                ),
            ),
            metadata=c.md,
        )
    )
    assert policy.reason == "RESERVE_ACCOUNT_INELIGIBLE"
    assert (policy.metadata["rule"], policy.metadata["field"]) == ("FUNDS_POLICY", "funds_policy")

    # Repaid, the reserve may go, and come back by UpdateAccount.
    await c.pay("bonus", p.balance, p.seller, 9000)
    assert await _debt(p) == 0
    removed = await c.accounts.UpdateAccount(
        apb.UpdateAccountRequest(
            request_id="u-3", account_id=p.seller, remove_negative_balance_reserve=True
        ),
        metadata=c.md,
    )
    assert removed.account.negative_balance_reserve_account_id == ""
    restored = await c.accounts.UpdateAccount(
        apb.UpdateAccountRequest(
            request_id="u-4", account_id=p.seller, negative_balance_reserve_account_id=p.reserve
        ),
        metadata=c.md,
    )
    assert restored.account.negative_balance_reserve_account_id == p.reserve
    both = await failure(
        c.accounts.UpdateAccount(
            apb.UpdateAccountRequest(
                request_id="u-5",
                account_id=p.seller,
                negative_balance_reserve_account_id=p.reserve,
                remove_negative_balance_reserve=True,
            ),
            metadata=c.md,
        )
    )
    assert both.code == grpc.StatusCode.INVALID_ARGUMENT
    assert both.field_violations == [("remove_negative_balance_reserve", "MUST_DIFFER")]


async def test_the_python_client_refunds_a_charge_in_one_batch(api: Api) -> None:
    token = dict(api.a.md)["authorization"].split()[1]
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", token) as client:
        funding = await client.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        fees = await client.create_account(currency_code="USD", normal_balance="CREDIT")
        pot = await client.create_account(currency_code="USD", normal_balance="CREDIT")
        holder = await client.create_holder("client-seller")
        seller = await client.create_account(
            currency_code="USD", normal_balance="CREDIT", holder_id=holder.holder_id,
            negative_balance_reserve_account_id=pot.id,
        )  # fmt: skip
        assert seller.negative_balance_reserve_account_id == pot.id
        await client.create_transfer(funding.id, pot.id, 1000, "USD")
        share, fee = await client.create_transfers(
            [
                transfer_operation(funding.id, seller.id, 900, "USD"),
                transfer_operation(funding.id, fees.id, 100, "USD"),
            ]
        )
        await client.create_transfer(seller.id, fees.id, 900, "USD")  # the seller spends it
        share_back, fee_back = await client.create_transfers(
            [reverse_operation(share.id, 450), reverse_operation(fee.id, 50, description="fee")]
        )
        assert (share_back.amount_minor, fee_back.amount_minor) == (450, 50)
        assert fee_back.description == "fee"
        assert (await client.get_account(seller.id)).reserve_debt_minor == 450
        with pytest.raises(FailedPrecondition) as refused:
            await client.update_account(seller.id, negative_balance_reserve_account_id="")
        assert refused.value.reason == "RESERVE_DEBT_OUTSTANDING"


async def test_a_reserve_is_not_closed_while_accounts_owe_it(api: Api) -> None:
    p = await _platform(api)
    charge = await _charge(p, "charge-1", 10000, 1000)
    await _pay_out(p, "payout-1", 9000)
    await _refund(p, "refund-all", charge, 10000)
    assert await _debt(p) == 9000
    [left] = await _available(p, p.reserve)
    await p.client.pay("empty-reserve", p.reserve, p.balance, left)
    close = apb.CloseAccountRequest(request_id="close-reserve", account_id=p.reserve)
    refused = await failure(p.client.accounts.CloseAccount(close, metadata=p.client.md))
    assert (refused.code, refused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION, "RESERVE_DEBT_OUTSTANDING",
    )  # fmt: skip
    assert refused.metadata == {
        "account_id": p.reserve, "reserve_account_id": p.reserve, "reserve_debt_minor": "9000",
    }  # fmt: skip
    # Repaid (a transfer to the seller is recovered whole), and emptied again: closed.
    await p.client.pay("bonus", p.balance, p.seller, 9000)
    assert await _debt(p) == 0
    await p.client.pay("empty-again", p.reserve, p.balance, 9000)
    again = apb.CloseAccountRequest(request_id="close-reserve-2", account_id=p.reserve)
    closed = await p.client.accounts.CloseAccount(again, metadata=p.client.md)
    assert closed.account.state == account_pb2.Account.STATE_CLOSED
