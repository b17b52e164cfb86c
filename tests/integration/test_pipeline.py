"""The write pipeline under concurrency, against real PostgreSQL.

Thousands of mixed commands from many callers at once: transfers (many refused for want
of funds), holds then captures and voids (some racing for the same hold), atomic batches,
repeated request ids, request ids reused with another body, commands that poison their
batch, and commands whose deadline has already passed. Then, in PostgreSQL itself: every
command was answered exactly once, with an answer it may get; every effect happened once;
and every balance is what applying the acknowledged commands one by one gives.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest

from moneymovement.domain.accounts import Account, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.errors import DomainError, Reason, Rejected
from moneymovement.domain.transfers import Transfer, TransferSpec, TransferState
from moneymovement.service.accounts import AccountService
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from tests.integration.conftest import Ledger, ledger_for
from tests.ledger_checks import assert_ledger_consistent

WALLETS = 12
START_MINOR = 2_000
COMMANDS = 2_400


@dataclass
class Call:
    """One command sent and the one answer it got."""

    kind: str
    request_id: str
    body: object
    answers: list[object]


def _outcome(answer: object) -> object:
    """What to compare between repeats: a transfer's id(s), or a refusal's reason."""
    if isinstance(answer, Transfer):
        return answer.id
    if isinstance(answer, list):
        return [t.id for t in answer]
    if isinstance(answer, DomainError):
        return answer.reason
    return type(answer).__name__


async def _answer(call: Call, send: Callable[[], Awaitable[object]]) -> None:
    try:
        call.answers.append(await send())
    except Exception as error:
        call.answers.append(error)


async def test_thousands_of_mixed_commands_each_answered_once_each_effect_once(
    ledger: Ledger, dsn: str
) -> None:
    rng = random.Random(20261202)
    loop = asyncio.get_running_loop()
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    wallets = [await ledger.open() for _ in range(WALLETS)]
    for index, wallet in enumerate(wallets):
        spec = TransferSpec(funding.id, wallet.id, START_MINOR, "USD")
        await ledger.transfers.create(ledger.caller, f"fund-{index}", spec)

    def pair() -> tuple[Account, Account]:
        debit, credit = rng.sample(wallets, 2)
        return debit, credit

    calls: list[Call] = []
    sends: list[Awaitable[None]] = []
    live = ledger.caller
    gone = Caller(ledger.caller.tenant_id, deadline=loop.time() - 1)

    def add(kind: str, request_id: str, body: object, caller: Caller = live) -> None:
        call = Call(kind, request_id, body, [])
        calls.append(call)
        transfers = ledger.transfers
        if isinstance(body, list):
            sends.append(_answer(call, lambda: transfers.create_batch(caller, request_id, body)))
        else:
            assert isinstance(body, TransferSpec)
            sends.append(_answer(call, lambda: transfers.create(caller, request_id, body)))

    for n in range(COMMANDS):
        debit, credit = pair()
        spec = TransferSpec(debit.id, credit.id, rng.randint(1, 400), "USD")
        roll = rng.random()
        if roll < 0.55:
            add("transfer", f"t-{n}", spec)
        elif roll < 0.65:
            add("hold", f"h-{n}", replace(spec, pending=True, hold_timeout_s=600))
        elif roll < 0.70:
            items = [TransferSpec(*[w.id for w in pair()], rng.randint(1, 100), "USD")]
            add("batch", f"b-{n}", items * 3)
        elif roll < 0.80 and calls:
            earlier = rng.choice([c for c in calls if c.kind in ("transfer", "hold", "batch")])
            add(earlier.kind + "-repeat", earlier.request_id, earlier.body)
        elif roll < 0.85 and calls:
            earlier = rng.choice([c for c in calls if c.kind == "transfer"])
            add("reused", earlier.request_id, replace(spec, amount_minor=spec.amount_minor + 1))
        elif roll < 0.90:
            # NUL is refused at the edge; here it reaches the database and fails the whole
            # statement of whatever batch carries it: the pipeline must isolate it.
            add("poison", f"p-{n}", replace(spec, metadata={"note": "nul\x00"}))
        else:
            add("expired", f"x-{n}", spec, caller=gone)
    order = list(range(len(sends)))
    rng.shuffle(order)
    await asyncio.wait_for(asyncio.gather(*(sends[i] for i in order)), timeout=120)

    # Every command answered exactly once, with an answer of the kinds it may get.
    assert all(len(c.answers) == 1 for c in calls)
    first: dict[str, Call] = {}
    by_id: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_id[call.request_id].append(call)
    kinds = Counter()
    for call in calls:
        [answer] = call.answers
        kinds[(call.kind, type(answer).__name__, getattr(answer, "reason", ""))] += 1
        if call.kind == "poison":
            # Its own failure, unrecorded; unless refused first, and then never written.
            refused = isinstance(answer, Rejected)
            assert refused or not isinstance(answer, DomainError), answer
        elif call.kind == "expired":
            assert isinstance(answer, DomainError)
            assert answer.reason is Reason.DEADLINE_EXCEEDED
        elif call.kind == "reused":
            # Its id was first used for another body: refused, whichever came first...
            # unless this body came first, and then the original is the one refused.
            originals = [c for c in by_id[call.request_id] if c.kind != "reused"]
            refused = [
                c
                for c in (call, *originals)
                if isinstance(c.answers[0], DomainError)
                and c.answers[0].reason is Reason.REQUEST_ID_REUSED
            ]
            assert refused, call
        else:
            ok = isinstance(answer, Transfer | list)
            assert ok or isinstance(answer, Rejected) or _reused(answer), answer
            if isinstance(answer, Rejected):
                assert answer.reason is Reason.INSUFFICIENT_FUNDS, answer
        first.setdefault(call.request_id, call)

    # Same request id, same body: the same answer, however the copies were batched.
    for request_id, same in by_id.items():
        bodies = defaultdict(set)
        for call in same:
            if not _reused(call.answers[0]):
                bodies[repr(call.body)].add(repr(_outcome(call.answers[0])))
        assert len(bodies) <= 1, (request_id, bodies)
        for answers in bodies.values():
            assert len(answers) == 1, (request_id, answers)

    # Second wave: each hold captured or voided, some by two requests racing each other.
    holds = {
        c.answers[0].id: c.answers[0]
        for c in calls
        if c.kind == "hold" and isinstance(c.answers[0], Transfer)
    }
    enders: list[tuple[str, str, Awaitable[Any]]] = []
    for hold_id, hold in holds.items():
        for copy in range(rng.choice((1, 1, 2))):
            request_id = f"end-{hold_id}-{copy}"
            if rng.random() < 0.5:
                amount = rng.randint(1, hold.amount_minor)
                enders.append(
                    (hold_id, "post", ledger.transfers.post(live, request_id, hold_id, amount))
                )
            else:
                enders.append((hold_id, "void", ledger.transfers.void(live, request_id, hold_id)))
    ended = await asyncio.gather(*(e[2] for e in enders), return_exceptions=True)
    final_holds: dict[str, Transfer] = {}
    for (hold_id, _, _), answer in zip(enders, ended, strict=True):
        if isinstance(answer, Transfer):
            assert hold_id not in final_holds, "a hold ended twice"
            final_holds[hold_id] = answer
        else:
            assert isinstance(answer, Rejected), answer
            assert answer.reason is Reason.TRANSFER_NOT_PENDING, answer
    assert set(final_holds) == set(holds)

    # In PostgreSQL: each acknowledged request's transfers exactly once, nothing else.
    acknowledged: dict[str, list[Transfer]] = {}
    for call in calls:
        answer = call.answers[0]
        if isinstance(answer, Transfer):
            acknowledged[call.request_id] = [answer]
        elif isinstance(answer, list):
            acknowledged[call.request_id] = answer
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT request_id, transfer_id FROM transfers WHERE tenant_id = $1"
            " AND request_id NOT LIKE 'fund-%'",
            ledger.caller.tenant_id,
        )
        stored = await connection.fetch(
            "SELECT account_id, posted_debits_minor, posted_credits_minor, pending_debits_minor,"
            " pending_credits_minor FROM accounts WHERE tenant_id = $1",
            ledger.caller.tenant_id,
        )
    finally:
        await connection.close()
    in_db: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        in_db[row["request_id"]].add(row["transfer_id"])
    expected_ids = {rid: {t.id for t in ts} for rid, ts in acknowledged.items()}
    assert dict(in_db) == expected_ids

    # Balances: the acknowledged commands applied one by one.
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for wallet in wallets:
        totals[wallet.id]["posted_credits_minor"] += START_MINOR
    for transfers in acknowledged.values():
        for t in transfers:
            side = "pending" if t.state is TransferState.PENDING else "posted"
            totals[t.debit_account_id][f"{side}_debits_minor"] += t.amount_minor
            totals[t.credit_account_id][f"{side}_credits_minor"] += t.amount_minor
    for hold_id, ended_hold in final_holds.items():
        held = holds[hold_id]
        totals[held.debit_account_id]["pending_debits_minor"] -= held.amount_minor
        totals[held.credit_account_id]["pending_credits_minor"] -= held.amount_minor
        totals[held.debit_account_id]["posted_debits_minor"] += ended_hold.posted_amount_minor
        totals[held.credit_account_id]["posted_credits_minor"] += ended_hold.posted_amount_minor
    for row in stored:
        if row["account_id"] == funding.id:
            continue
        want = totals[row["account_id"]]
        for column in (
            "posted_debits_minor",
            "posted_credits_minor",
            "pending_debits_minor",
            "pending_credits_minor",
        ):
            assert row[column] == want[column], (row["account_id"], column, row[column], want)
    await assert_ledger_consistent(dsn)

    # The load really was grouped, and really was mixed.
    pipeline = ledger.transfers._pipeline
    assert pipeline.batches_committed < len(calls) / 3
    seen = {kind for kind, *_ in kinds}
    assert {"transfer", "hold", "batch", "poison", "expired", "reused"} <= seen
    assert any(k[2] == Reason.INSUFFICIENT_FUNDS for k in kinds)
    poisoned = sum(
        n for (kind, name, _), n in kinds.items() if kind == "poison" and name != "Rejected"
    )
    assert poisoned > 10, kinds


def _reused(answer: object) -> bool:
    return isinstance(answer, DomainError) and answer.reason is Reason.REQUEST_ID_REUSED


async def test_two_tenants_on_one_pipeline_never_share_a_batch_or_a_row(
    ledger: Ledger, dsn: str
) -> None:
    # One pipeline, as in one server: B's commands naming A's hot account queue beside
    # A's own, on the same keys' names, and must neither reach A's rows nor be recorded
    # under A's tenant.
    pipeline = ledger.transfers._pipeline
    other = await ledger_for(ledger.database, "tenant-b")
    other = replace(
        other,
        transfers=TransferService(pipeline, UnitOfWork(ledger.database)),
        accounts=AccountService(pipeline, UnitOfWork(ledger.database)),
    )
    a_funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    hot = await ledger.open()
    b_funding = await other.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    b_wallet = await other.open()
    mine = [
        ledger.transfers.create(
            ledger.caller, f"x-{n}", TransferSpec(a_funding.id, hot.id, 7, "USD")
        )
        for n in range(60)
    ]
    theirs = [
        other.transfers.create(other.caller, f"x-{n}", TransferSpec(b_funding.id, hot.id, 5, "USD"))
        for n in range(60)
    ]
    own = [
        other.transfers.create(
            other.caller, f"y-{n}", TransferSpec(b_funding.id, b_wallet.id, 3, "USD")
        )
        for n in range(60)
    ]
    answers = await asyncio.gather(*mine, *theirs, *own, return_exceptions=True)
    assert all(isinstance(a, Transfer) for a in answers[:60])
    for refused in answers[60:120]:
        assert isinstance(refused, Rejected)
        assert refused.reason is Reason.ACCOUNT_NOT_FOUND
    assert all(isinstance(a, Transfer) for a in answers[120:])
    # Same request ids in both tenants: each replays its own outcome, never the other's.
    with pytest.raises(Rejected) as replayed:
        await other.transfers.create(
            other.caller, "x-0", TransferSpec(b_funding.id, hot.id, 5, "USD")
        )
    assert replayed.value.reason is Reason.ACCOUNT_NOT_FOUND
    mine_again = await ledger.transfers.create(
        ledger.caller, "x-0", TransferSpec(a_funding.id, hot.id, 7, "USD")
    )
    assert mine_again.id == answers[0].id  # type: ignore[union-attr]
    [balance] = await ledger.balances.get_many(ledger.caller, [hot.id])
    assert balance.balances.posted_credits_minor == 60 * 7
    [wallet] = await other.balances.get_many(other.caller, [b_wallet.id])
    assert wallet.balances.posted_credits_minor == 60 * 3
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT tenant_id, count(*) AS n FROM transfers WHERE credit_account_id = $1"
            " GROUP BY tenant_id",
            hot.id,
        )
        recorded = await connection.fetch(
            "SELECT tenant_id, count(*) AS n FROM request_outcomes WHERE request_id LIKE 'x-%'"
            " GROUP BY tenant_id ORDER BY tenant_id"
        )
    finally:
        await connection.close()
    assert [(r["tenant_id"], r["n"]) for r in rows] == [(ledger.caller.tenant_id, 60)]
    assert sorted(r["n"] for r in recorded) == [60, 60]  # each tenant's own 60 outcomes
    await assert_ledger_consistent(dsn)
