"""The chaos run's event audit: what the watcher received against what the clients were
told and what the database holds.

1. Cursors: none received twice; strictly increasing in the order received; each
   response's events after the previous response's cursor and up to its own.
2. Every acknowledged request is told exactly once, with the right event types, ids and
   amounts; a rejected request is never told; an unknown one is told with its full shape
   or not at all.
3. Nothing more: the stream is exactly the tenant's `events` table (same cursors, types,
   requests, transfers, accounts, balances, transfer states); every row of `transfers`
   has one TRANSFER_CREATED; every finished hold one final event of the type its state
   says; every reversal of a transfer one TRANSFER_REVERSED.
4. Per account: the balance versions the events carry never decrease along the stream
   and strictly increase across TRANSFER_CREATED/POSTED/VOIDED/EXPIRED and
   FUNDS_RELEASED; each is the account's balances at that version (its entry of that
   version in `entries`; a FUNDS_RELEASED, which writes no entry: the last one before it).

An early release (ReleaseFunds) is told as FUNDS_RELEASED with the parts it ended, then
its fee's TRANSFER_CREATED when it charged one; the sweeper's releases carry no request
id (the harness checks that each released part is told once).

The sellers' operations (tests/chaos/reserve.py) are checked as the kinds they are (a
charge or a seller's move as a transfer, a refund as a reversal, a batch of refunds as
each reversal's TRANSFER_CREATED and TRANSFER_REVERSED then BATCH_COMMITTED), leaving
out the TRANSFER_CREATED of the covers and recoveries they brought: those carry the same
request id, and whether there are any depends on the seller's balance at the time, which
the client does not know. The table check (3) still finds each of them told once.

White box: a cursor is its event's position (service/event_stream.py, cursor_of).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

import asyncpg

from moneymovement.service.event_stream import cursor_of
from moneymovement.v1 import event_pb2 as ev
from moneymovement.v1 import transfer_pb2
from tests.chaos.reserve import SELLER_OPS
from tests.chaos.watcher import WatchLog

T = ev.EventType
CREATED = T.EVENT_TYPE_TRANSFER_CREATED
POSTED = T.EVENT_TYPE_TRANSFER_POSTED
VOIDED = T.EVENT_TYPE_TRANSFER_VOIDED
EXPIRED = T.EVENT_TYPE_TRANSFER_EXPIRED
REVERSED = T.EVENT_TYPE_TRANSFER_REVERSED
BATCH = T.EVENT_TYPE_BATCH_COMMITTED
CAPTURED = T.EVENT_TYPE_TRANSFER_CAPTURED
INCREMENTED = T.EVENT_TYPE_TRANSFER_INCREMENTED
RELEASED = T.EVENT_TYPE_FUNDS_RELEASED
# The events that change their accounts' balances: each raises their versions. A release
# (by the sweeper or early) raises its account's version too, but moves no money: it
# writes no entry, so its balances are those of the account's last entry before it.
MOVES_MONEY = frozenset({CREATED, POSTED, VOIDED, EXPIRED, CAPTURED, INCREMENTED})
RAISES_VERSION = MOVES_MONEY | {RELEASED}
# How a finished hold ended (its last step: a hold captured in part and then voided or
# expired is POSTED), and the event that must tell it.
FINAL_EVENT = {"POSTED": POSTED, "VOIDED": VOIDED, "EXPIRED": EXPIRED}
KIND_EXPIRED = transfer_pb2.TransferEvent.KIND_EXPIRED
FINAL_TYPES = frozenset(FINAL_EVENT.values())
STATE = {
    transfer_pb2.Transfer.STATE_PENDING: "PENDING",
    transfer_pb2.Transfer.STATE_POSTED: "POSTED",
    transfer_pb2.Transfer.STATE_VOIDED: "VOIDED",
    transfer_pb2.Transfer.STATE_EXPIRED: "EXPIRED",
}
# Examples quoted per kind of failure; the rest are counted.
EXAMPLES = 5


def name(event_type: ev.EventType.ValueType) -> str:
    return T.Name(event_type).removeprefix("EVENT_TYPE_")


def transfer_ids(event: ev.Event) -> list[str]:
    if event.type == BATCH:
        return list(event.transfer_ids)
    return [event.transfer.id] if event.HasField("transfer") else []


def account_ids(event: ev.Event) -> list[str]:
    if event.HasField("account"):
        return [event.account.id]
    return [b.account_id for b in event.balances]


class _Failures:
    """Failures by kind: a few examples of each, and the count."""

    def __init__(self, fail: Callable[[str], None]) -> None:
        self._fail = fail
        self.counts: Counter[str] = Counter()
        self._examples: dict[str, list[str]] = defaultdict(list)

    def __call__(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self._examples[kind]) < EXAMPLES:
            self._examples[kind].append(detail)

    def of(self, kinds: Iterable[str]) -> int:
        return sum(self.counts[k] for k in kinds)

    def report(self) -> None:
        for kind, count in self.counts.items():
            self._fail(f"events: {kind}: {count}, e.g. {self._examples[kind]}")


async def audit_events(
    connection: asyncpg.Connection,
    tenant_id: str,
    watcher: WatchLog,
    records: list[dict[str, Any]],
    effects: dict[str, int],
    fail: Callable[[str], None],
) -> list[str]:
    """Runs the four checks; returns the summary lines, hands each failure to `fail`."""
    failures = _Failures(fail)
    events = watcher.events
    lines = [
        f"  event watcher: {len(events)} events in {watcher.streams} streams, "
        f"{len(watcher.responses)} responses ({_heartbeats(watcher)} without events), "
        f"{watcher.listed} left for the final ListEvents; streams ended: "
        f"{dict(watcher.endings.most_common())}"
    ]
    for anomaly in watcher.anomalies:
        failures("watcher stream anomaly", anomaly)

    # 1. Cursors.
    positions = _cursor_checks(watcher, failures)
    lines.append(
        f"  events 1/4 cursors: {len(positions)} received, "
        + (
            "none twice, strictly increasing, each response after the previous one's cursor"
            if not failures.of(_CURSOR_KINDS)
            else f"FAILED ({failures.of(_CURSOR_KINDS)})"
        )
    )

    # 2. What the clients were told happened.
    by_request: dict[str, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if event.request_id:
            by_request[event.request_id].append(index)
    reserve_ids = {
        r["transfer_id"]
        for r in await connection.fetch(
            "SELECT transfer_id FROM transfers WHERE tenant_id = $1 AND reserve_movement "
            "IS NOT NULL",
            tenant_id,
        )
    }
    told = _request_checks(events, by_request, records, effects, failures, reserve_ids)
    lines.append(
        f"  events 2/4 requests: {told['ack']} acknowledged "
        f"({', '.join(f'{op} {n}' for op, n in sorted(told['ops'].items()))}) each told once "
        f"with the right types and ids (besides {told['reserve']} covers and recoveries), "
        f"{told['rejected']} rejected told never, unknown told "
        f"{told['unknown told']} / not told {told['unknown untold']}"
        + (f": FAILED ({failures.of(_REQUEST_KINDS)})" if failures.of(_REQUEST_KINDS) else "")
    )

    # 3. The stream is the table, and the table is told.
    table = await _table_checks(connection, tenant_id, events, failures)
    lines.append(
        f"  events 3/4 = database: {table['events']} events table rows "
        f"(positions {table['first']}..{table['last']}) all received as stored, none more; "
        f"{table['transfers']} transfers each created once, {table['finished']} finished "
        f"holds each ended once with their state's event, {table['reversals']} reversals "
        f"each told on their original"
        + (f": FAILED ({failures.of(_TABLE_KINDS)})" if failures.of(_TABLE_KINDS) else "")
    )

    # 4. Per-account order.
    order = await _order_checks(connection, tenant_id, events, failures)
    lines.append(
        f"  events 4/4 per-account order: {order['balances']} balances of {order['accounts']} "
        f"accounts, versions never back, up on every money-moving event, each the ledger's "
        f"balances at its version"
        + (f": FAILED ({failures.of(_ORDER_KINDS)})" if failures.of(_ORDER_KINDS) else "")
    )
    failures.report()
    return lines


def _heartbeats(watcher: WatchLog) -> int:
    return sum(1 for r in watcher.responses if r.stream and not r.events)


_CURSOR_KINDS = (
    "malformed cursor",
    "cursor received twice",
    "cursor not after the one before",
    "response cursor went back",
    "response events outside (previous cursor, its cursor]",
)


def _cursor_checks(watcher: WatchLog, failures: _Failures) -> list[int]:
    positions = []
    for event in watcher.events:
        if not event.cursor.isdigit():
            failures("malformed cursor", repr(event.cursor))
            positions.append(-1)
        else:
            positions.append(int(event.cursor))
    for position, count in Counter(positions).items():
        if count > 1:
            failures("cursor received twice", f"{position} x{count}")
    for index, (before, after) in enumerate(pairwise(positions)):
        if after <= before:
            failures("cursor not after the one before", f"#{index + 1}: {before} then {after}")
    previous, start = 0, 0
    for response in watcher.responses:
        cursor = int(response.cursor) if response.cursor.isdigit() else -1
        if cursor < previous:
            failures("response cursor went back", f"{previous} then {cursor}")
        carried = positions[start : start + response.events]
        start += response.events
        if carried and (carried[0] <= previous or carried[-1] > cursor):
            failures(
                "response events outside (previous cursor, its cursor]",
                f"({previous}, {cursor}] carried {carried[0]}..{carried[-1]}",
            )
        previous = max(previous, cursor)
    return positions


_REQUEST_KINDS = (
    "acknowledged request not told as answered",
    "rejected request told",
    "unknown request told partly",
    "unknown request told but not in the database",
    "unknown request in the database but not told",
    "reversal not right before its TRANSFER_REVERSED",
)


def _request_checks(
    events: list[ev.Event],
    by_request: dict[str, list[int]],
    records: list[dict[str, Any]],
    effects: dict[str, int],
    failures: _Failures,
    reserve_ids: set[str],
) -> dict[str, Any]:
    told: dict[str, Any] = {"ack": 0, "rejected": 0, "reserve": 0, "ops": Counter()}
    told["unknown told"] = told["unknown untold"] = 0
    expiries = Counter(e.transfer.id for e in events if e.type == EXPIRED)
    for record in records:
        op, outcome = record["op"], record["outcome"]
        if op == "read" or outcome == "violation":
            continue
        request_id = record["request_id"]
        indexes = by_request.get(request_id, [])
        got = [events[i] for i in indexes]
        if outcome == "rejected":
            told["rejected"] += 1
            if got:
                failures(
                    "rejected request told",
                    f"{op} {request_id} ({record.get('reason')}): {[name(e.type) for e in got]}",
                )
            continue
        if record["op"] in SELLER_OPS:
            # Checked as its kind, without the covers and recoveries it brought.
            kept = [
                i for i in indexes
                if events[i].type != CREATED or events[i].transfer.id not in reserve_ids
            ]  # fmt: skip
            told["reserve"] += len(indexes) - len(kept)
            indexes, got = kept, [events[i] for i in kept]
            op = SELLER_OPS[op] if record["op"] != "refund_batch" else "refund_batch"
        if outcome == "unknown":
            if not got:
                told["unknown untold"] += 1
                if effects.get(request_id, 0) > 0:
                    failures("unknown request in the database but not told", f"{op} {request_id}")
                continue
            told["unknown told"] += 1
            types = [e.type for e in got]
            # A partial capture that took all that was held ended the hold.
            if _shape(op, record) != types and not (op == "partial" and types == [POSTED]):
                failures(
                    "unknown request told partly",
                    f"{op} {request_id}: {[name(e.type) for e in got]}",
                )
            elif effects.get(request_id, 0) <= 0:
                failures("unknown request told but not in the database", f"{op} {request_id}")
            continue
        told["ack"] += 1
        told["ops"][record["op"]] += 1
        if op == "void" and record["result"]["step"] == KIND_EXPIRED:
            # The void found the hold past its expiry (not yet swept): the hold ended
            # EXPIRED, told as its expiry, with no request id (as the sweeper's).
            problem = None
            if got or expiries[record["hold"]] != 1:
                problem = f"the expiry of {record['hold']} told {expiries[record['hold']]} times"
        else:
            problem = _answered(op, record, got)
        if problem:
            failures(
                "acknowledged request not told as answered",
                f"{op} {request_id}: {problem}; told {[name(e.type) for e in got]}",
            )
        if op == "reverse" and len(indexes) == 2 and indexes[1] != indexes[0] + 1:
            failures(
                "reversal not right before its TRANSFER_REVERSED",
                f"{request_id}: stream indexes {indexes}",
            )
    return told


def _shape(op: str, record: dict[str, Any]) -> list[ev.EventType.ValueType]:
    """The event types a request of `op` is told with, in order."""
    if op in ("transfer", "hold", "delayed"):
        return [CREATED]
    if op == "release":
        return [RELEASED, CREATED] if record.get("fee") else [RELEASED]
    if op == "capture":
        return [POSTED]
    if op == "partial":
        return [CAPTURED]
    if op == "increment":
        return [INCREMENTED]
    if op == "void":
        return [VOIDED]
    if op == "reverse":
        return [CREATED, REVERSED]
    if op == "refund_batch":
        return [CREATED, REVERSED] * len(record["items"]) + [BATCH]
    return [CREATED] * len(record["items"]) + [BATCH]


def _answered(op: str, record: dict[str, Any], got: list[ev.Event]) -> str | None:
    """What is wrong with the events of an acknowledged request (None: nothing)."""
    types = [e.type for e in got]
    result = record["result"]
    if op == "release":
        if types != _shape(op, record):
            return "not FUNDS_RELEASED (then the fee's TRANSFER_CREATED)"
        parts = got[0].funds
        if [f.id for f in parts] != result["funds"] or (
            sum(f.ended_amount_minor for f in parts) != result["released"]
        ):
            return f"released {[(f.id, f.ended_amount_minor) for f in parts]}, answered {result}"
        if [b.account_id for b in got[0].balances] != [record["account"]]:
            return f"balances of {[b.account_id for b in got[0].balances]}"
        if record.get("fee"):
            t = got[1].transfer
            if (t.id, t.debit_account_id, t.credit_account_id, t.amount_minor) != (
                result["fee_id"], record["account"], record["fee_account"], record["fee"],
            ):  # fmt: skip
                return f"fee {t.id} {t.debit_account_id}->{t.credit_account_id} {t.amount_minor}"
        return None
    if op in ("transfer", "hold", "delayed"):
        if types != [CREATED]:
            return "not one TRANSFER_CREATED"
        t = got[0].transfer
        wanted_state = "PENDING" if op == "hold" else "POSTED"
        if (t.id, t.debit_account_id, t.credit_account_id, t.amount_minor) != (
            result["id"], record["debit"], record["credit"], record["amount"],
        ):  # fmt: skip
            return f"another transfer: {t.id} {t.debit_account_id}->{t.credit_account_id}"
        if STATE.get(t.state) != wanted_state:
            return f"state {STATE.get(t.state)}, not {wanted_state}"
        return None
    if op in ("capture", "partial", "increment"):
        wanted = {"capture": POSTED, "partial": CAPTURED, "increment": INCREMENTED}[op]
        if op == "partial" and result["state"] == transfer_pb2.Transfer.STATE_POSTED:
            wanted = POSTED  # it took all that was held: the final capture
        if types != [wanted]:
            return f"not one {name(wanted)}"
        t = got[0].transfer
        if (t.id, t.posted_amount_minor, t.amount_minor) != (
            record["hold"], result["posted"], result["amount"],
        ):  # fmt: skip
            return f"transfer {t.id} posted {t.posted_amount_minor}, answered {result}"
        return None
    if op == "void":
        if types != [VOIDED]:
            return "not one TRANSFER_VOIDED"
        t = got[0].transfer
        if t.id != record["hold"] or t.state != result["state"]:
            return f"transfer {t.id} {STATE.get(t.state)}, answered {result}"
        return None
    if op == "reverse":
        if types != [CREATED, REVERSED]:
            return "not TRANSFER_CREATED then TRANSFER_REVERSED"
        reversal, original = got[0].transfer, got[1].transfer
        if reversal.id != result["id"] or reversal.reversal_of_transfer_id != record["original"]:
            return f"reversal {reversal.id} of {reversal.reversal_of_transfer_id}"
        if reversal.amount_minor != result["amount"]:
            return f"reversal of {reversal.amount_minor}, answered {result['amount']}"
        if original.id != record["original"] or reversal.id not in original.reversal_transfer_ids:
            return f"TRANSFER_REVERSED of {original.id} without {reversal.id}"
        return None
    if op == "refund_batch":
        if types != _shape(op, record):
            return "not each reversal's TRANSFER_CREATED, TRANSFER_REVERSED, then BATCH_COMMITTED"
        ids = result["ids"]
        reversals, originals = got[:-1:2], got[1:-1:2]
        if [e.transfer.id for e in reversals] != ids or transfer_ids(got[-1]) != ids:
            return f"reversals {[e.transfer.id for e in reversals]}, answered {ids}"
        wanted = [i["original"] for i in record["items"]]
        if [e.transfer.reversal_of_transfer_id for e in reversals] != wanted or [
            e.transfer.id for e in originals
        ] != wanted:
            return f"reversals of {[e.transfer.reversal_of_transfer_id for e in reversals]}"
        return None
    # batch
    if types != _shape(op, record):
        return "not its items' TRANSFER_CREATED then BATCH_COMMITTED"
    ids = result["ids"]
    if [e.transfer.id for e in got[:-1]] != ids or transfer_ids(got[-1]) != ids:
        return f"items {[e.transfer.id for e in got[:-1]]}, answered {ids}"
    return None


_TABLE_KINDS = (
    "events table row never received",
    "event received that the table does not hold",
    "event received differs from its row",
    "transfer without exactly one TRANSFER_CREATED",
    "TRANSFER_CREATED of no transfer row",
    "TRANSFER_CREATED differs from the transfer row",
    "finished hold without exactly one final event",
    "final event type disagrees with the hold's state",
    "final event differs from the transfer row",
    "final event of a transfer that is not a finished hold",
    "reversals and TRANSFER_REVERSED events differ",
)


async def _table_checks(
    connection: asyncpg.Connection, tenant_id: str, events: list[ev.Event], failures: _Failures
) -> dict[str, Any]:
    rows = await connection.fetch(
        "SELECT position, type, request_id, transfer_ids, account_ids, payload FROM events "
        "WHERE tenant_id = $1 ORDER BY position",
        tenant_id,
    )
    received = {e.cursor: e for e in events}
    stored = {cursor_of(r["position"]): r for r in rows}
    for cursor in stored.keys() - received.keys():
        row = stored[cursor]
        failures(
            "events table row never received",
            f"position {row['position']} {row['type']} {row['request_id']!r} "
            f"{list(row['transfer_ids'])}",
        )
    for cursor in received.keys() - stored.keys():
        event = received[cursor]
        failures(
            "event received that the table does not hold",
            f"cursor {cursor} {name(event.type)} {event.request_id!r}",
        )
    for cursor in received.keys() & stored.keys():
        problem = _differs(received[cursor], stored[cursor])
        if problem:
            failures("event received differs from its row", f"position {cursor}: {problem}")

    transfers = await connection.fetch(
        # A hold's amount as created (TRANSFER_CREATED tells it): increments are steps.
        "SELECT transfer_id, debit_account_id, credit_account_id, amount_minor - coalesce(("
        "SELECT sum((s ->> 'amount_minor')::bigint) FROM jsonb_array_elements(hold_steps) AS s "
        "WHERE s ->> 'kind' = 'INCREMENTED'), 0) AS amount_minor, state, "
        "posted_amount_minor, reversed_amount_minor, reversal_of_id, expires_at IS NOT NULL "
        "AS hold, coalesce(finalized_request_id, '') AS finalized_request_id, "
        "coalesce(hold_steps -> -1 ->> 'kind', state) AS ended_by FROM transfers "
        "WHERE tenant_id = $1",
        tenant_id,
    )
    created: dict[str, list[ev.Event]] = defaultdict(list)
    finals: dict[str, list[ev.Event]] = defaultdict(list)
    reversed_told: dict[str, list[ev.Event]] = defaultdict(list)
    for event in events:
        if event.type == CREATED:
            created[event.transfer.id].append(event)
        elif event.type in FINAL_TYPES:
            finals[event.transfer.id].append(event)
        elif event.type == REVERSED:
            reversed_told[event.transfer.id].append(event)
    reversals: Counter[str] = Counter(
        t["reversal_of_id"] for t in transfers if t["reversal_of_id"] is not None
    )
    by_id = {t["transfer_id"]: t for t in transfers}
    for transfer_id in created.keys() - by_id.keys():
        failures("TRANSFER_CREATED of no transfer row", transfer_id)
    for transfer_id in finals.keys() - by_id.keys():
        failures("final event of a transfer that is not a finished hold", f"{transfer_id}: no row")
    finished = 0
    for t in transfers:
        transfer_id = t["transfer_id"]
        told = created.get(transfer_id, [])
        if len(told) != 1:
            failures("transfer without exactly one TRANSFER_CREATED", f"{transfer_id}: {len(told)}")
        else:
            first = told[0].transfer
            if (
                first.debit_account_id, first.credit_account_id, first.amount_minor,
                first.reversal_of_transfer_id,
            ) != (
                t["debit_account_id"], t["credit_account_id"], t["amount_minor"],
                t["reversal_of_id"] or "",
            ):  # fmt: skip
                failures("TRANSFER_CREATED differs from the transfer row", transfer_id)
        ended = finals.get(transfer_id, [])
        if not t["hold"] or t["state"] == "PENDING":
            if ended:
                failures(
                    "final event of a transfer that is not a finished hold",
                    f"{transfer_id} ({t['state']}, hold: {t['hold']}): "
                    f"{[name(e.type) for e in ended]}",
                )
        else:
            finished += 1
            if len(ended) != 1:
                failures(
                    "finished hold without exactly one final event",
                    f"{transfer_id} {t['state']}: {[name(e.type) for e in ended]}",
                )
            else:
                final = ended[0]
                if final.type != FINAL_EVENT.get(t["ended_by"]):
                    failures(
                        "final event type disagrees with the hold's state",
                        f"{transfer_id} is {t['state']} (finalized_request_id "
                        f"{t['finalized_request_id']!r}); told {name(final.type)} at cursor "
                        f"{final.cursor}, request_id {final.request_id!r}, event's transfer "
                        f"state {STATE.get(final.transfer.state)}",
                    )
                if (
                    STATE.get(final.transfer.state), final.transfer.posted_amount_minor,
                ) != (t["state"], t["posted_amount_minor"]):  # fmt: skip
                    failures(
                        "final event differs from the transfer row",
                        f"{transfer_id}: told {STATE.get(final.transfer.state)} "
                        f"{final.transfer.posted_amount_minor}, row {t['state']} "
                        f"{t['posted_amount_minor']}",
                    )
        told_reversed = reversed_told.get(transfer_id, [])
        if len(told_reversed) != reversals[transfer_id] or (
            told_reversed
            and told_reversed[-1].transfer.reversed_amount_minor != t["reversed_amount_minor"]
        ):
            failures(
                "reversals and TRANSFER_REVERSED events differ",
                f"{transfer_id}: {reversals[transfer_id]} reversals, "
                f"{len(told_reversed)} TRANSFER_REVERSED",
            )
    return {
        "events": len(rows),
        "first": rows[0]["position"] if rows else 0,
        "last": rows[-1]["position"] if rows else 0,
        "transfers": len(transfers),
        "finished": finished,
        "reversals": sum(reversals.values()),
    }


def _differs(event: ev.Event, row: asyncpg.Record) -> str | None:
    """What differs between an event received and its row (None: nothing)."""
    if name(event.type) != row["type"]:
        return f"type {name(event.type)}, row {row['type']}"
    if event.request_id != row["request_id"]:
        return f"request_id {event.request_id!r}, row {row['request_id']!r}"
    if transfer_ids(event) != list(row["transfer_ids"]):
        return f"transfers {transfer_ids(event)}, row {list(row['transfer_ids'])}"
    if account_ids(event) != list(row["account_ids"]):
        return f"accounts {account_ids(event)}, row {list(row['account_ids'])}"
    payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
    if event.balances:
        told = [
            (b.account_id, b.version, b.posted_debits_minor, b.posted_credits_minor,
             b.pending_debits_minor, b.pending_credits_minor)
            for b in event.balances
        ]  # fmt: skip
        kept = [
            (a["account_id"], a["version"], a["posted_debits_minor"], a["posted_credits_minor"],
             a["pending_debits_minor"], a["pending_credits_minor"])
            for a in payload["accounts"]
        ]  # fmt: skip
        if told != kept:
            return f"balances {told}, row {kept}"
    carried = [event.transfer] if event.HasField("transfer") else []
    told_t = [
        (t.id, STATE.get(t.state), t.posted_amount_minor, t.reversed_amount_minor) for t in carried
    ]
    kept_t = [
        (d["transfer_id"], d["state"], d["posted_amount_minor"], d["reversed_amount_minor"])
        for d in payload["transfers"]
    ]
    if told_t != kept_t:
        return f"transfers {told_t}, row {kept_t}"
    return None


_ORDER_KINDS = (
    "balance version went back",
    "money-moving event without a newer version",
    "balances differ from the ledger's at that version",
)


async def _order_checks(
    connection: asyncpg.Connection, tenant_id: str, events: list[ev.Event], failures: _Failures
) -> dict[str, int]:
    entries = {
        (r["account_id"], r["account_version"]): tuple(r)[2:]
        for r in await connection.fetch(
            "SELECT account_id, account_version, posted_debits_minor, posted_credits_minor, "
            "pending_debits_minor, pending_credits_minor FROM entries WHERE tenant_id = $1",
            tenant_id,
        )
    }
    versions: dict[str, list[int]] = defaultdict(list)
    for account_id, version in sorted(entries):
        versions[account_id].append(version)
    last: dict[str, tuple[int, str]] = {}
    checked = 0
    for event in events:
        for b in event.balances:
            checked += 1
            before, where = last.get(b.account_id, (0, "the start"))
            if b.version < before:
                failures(
                    "balance version went back",
                    f"{b.account_id}: version {before} at cursor {where}, then {b.version} at "
                    f"{event.cursor} ({name(event.type)})",
                )
            elif event.type in RAISES_VERSION and b.version == before:
                failures(
                    "money-moving event without a newer version",
                    f"{b.account_id}: version {b.version} at cursor {where} and again at "
                    f"{event.cursor} ({name(event.type)})",
                )
            if b.version >= before:
                last[b.account_id] = (b.version, event.cursor)
            told = (
                b.posted_debits_minor, b.posted_credits_minor, b.pending_debits_minor,
                b.pending_credits_minor,
            )  # fmt: skip
            version = b.version
            if event.type == RELEASED:  # no entry of its own: the last one before it
                known = versions.get(b.account_id, [])
                index = bisect.bisect_right(known, b.version)
                version = known[index - 1] if index else -1
            if entries.get((b.account_id, version)) != told:
                failures(
                    "balances differ from the ledger's at that version",
                    f"{b.account_id} v{b.version} at cursor {event.cursor} "
                    f"({name(event.type)}): told {told}, ledger (v{version}) "
                    f"{entries.get((b.account_id, version))}",
                )
    return {"balances": checked, "accounts": len(last)}
