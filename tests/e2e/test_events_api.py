"""EventService over a real port: every change has its event, in order, with the
resources as they were right after it; streams, filters, cursors, retention, isolation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc

from moneymovement.service.retention import Retention
from moneymovement.v1 import account_pb2, transfer_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import event_pb2 as ev
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client, failure, start_api, stop_api
from tests.e2e.test_holds_api import hold, post, void
from tests.ledger_checks import assert_ledger_consistent

Code = grpc.StatusCode
T = ev.EventType


async def all_events(client: Client, **request: object) -> list[ev.Event]:
    """Every event ListEvents gives, page by page from the oldest."""
    events: list[ev.Event] = []
    cursor = ""
    while True:
        page = await client.events.ListEvents(
            epb.ListEventsRequest(after_cursor=cursor, page_size=7, **request),  # type: ignore[arg-type]
            metadata=client.md,
        )
        events += page.events
        assert page.next_cursor
        if not page.events:
            return events
        cursor = page.next_cursor


def names(events: list[ev.Event]) -> list[str]:
    return [T.Name(e.type).removeprefix("EVENT_TYPE_") for e in events]


async def test_every_change_has_one_event_in_order_with_the_state_right_after_it(api: Api) -> None:
    a = api.a
    customer, _funding = await a.fund("ev", 10_000)
    merchant = (await a.open("ev-merchant")).id
    paid = (await a.pay("ev-pay", customer, merchant, 1_500)).transfer
    held = await hold(a, "ev-hold", customer, merchant, 2_000)
    await post(a, "ev-capture", held.id, 1_200)
    voided = await hold(a, "ev-hold2", customer, merchant, 300)
    await void(a, "ev-void", voided.id)
    await a.movements.ReverseTransfer(
        mpb.ReverseTransferRequest(request_id="ev-rev", transfer_id=paid.id, amount_minor=500),
        metadata=a.md,
    )
    item = mpb.CreateTransfersRequest.Item
    await a.movements.CreateTransfers(
        mpb.CreateTransfersRequest(
            request_id="ev-batch",
            transfers=[
                item(
                    debit_account_id=customer,
                    credit_account_id=merchant,
                    amount_minor=100,
                    currency_code="USD",
                ),
                item(
                    debit_account_id=customer,
                    credit_account_id=merchant,
                    amount_minor=200,
                    currency_code="USD",
                ),
            ],
        ),
        metadata=a.md,
    )
    await a.accounts.UpdateAccount(
        apb.UpdateAccountRequest(request_id="ev-upd", account_id=merchant, name="Merchant"),
        metadata=a.md,
    )
    await a.accounts.FreezeAccount(
        apb.FreezeAccountRequest(request_id="ev-frz", account_id=merchant), metadata=a.md
    )
    await a.accounts.UnfreezeAccount(
        apb.UnfreezeAccountRequest(request_id="ev-unf", account_id=merchant), metadata=a.md
    )
    # A rejection changes nothing and tells nothing; a replay tells nothing again.
    refused = await failure(a.pay("ev-too-much", customer, merchant, 10**9))
    assert refused.reason == "INSUFFICIENT_FUNDS"
    await a.pay("ev-pay", customer, merchant, 1_500)

    events = await all_events(a)
    assert names(events) == [
        "ACCOUNT_CREATED", "ACCOUNT_CREATED", "TRANSFER_CREATED",  # fund
        "ACCOUNT_CREATED", "TRANSFER_CREATED",  # merchant, pay
        "TRANSFER_CREATED", "TRANSFER_POSTED",  # hold, capture
        "TRANSFER_CREATED", "TRANSFER_VOIDED",  # hold, void
        "TRANSFER_CREATED", "TRANSFER_REVERSED",  # the reversal, then the original
        "TRANSFER_CREATED", "TRANSFER_CREATED", "BATCH_COMMITTED",
        "ACCOUNT_UPDATED", "ACCOUNT_FROZEN", "ACCOUNT_UNFROZEN",
    ]  # fmt: skip
    cursors = [int(e.cursor) for e in events]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)

    # Each event carries the resources right after it: the payment's balances are those
    # of that moment, not today's.
    pay_event = events[4]
    assert pay_event.request_id == "ev-pay"
    assert pay_event.transfer.id == paid.id
    by_account = {b.account_id: b for b in pay_event.balances}
    assert by_account[customer].posted_minor == 10_000 - 1_500
    assert by_account[merchant].posted_minor == 1_500
    capture = events[6]
    assert capture.transfer.state == transfer_pb2.Transfer.STATE_POSTED
    assert capture.transfer.posted_amount_minor == 1_200
    assert {b.account_id: b.posted_minor for b in capture.balances}[merchant] == 1_500 + 1_200
    reversed_original = events[10]
    assert reversed_original.transfer.id == paid.id
    assert reversed_original.transfer.reversed_amount_minor == 500
    batch = events[13]
    assert list(batch.transfer_ids) == [e.transfer.id for e in events[11:13]]
    assert [e.transfer.amount_minor for e in events[11:13]] == [100, 200]
    assert not batch.transfers
    assert not batch.HasField("transfer")
    assert {b.account_id: b.posted_minor for b in batch.balances}[merchant] == 2_700 - 500 + 300
    assert events[14].account.name == "Merchant"
    assert events[15].account.state == account_pb2.Account.STATE_FROZEN
    assert events[16].account.state == account_pb2.Account.STATE_ACTIVE

    # Per account, versions never go back along the stream, and every change of balances
    # shows a newer one (a reversal's TRANSFER_REVERSED and a batch's BATCH_COMMITTED
    # repeat the balances their TRANSFER_CREATED events already showed).
    last: dict[str, int] = {}
    for event in events:
        for b in event.balances:
            if event.type == T.EVENT_TYPE_TRANSFER_CREATED:
                assert b.version > last.get(b.account_id, 0)
            assert b.version >= last.get(b.account_id, 0)
            last[b.account_id] = b.version

    # The trace id of the call that made each change is on its event.
    assert all(len(e.trace_id) == 32 for e in events)


async def test_a_watcher_gets_new_events_at_once_and_resumes_after_its_cursor(api: Api) -> None:
    a = api.a
    customer, funding = await a.fund("w", 1_000)
    stream = a.events.WatchEvents(epb.WatchEventsRequest(), metadata=a.md)
    await asyncio.sleep(0.2)  # the stream is open: "now" is before the next payment
    started = time.perf_counter()
    await a.pay("w-pay", funding, customer, 5)
    response = await asyncio.wait_for(stream.read(), 5)
    delay = time.perf_counter() - started
    stream.cancel()
    assert names(list(response.events)) == ["TRANSFER_CREATED"]
    assert response.cursor == response.events[-1].cursor
    assert delay < 1.0, delay

    # Resuming after that cursor: the next events, and nothing seen before.
    await a.pay("w-pay2", funding, customer, 6)
    again = a.events.WatchEvents(
        epb.WatchEventsRequest(after_cursor=response.cursor), metadata=a.md
    )
    second = await asyncio.wait_for(again.read(), 5)
    again.cancel()
    assert [e.request_id for e in second.events] == ["w-pay2"]

    # From the oldest: everything, the same events ListEvents gives.
    oldest = a.events.WatchEvents(
        epb.WatchEventsRequest(start=epb.EVENT_START_OLDEST), metadata=a.md
    )
    seen: list[ev.Event] = []
    while len(seen) < 5:
        seen += (await asyncio.wait_for(oldest.read(), 5)).events
    oldest.cancel()
    assert [e.cursor for e in seen] == [e.cursor for e in await all_events(a)]


async def test_filters_by_type_account_and_holder(api: Api) -> None:
    a = api.a
    customer, funding = await a.fund("f", 1_000)
    other = (await a.open("f-other", holder_id="holder-7")).id
    await a.pay("f-pay", customer, other, 10)
    await a.pay("f-pay2", funding, customer, 10)

    only_created = await all_events(a, filter=epb.EventFilter(types=[T.EVENT_TYPE_ACCOUNT_CREATED]))
    assert names(only_created) == ["ACCOUNT_CREATED"] * 3
    of_other = await all_events(a, filter=epb.EventFilter(account_id=other))
    assert [e.request_id for e in of_other] == ["f-other", "f-pay"]
    of_holder = await all_events(a, filter=epb.EventFilter(holder_id="holder-7"))
    assert [e.request_id for e in of_holder] == ["f-other", "f-pay"]

    # A filtered listing still moves its cursor past what it skipped.
    page = await a.events.ListEvents(
        epb.ListEventsRequest(filter=epb.EventFilter(holder_id="nobody")), metadata=a.md
    )
    assert not page.events
    assert int(page.next_cursor) == int((await all_events(a))[-1].cursor)


async def test_bad_requests_are_refused_naming_the_field(api: Api) -> None:
    a = api.a
    cases = [
        (epb.ListEventsRequest(after_cursor="abc"), "after_cursor"),
        (epb.ListEventsRequest(after_cursor="99999"), "after_cursor"),  # ahead of the stream
        (epb.ListEventsRequest(after_cursor="1", start=epb.EVENT_START_NOW), "start"),
        (epb.ListEventsRequest(filter=epb.EventFilter(account_id="nope")), "filter.account_id"),
        (epb.ListEventsRequest(filter=epb.EventFilter(types=[0])), "filter.types[0]"),
        (epb.ListEventsRequest(filter=epb.EventFilter(holder_id="a b")), "filter.holder_id"),
        (epb.ListEventsRequest(page_size=5000), "page_size"),
    ]
    for request, field in cases:
        refused = await failure(a.events.ListEvents(request, metadata=a.md))
        assert refused.code == Code.INVALID_ARGUMENT, field
        assert [f for f, _ in refused.field_violations] == [field]
    stream = a.events.WatchEvents(epb.WatchEventsRequest(after_cursor="-1"), metadata=a.md)
    refused = await failure(stream.read())
    assert (refused.code, refused.field_violations[0][0]) == (Code.INVALID_ARGUMENT, "after_cursor")
    unauthenticated = await failure(
        api.anonymous.events.WatchEvents(epb.WatchEventsRequest()).read()
    )
    assert unauthenticated.code == Code.UNAUTHENTICATED


async def test_tenants_see_only_their_own_events(api: Api) -> None:
    await api.a.fund("iso", 100)
    assert names(await all_events(api.a)) == ["ACCOUNT_CREATED"] * 2 + ["TRANSFER_CREATED"]
    assert await all_events(api.b) == []
    # B's cursors count B's events only: its first event is at position 1.
    await api.b.open("iso-b")
    assert [e.cursor for e in await all_events(api.b)] == ["1"]


async def test_pruned_events_make_older_cursors_expire(api: Api) -> None:
    a = api.a
    await a.fund("exp", 100)
    events = await all_events(a)
    retention = Retention(
        api.database, event_retention_s=60, outcome_retention_s=86400, interval_s=60
    )
    pruned, _ = await retention.prune_once(datetime.now(UTC) + timedelta(minutes=2))
    assert pruned == len(events) == 3
    refused = await failure(
        a.events.ListEvents(epb.ListEventsRequest(after_cursor="1"), metadata=a.md)
    )
    assert (refused.code, refused.reason) == (Code.OUT_OF_RANGE, "CURSOR_EXPIRED")
    assert refused.metadata["oldest_cursor"] == events[-1].cursor
    stream = a.events.WatchEvents(epb.WatchEventsRequest(after_cursor="0"), metadata=a.md)
    assert (await failure(stream.read())).reason == "CURSOR_EXPIRED"
    # From the oldest kept, and after the oldest cursor, all is well.
    await a.open("exp-next")
    assert names(await all_events(a)) == ["ACCOUNT_CREATED"]
    page = await a.events.ListEvents(
        epb.ListEventsRequest(after_cursor=refused.metadata["oldest_cursor"]), metadata=a.md
    )
    assert [e.request_id for e in page.events] == ["exp-next"]


async def test_a_quiet_filtered_stream_sends_heartbeats_with_its_cursor(dsn: str) -> None:
    api = await start_api(dsn, MM_EVENT_HEARTBEAT_S="0.3")
    try:
        a = api.a
        await a.fund("hb", 100)
        stream = a.events.WatchEvents(
            epb.WatchEventsRequest(
                start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(holder_id="nobody")
            ),
            metadata=a.md,
        )
        beat = await asyncio.wait_for(stream.read(), 5)
        assert not beat.events
        assert beat.cursor == "3"
        stream.cancel()
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)


async def test_streams_end_with_shutting_down_when_the_server_stops(dsn: str) -> None:
    api = await start_api(dsn)
    a = api.a
    stream = a.events.WatchEvents(epb.WatchEventsRequest(), metadata=a.md)
    await asyncio.sleep(0.2)
    stopping = asyncio.create_task(api.server.stop(5))
    refused = await failure(stream.read())
    assert (refused.code, refused.reason) == (Code.UNAVAILABLE, "SHUTTING_DOWN")
    started = time.perf_counter()
    await stopping
    assert time.perf_counter() - started < 4, "the stop did not wait for the stream"
    await api.channel.close()
    await api.database.close()


async def test_a_hundred_streams_on_one_replica_each_get_every_event(api: Api) -> None:
    a = api.a
    customer, funding = await a.fund("many", 1_000)
    streams = [a.events.WatchEvents(epb.WatchEventsRequest(), metadata=a.md) for _ in range(100)]
    await asyncio.sleep(1.0)  # all open: "now" is before the payments below
    assert api.server.events.open_streams == 100
    for n in range(3):
        await a.pay(f"many-{n}", funding, customer, 1)

    async def three_events(stream: object) -> list[str]:
        seen: list[str] = []
        while len(seen) < 3:
            response = await asyncio.wait_for(stream.read(), 10)  # type: ignore[attr-defined]
            seen += [e.request_id for e in response.events]
        stream.cancel()  # type: ignore[attr-defined]
        return seen

    results = await asyncio.gather(*(three_events(s) for s in streams))
    assert all(r == ["many-0", "many-1", "many-2"] for r in results)
    for _ in range(50):  # the server sees them go
        if api.server.events.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert api.server.events.open_streams == 0
