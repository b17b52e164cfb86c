"""Funds accessibility over a real port: availability, reserves, early release, limits,
the debit-only freeze and balance monitors (docs/funds-availability.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import duration_pb2

from moneymovement.v1 import (
    account_pb2,
    account_service_pb2,
    balance_pb2,
    balance_service_pb2,
    event_pb2,
    event_service_pb2,
    funds_pb2,
    funds_service_pb2,
    money_movement_service_pb2,
)
from tests.e2e.conftest import Api, Client, failure, start_api, stop_api
from tests.ledger_checks import assert_ledger_consistent

Code = grpc.StatusCode
Funds = funds_pb2.ScheduledFunds
Monitor = funds_pb2.BalanceMonitor


@pytest.fixture
async def fast_api(dsn: str) -> AsyncIterator[Api]:
    """A server whose sweeper looks every 0.1 s, so scheduled funds come due in tests."""
    running = await start_api(dsn, MM_HOLD_SWEEP_S="0.1")
    yield running
    await stop_api(running)
    await assert_ledger_consistent(dsn)


def policy(**fields: object) -> funds_pb2.FundsPolicy:
    return funds_pb2.FundsPolicy(**fields)  # type: ignore[arg-type]


async def seller(client: Client, request_id: str, funds_policy: funds_pb2.FundsPolicy) -> str:
    return (await client.open(request_id, funds_policy=funds_policy)).id


async def funding(client: Client, request_id: str) -> str:
    account = await client.open(
        request_id,
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    return account.id


async def credit(
    client: Client, request_id: str, debit: str, credit: str, amount: int, delay_s: float = 0
) -> money_movement_service_pb2.CreateTransferResponse:
    request = money_movement_service_pb2.CreateTransferRequest(
        request_id=request_id, debit_account_id=debit, credit_account_id=credit,
        amount_minor=amount, currency_code="USD",
    )  # fmt: skip
    if delay_s:
        request.availability_delay.CopyFrom(
            duration_pb2.Duration(seconds=int(delay_s), nanos=int(delay_s % 1 * 1e9))
        )
    return await client.movements.CreateTransfer(request, metadata=client.md)


async def balance(client: Client, account_id: str) -> balance_pb2.Balance:
    reply = await client.balances.GetBalance(
        balance_service_pb2.GetBalanceRequest(account_id=account_id), metadata=client.md
    )
    return reply.balance


def parts(b: balance_pb2.Balance) -> tuple[int, int, int, int]:
    return (b.posted_minor, b.pending_availability_minor, b.reserved_minor, b.available_minor)


async def scheduled(client: Client, account_id: str, ended: bool = False) -> list[Funds]:
    reply = await client.funds.ListScheduledFunds(
        funds_service_pb2.ListScheduledFundsRequest(account_id=account_id, include_ended=ended),
        metadata=client.md,
    )
    return list(reply.funds)


async def release(
    client: Client, request_id: str, account_id: str, **fields: object
) -> funds_service_pb2.ReleaseFundsResponse:
    request = funds_service_pb2.ReleaseFundsRequest(
        request_id=request_id,
        account_id=account_id,
        **fields,  # type: ignore[arg-type]
    )
    return await client.funds.ReleaseFunds(request, metadata=client.md)


async def events_of(client: Client, account_id: str) -> list[event_pb2.Event]:
    reply = await client.events.ListEvents(
        event_service_pb2.ListEventsRequest(
            start=event_service_pb2.EVENT_START_OLDEST,
            filter=event_service_pb2.EventFilter(account_id=account_id),
            page_size=500,
        ),
        metadata=client.md,
    )
    return list(reply.events)


async def test_a_delayed_credit_is_posted_at_once_and_available_once_its_time_comes(
    fast_api: Api,
) -> None:
    client = fast_api.a
    source = await funding(client, "avail-source")
    shop = await seller(client, "avail-shop", policy())
    payout = await client.open("avail-payout")

    made = (await credit(client, "avail-pay", source, shop, 10_000, delay_s=1.5)).transfer
    assert made.availability_delay.seconds == 1
    b = await balance(client, shop)
    assert parts(b) == (10_000, 10_000, 0, 0)
    [line] = b.availability_schedule
    assert (line.kind, line.amount_minor) == (funds_pb2.FUNDS_KIND_AVAILABILITY, 10_000)

    # Posted is not available: nothing of it can be spent or held yet.
    refused = await failure(client.pay("avail-spend", shop, payout.id, 1))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    assert refused.metadata["pending_availability_minor"] == "10000"

    for _ in range(60):  # the sweeper releases it by itself, once
        await asyncio.sleep(0.1)
        if (await balance(client, shop)).available_minor == 10_000:
            break
    b = await balance(client, shop)
    assert parts(b) == (10_000, 0, 0, 10_000)
    assert not b.availability_schedule
    [ended] = await scheduled(client, shop, ended=True)
    assert (ended.state, ended.ended_amount_minor) == (Funds.STATE_RELEASED, 10_000)
    assert ended.end_time.ToDatetime() >= ended.available_time.ToDatetime()
    released = [
        e for e in await events_of(client, shop) if e.type == event_pb2.EVENT_TYPE_FUNDS_RELEASED
    ]
    assert [(len(e.funds), e.funds[0].id, e.request_id) for e in released] == [(1, ended.id, "")]

    await client.pay("avail-spend-now", shop, payout.id, 10_000)
    assert parts(await balance(client, shop)) == (0, 0, 0, 0)


async def test_rolling_reserve_and_early_release_with_a_fee(api: Api) -> None:
    client = api.a
    source = await funding(client, "res-source")
    fees = (await client.open("res-fees")).id
    shop = await seller(
        client,
        "res-shop",
        policy(
            availability=funds_pb2.AvailabilityPolicy(
                delay_days=2, calendar=funds_pb2.CALENDAR_BUSINESS_DAYS, time_zone="UTC"
            ),
            reserve=funds_pb2.ReservePolicy(rolling_percent_bps=1_000, rolling_days=30),
            early_release_allowed=True,
        ),
    )
    await credit(client, "res-pay", source, shop, 10_005)
    assert parts(await balance(client, shop)) == (10_005, 9_005, 1_000, 0)  # 10 % rounded down

    done = await release(client, "res-early", shop, amount_minor=5_000, fee_minor=50,
                         fee_account_id=fees)  # fmt: skip
    assert done.released_minor == 5_000
    [part] = done.released
    assert (part.state, part.ended_amount_minor, part.amount_minor) == (
        Funds.STATE_RELEASED_EARLY, 5_000, 9_005,
    )  # fmt: skip
    assert done.fee_transfer.amount_minor == 50
    assert parts(done.balance) == (9_955, 4_005, 1_000, 4_950)
    assert [(p.kind, p.amount_minor) for p in done.balance.availability_schedule] == [
        (funds_pb2.FUNDS_KIND_AVAILABILITY, 4_005), (funds_pb2.FUNDS_KIND_RESERVE, 1_000),
    ]  # fmt: skip
    assert parts(await balance(client, shop)) == (9_955, 4_005, 1_000, 4_950)
    assert (await balance(client, fees)).available_minor == 50
    [remainder, reserve] = await scheduled(client, shop)
    assert (remainder.remainder_of_id, remainder.amount_minor) == (part.id, 4_005)
    assert (reserve.kind, reserve.amount_minor) == (funds_pb2.FUNDS_KIND_RESERVE, 1_000)

    # The same request again: the recorded answer, nothing released twice.
    again = await release(client, "res-early", shop, amount_minor=5_000, fee_minor=50,
                          fee_account_id=fees)  # fmt: skip
    assert again.fee_transfer.id == done.fee_transfer.id
    assert parts(await balance(client, shop)) == (9_955, 4_005, 1_000, 4_950)

    too_much = await failure(release(client, "res-too-much", shop, amount_minor=4_006))
    assert (too_much.reason, too_much.metadata["pending_availability_minor"]) == (
        "RELEASE_EXCEEDS_PENDING", "4005",
    )  # fmt: skip
    reserve_early = await failure(release(client, "res-reserve", shop, funds_ids=[reserve.id]))
    assert reserve_early.reason == "FUNDS_NOT_SCHEDULED"

    plain = (await client.open("res-plain")).id
    forbidden = await failure(release(client, "res-forbidden", plain, amount_minor=1))
    assert (forbidden.code, forbidden.reason) == (Code.FAILED_PRECONDITION,
                                                  "EARLY_RELEASE_NOT_ALLOWED")  # fmt: skip

    changes = await client.funds.ListPolicyChanges(
        funds_service_pb2.ListPolicyChangesRequest(account_id=shop), metadata=client.md
    )
    [created] = changes.changes
    assert created.after.reserve.rolling_percent_bps == 1_000
    assert created.request_id == "res-shop"


async def test_reversing_an_unreleased_credit_takes_it_from_pending_first(api: Api) -> None:
    client = api.a
    source = await funding(client, "rev-source")
    shop = await seller(client, "rev-shop", policy())
    payout = await client.open("rev-payout")
    await credit(client, "rev-old", source, shop, 3_000)  # available at once
    late = (await credit(client, "rev-late", source, shop, 2_000, delay_s=3_600)).transfer
    assert parts(await balance(client, shop)) == (5_000, 2_000, 0, 3_000)

    reversal = await client.movements.ReverseTransfer(
        money_movement_service_pb2.ReverseTransferRequest(
            request_id="rev-1", transfer_id=late.id, amount_minor=1_500
        ),
        metadata=client.md,
    )
    assert reversal.reversal.amount_minor == 1_500
    # All 1,500 came out of what was pending: the available 3,000 is untouched.
    assert parts(await balance(client, shop)) == (3_500, 500, 0, 3_000)
    [rest] = await scheduled(client, shop)
    assert rest.amount_minor == 500

    # The last 500 of it, and then available money only once pending runs out.
    await client.pay("rev-spend", shop, payout.id, 2_800)
    await client.movements.ReverseTransfer(
        money_movement_service_pb2.ReverseTransferRequest(request_id="rev-2", transfer_id=late.id),
        metadata=client.md,
    )
    assert parts(await balance(client, shop)) == (200, 0, 0, 200)
    ended = await scheduled(client, shop, ended=True)
    assert {(f.state, f.ended_amount_minor) for f in ended} == {
        (Funds.STATE_REVERSED, 1_500), (Funds.STATE_REVERSED, 500),
    }  # fmt: skip


async def test_concurrent_debits_against_a_limit_for_exactly_k_of_them(api: Api) -> None:
    client = api.a
    source = await funding(client, "lim-source")
    limits = [funds_pb2.DebitLimit(window=funds_pb2.LIMIT_WINDOW_DAY, max_amount_minor=700)]
    wallet = await seller(client, "lim-wallet", policy(debit_limits=limits))
    shop = (await client.open("lim-shop")).id
    await credit(client, "lim-fund", source, wallet, 10_000)

    outcomes = await asyncio.gather(
        *(client.pay(f"lim-{n}", wallet, shop, 100) for n in range(20)), return_exceptions=True
    )
    succeeded = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert (len(succeeded), len(refused)) == (7, 13)
    assert parts(await balance(client, wallet)) == (9_300, 0, 0, 9_300)
    last = await failure(client.pay("lim-last", wallet, shop, 1))
    assert last.reason == "DEBIT_LIMIT_EXCEEDED"
    assert {k: last.metadata[k] for k in ("window", "measure", "limit", "used", "remaining")} == {
        "window": "DAY", "measure": "amount", "limit": "700", "used": "700", "remaining": "0",
    }  # fmt: skip

    counted = [funds_pb2.DebitLimit(window=funds_pb2.LIMIT_WINDOW_WEEK, max_count=3)]
    counter = await seller(
        client, "lim-counter", policy(debit_limits=counted, max_balance_minor=5_000)
    )
    await credit(client, "lim-counter-fund", source, counter, 5_000)
    over = await failure(credit(client, "lim-over-max", source, counter, 1))
    assert (over.reason, over.metadata["max_balance_minor"]) == ("BALANCE_LIMIT_EXCEEDED", "5000")
    outcomes = await asyncio.gather(
        *(client.pay(f"lim-c{n}", counter, shop, 1) for n in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 3


async def test_a_debit_only_freeze_lets_credits_in(api: Api) -> None:
    client = api.a
    wallet, source = await client.fund("frz", 1_000)
    shop = (await client.open("frz-shop")).id
    frozen = await client.accounts.FreezeAccount(
        account_service_pb2.FreezeAccountRequest(
            request_id="frz-1", account_id=wallet, scope=account_pb2.FREEZE_SCOPE_DEBITS,
            reason="chargeback review",
        ),
        metadata=client.md,
    )  # fmt: skip
    assert (frozen.account.freeze_scope, frozen.account.freeze_reason) == (
        account_pb2.FREEZE_SCOPE_DEBITS, "chargeback review",
    )  # fmt: skip
    await client.pay("frz-in", source, wallet, 500)
    refused = await failure(client.pay("frz-out", wallet, shop, 1))
    assert (refused.reason, refused.metadata["scope"], refused.metadata["freeze_reason"]) == (
        "ACCOUNT_FROZEN", "DEBITS", "chargeback review",
    )  # fmt: skip
    assert (await balance(client, wallet)).available_minor == 1_500


async def test_monitors_tell_each_crossing_once(api: Api) -> None:
    client = api.a
    wallet, source = await client.fund("mon", 1_000)
    shop = (await client.open("mon-shop")).id
    low = await client.funds.CreateBalanceMonitor(
        funds_service_pb2.CreateBalanceMonitorRequest(
            request_id="mon-low", account_id=wallet, field=Monitor.FIELD_AVAILABLE,
            operator=Monitor.OPERATOR_BELOW, threshold_minor=500, description="top up",
        ),
        metadata=client.md,
    )  # fmt: skip
    assert not low.monitor.triggered
    for n, amount in enumerate((300, 300, 100)):  # 700, 400 (crossing), 300
        await client.pay(f"mon-spend-{n}", wallet, shop, amount)
    await client.pay("mon-refill", source, wallet, 1_000)  # 1,300: back above
    await client.pay("mon-spend-3", wallet, shop, 1_000)  # 300: below again

    flips = [
        e.type
        for e in await events_of(client, wallet)
        if e.type in (event_pb2.EVENT_TYPE_BALANCE_MONITOR_TRIGGERED,
                      event_pb2.EVENT_TYPE_BALANCE_MONITOR_CLEARED)
    ]  # fmt: skip
    assert flips == [
        event_pb2.EVENT_TYPE_BALANCE_MONITOR_TRIGGERED,
        event_pb2.EVENT_TYPE_BALANCE_MONITOR_CLEARED,
        event_pb2.EVENT_TYPE_BALANCE_MONITOR_TRIGGERED,
    ]
    listed = await client.funds.ListBalanceMonitors(
        funds_service_pb2.ListBalanceMonitorsRequest(account_id=wallet), metadata=client.md
    )
    assert [(m.id, m.triggered) for m in listed.monitors] == [(low.monitor.id, True)]
    await client.funds.DeleteBalanceMonitor(
        funds_service_pb2.DeleteBalanceMonitorRequest(
            request_id="mon-del", monitor_id=low.monitor.id
        ),
        metadata=client.md,
    )
    listed = await client.funds.ListBalanceMonitors(
        funds_service_pb2.ListBalanceMonitorsRequest(account_id=wallet), metadata=client.md
    )
    assert not listed.monitors

    # Another tenant's account, as any unknown one: not found.
    hidden = await failure(
        api.b.funds.ListBalanceMonitors(
            funds_service_pb2.ListBalanceMonitorsRequest(account_id=wallet), metadata=api.b.md
        )
    )
    assert (hidden.code, hidden.reason) == (Code.NOT_FOUND, "ACCOUNT_NOT_FOUND")


async def test_a_funds_policy_is_refused_with_the_field_named(api: Api) -> None:
    bad = await failure(
        api.a.open(
            "bad-policy",
            funds_policy=policy(reserve=funds_pb2.ReservePolicy(rolling_percent_bps=10_001)),
        )
    )
    assert bad.code == Code.INVALID_ARGUMENT
    assert ("funds_policy.reserve.rolling_percent_bps", "OUT_OF_RANGE") in bad.field_violations
    debit_normal = await failure(
        api.a.open(
            "bad-normal",
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            funds_policy=policy(early_release_allowed=True),
        )
    )
    assert debit_normal.code == Code.INVALID_ARGUMENT


async def test_an_as_of_balance_counts_the_parts_alive_then(api: Api) -> None:
    client = api.a
    source = await funding(client, "asof-source")
    shop = await seller(client, "asof-shop", policy(early_release_allowed=True))
    await credit(client, "asof-pay", source, shop, 1_000, delay_s=3_600)
    pending_at = (await balance(client, shop)).as_of_time
    await asyncio.sleep(0.05)
    await release(client, "asof-release", shop, amount_minor=400)
    released_at = (await balance(client, shop)).as_of_time

    def as_of(at: object) -> balance_service_pb2.GetBalanceRequest:
        request = balance_service_pb2.GetBalanceRequest(account_id=shop)
        request.as_of_time.CopyFrom(at)  # type: ignore[arg-type]
        return request

    then = (await client.balances.GetBalance(as_of(pending_at), metadata=client.md)).balance
    assert parts(then) == (1_000, 1_000, 0, 0)
    [line] = then.availability_schedule
    assert line.amount_minor == 1_000
    now = (await client.balances.GetBalance(as_of(released_at), metadata=client.md)).balance
    assert parts(now) == (1_000, 600, 0, 400)  # the remainder of 600, alive since the release
    assert [p.amount_minor for p in now.availability_schedule] == [600]


async def test_limits_count_what_the_database_counts_across_transactions(api: Api) -> None:
    client = api.a
    source = await funding(client, "usage-source")
    limits = [funds_pb2.DebitLimit(window=funds_pb2.LIMIT_WINDOW_DAY, max_amount_minor=1_000)]
    wallet = await seller(client, "usage-wallet", policy(debit_limits=limits))
    shop = (await client.open("usage-shop")).id
    await credit(client, "usage-fund", source, wallet, 5_000)

    def hold(request_id: str, amount: int) -> money_movement_service_pb2.CreateTransferRequest:
        return money_movement_service_pb2.CreateTransferRequest(
            request_id=request_id, debit_account_id=wallet, credit_account_id=shop,
            amount_minor=amount, currency_code="USD", pending=True,
        )  # fmt: skip

    held = await client.movements.CreateTransfer(hold("u-h1", 1_000), metadata=client.md)
    full = await failure(client.pay("u-over", wallet, shop, 1))  # a held 1,000 counts
    assert full.metadata["used"] == "1000"
    await client.movements.VoidTransfer(
        money_movement_service_pb2.VoidTransferRequest(
            request_id="u-void", transfer_id=held.transfer.id
        ),
        metadata=client.md,
    )
    second = await client.movements.CreateTransfer(hold("u-h2", 1_000), metadata=client.md)
    await client.movements.PostTransfer(  # captured for 400: counts 400 from now on
        money_movement_service_pb2.PostTransferRequest(
            request_id="u-post", transfer_id=second.transfer.id, amount_minor=400
        ),
        metadata=client.md,
    )
    await client.pay("u-rest", wallet, shop, 600)
    last = await failure(client.pay("u-one-more", wallet, shop, 1))
    assert (last.reason, last.metadata["used"], last.metadata["remaining"]) == (
        "DEBIT_LIMIT_EXCEEDED", "1000", "0",
    )  # fmt: skip
