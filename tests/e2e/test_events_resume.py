"""A consumer killed and restarted again and again during concurrent mixed operations
ends with exactly the events the ledger says happened: each acknowledged change once, in
per-account order, nothing more."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import grpc

from moneymovement.v1 import account_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import event_pb2 as ev
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client
from tests.e2e.test_holds_api import hold, post, void

T = ev.EventType


class Consumer:
    """Processes whole responses and keeps the cursor of the last one processed, as a
    consumer that persists its cursor would; a kill loses only what was not processed."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cursor = ""
        self.events: list[ev.Event] = []
        self.streams = 0

    async def run_once(self, responses: int) -> None:
        """One life: a stream from the saved cursor, killed after `responses`."""
        self.streams += 1
        request = epb.WatchEventsRequest(after_cursor=self.cursor)
        if not self.cursor:
            request.start = epb.EVENT_START_OLDEST
        stream = self.client.events.WatchEvents(request, metadata=self.client.md)
        try:
            for _ in range(responses):
                response = await asyncio.wait_for(stream.read(), 5)
                assert response is not grpc.aio.EOF
                self.events += response.events
                self.cursor = response.cursor
        except TimeoutError:
            pass  # quiet: nothing to take in this life
        finally:
            stream.cancel()  # the kill


async def test_a_consumer_killed_many_times_sees_each_change_exactly_once_in_order(
    api: Api,
) -> None:
    a = api.a
    rng = random.Random(20261202)
    funding = (
        await a.open(
            "r-funding",
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        )
    ).id
    wallets = [(await a.open(f"r-wallet-{i}")).id for i in range(5)]
    for i, wallet in enumerate(wallets):
        await a.pay(f"r-fund-{i}", funding, wallet, 100_000)
    acknowledged: list[tuple[str, str]] = []  # (event type expected, transfer or account id)
    stop = asyncio.Event()

    async def operate(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            rid = f"r{worker}-{n}"
            debit, credit = rng.sample(wallets, 2)
            kind = rng.random()
            try:
                if kind < 0.4:
                    t = (await a.pay(rid, debit, credit, rng.randint(1, 50))).transfer
                    acknowledged.append(("TRANSFER_CREATED", t.id))
                elif kind < 0.6:
                    held = await hold(a, rid, debit, credit, rng.randint(1, 50))
                    acknowledged.append(("TRANSFER_CREATED", held.id))
                    if rng.random() < 0.5:
                        await post(a, rid + "-c", held.id)
                        acknowledged.append(("TRANSFER_POSTED", held.id))
                    else:
                        await void(a, rid + "-v", held.id)
                        acknowledged.append(("TRANSFER_VOIDED", held.id))
                elif kind < 0.75:
                    t = (await a.pay(rid, debit, credit, 40)).transfer
                    reply = await a.movements.ReverseTransfer(
                        mpb.ReverseTransferRequest(
                            request_id=rid + "-r", transfer_id=t.id, amount_minor=15
                        ),
                        metadata=a.md,
                    )
                    acknowledged.extend(
                        [
                            ("TRANSFER_CREATED", t.id),
                            ("TRANSFER_CREATED", reply.reversal.id),
                            ("TRANSFER_REVERSED", t.id),
                        ]
                    )
                elif kind < 0.9:
                    item = mpb.CreateTransfersRequest.Item
                    items = [
                        item(debit_account_id=d, credit_account_id=c, amount_minor=3,
                             currency_code="USD")
                        for d, c in (rng.sample(wallets, 2) for _ in range(3))
                    ]  # fmt: skip
                    reply = await a.movements.CreateTransfers(
                        mpb.CreateTransfersRequest(request_id=rid, transfers=items),
                        metadata=a.md,
                    )
                    acknowledged.extend(("TRANSFER_CREATED", t.id) for t in reply.transfers)
                    acknowledged.append(("BATCH_COMMITTED", reply.transfers[0].id))
                else:
                    account = (await a.open(rid)).id
                    await a.accounts.FreezeAccount(
                        apb.FreezeAccountRequest(request_id=rid + "-f", account_id=account),
                        metadata=a.md,
                    )
                    acknowledged.extend([("ACCOUNT_CREATED", account), ("ACCOUNT_FROZEN", account)])
            except grpc.aio.AioRpcError as error:
                # Business rejections (funds, say) are fine; anything else is not.
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise

    consumer = Consumer(a)

    async def consume() -> None:
        while not stop.is_set():
            await consumer.run_once(rng.randint(1, 6))

    workers = [asyncio.create_task(operate(w)) for w in range(6)]
    consuming = asyncio.create_task(consume())
    await asyncio.sleep(6)
    stop.set()
    await asyncio.gather(*workers)
    await consuming
    while True:  # the last life: until the stream has nothing more
        before = len(consumer.events)
        await consumer.run_once(50)
        if len(consumer.events) == before:
            break

    assert consumer.streams >= 10, "the consumer was not killed often enough to test much"
    events = consumer.events
    cursors = [int(e.cursor) for e in events]
    assert cursors == sorted(set(cursors)), "an event twice, or out of order"

    # Exactly the events table, nothing more.
    connection = await asyncpg.connect(api.dsn)
    try:
        stored = await connection.fetch(
            "SELECT e.position, e.type FROM events AS e JOIN tenants AS t USING (tenant_id) "
            "WHERE t.name = 'tenant-a' ORDER BY e.position"
        )
    finally:
        await connection.close()
    assert [(r["position"], r["type"]) for r in stored] == [
        (int(e.cursor), T.Name(e.type).removeprefix("EVENT_TYPE_")) for e in events
    ]

    # Every acknowledged change, each once.
    told: dict[tuple[str, str], int] = {}
    for e in events:
        name = T.Name(e.type).removeprefix("EVENT_TYPE_")
        if e.HasField("account"):
            key = (name, e.account.id)
        elif e.type == T.EVENT_TYPE_BATCH_COMMITTED:
            key = (name, e.transfer_ids[0])
        else:
            key = (name, e.transfer.id)
        told[key] = told.get(key, 0) + 1
    assert len(acknowledged) > 200
    for change in acknowledged:
        assert told.get(change) == 1, change

    # Per account, the stream shows each balance change once, in version order.
    versions: dict[str, list[int]] = {}
    for e in events:
        if e.type in (T.EVENT_TYPE_TRANSFER_REVERSED, T.EVENT_TYPE_BATCH_COMMITTED):
            continue  # these repeat balances their TRANSFER_CREATED events showed
        for b in e.balances:
            versions.setdefault(b.account_id, []).append(b.version)
    for account_id, seen in versions.items():
        assert seen == sorted(set(seen)), account_id
