"""The chaos run's audit of funds accessibility: every scheduled part of a credit against
the transfers, the accounts, the clients' early releases and the FUNDS_RELEASED events,
once the run has settled (harness.py calls it with the rest of the audit)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg

from moneymovement.v1 import event_pb2 as ev
from moneymovement.v1 import funds_pb2

# After settling: a part this long past its time must have been released by the sweeper
# (the chaos servers sweep every 0.5 s).
SWEEP_GRACE_S = 3.0


async def release_effects(connection: asyncpg.Connection, record: dict[str, Any]) -> int:
    """How many times an early release took effect: the parts it ended (they name its
    request) and its fee transfer, if any. 1 only when exactly the amount asked for was
    released from its account and the fee (if asked) was charged once; -1 when anything
    else was done under its request id."""
    request_id = record["request_id"]
    ended = await connection.fetch(
        "SELECT account_id, end_kind, ended_amount_minor FROM scheduled_funds "
        "WHERE end_request_id = $1",
        request_id,
    )
    fee_rows = await connection.fetch(
        "SELECT debit_account_id, credit_account_id, amount_minor, state FROM transfers "
        "WHERE request_id = $1",
        request_id,
    )
    if not ended and not fee_rows:
        return 0
    released = sum(r["ended_amount_minor"] for r in ended)
    if (
        released != record["amount"]
        or any(r["account_id"] != record["account"] for r in ended)
        or any(r["end_kind"] != "RELEASED_EARLY" for r in ended)
    ):
        return -1
    wanted_fee = (
        [(record["account"], record["fee_account"], record["fee"], "POSTED")]
        if record.get("fee")
        else []
    )
    fee = [tuple(r) for r in fee_rows]
    return 1 if fee == wanted_fee else -1


async def funds_checks(
    connection: asyncpg.Connection,
    tenant_id: str,
    records: list[dict[str, Any]],
    events: list[ev.Event],
    fail: Callable[[str], None],
) -> list[str]:
    """The scheduled parts against the transfers, the accounts, the clients' releases and
    the FUNDS_RELEASED events, once the run has settled; returns the summary lines."""
    rows = await connection.fetch(
        "SELECT funds_id, account_id, transfer_id, kind, amount_minor, available_at, "
        "remainder_of_id, remainder_id, created_at, ended_at, end_kind, ended_amount_minor, "
        "end_request_id, coalesce(ended_at, now()) - available_at AS late, "
        "available_at < now() - make_interval(secs => $2) AS overdue "
        "FROM scheduled_funds WHERE tenant_id = $1",
        tenant_id,
        SWEEP_GRACE_S,
    )
    transfers = {
        r["transfer_id"]: r
        for r in await connection.fetch(
            "SELECT transfer_id, state, posted_amount_minor, reversed_amount_minor, "
            "availability_delay, CASE WHEN expires_at IS NULL THEN ARRAY[created_at] "
            # A hold posts at each capture (its steps); one ended before it kept its steps
            # at its finalisation.
            "WHEN hold_steps IS NULL THEN ARRAY[finalized_at] "
            "ELSE ARRAY(SELECT (s ->> 'at')::timestamptz FROM jsonb_array_elements(hold_steps) "
            "AS s WHERE s ->> 'kind' IN ('CAPTURED', 'POSTED')) END AS posted_at "
            "FROM transfers WHERE tenant_id = $1",
            tenant_id,
        )
    }
    accounts = await connection.fetch(
        "SELECT account_id, pending_availability_minor, reserved_minor FROM accounts "
        "WHERE tenant_id = $1",
        tenant_id,
    )
    by_id = {r["funds_id"]: r for r in rows}
    problems: Counter[str] = Counter()

    def problem(kind: str, detail: str) -> None:
        problems[kind] += 1
        if problems[kind] <= 5:
            fail(f"funds: {kind}: {detail}")

    ends: Counter[str] = Counter()
    releases = {r["request_id"]: r for r in records if r["op"] == "release"}
    max_late = 0.0
    for row in rows:
        funds_id = row["funds_id"]
        if row["kind"] != "AVAILABILITY":
            problem("a part that is not AVAILABILITY (no policy here reserves)", funds_id)
        if row["end_kind"] is None:
            if row["overdue"]:
                problem(
                    "a part past its time still pending after the run settled",
                    f"{funds_id} due {row['available_at']} ({row['amount_minor']})",
                )
            continue
        ends[row["end_kind"]] += row["ended_amount_minor"]
        if row["ended_at"] < row["created_at"]:
            problem(
                "a part ended before it was created",
                f"{funds_id} ({row['end_kind']} by {row['end_request_id']!r}) created "
                f"{row['created_at']}, ended {row['ended_at']}",
            )
        if row["end_kind"] == "RELEASED":
            late = row["late"].total_seconds()
            max_late = max(max_late, late)
            if late < 0:
                problem("a part released before its time", f"{funds_id}: {late:.3f}s early")
        if row["end_kind"] == "RELEASED_EARLY":
            release = releases.get(row["end_request_id"])
            if release is None or release["outcome"] not in ("ack", "unknown"):
                problem(
                    "a part released early by no accepted release",
                    f"{funds_id} by {row['end_request_id']!r}: {release}",
                )
        remainder = by_id.get(row["remainder_id"]) if row["remainder_id"] else None
        rest = row["amount_minor"] - row["ended_amount_minor"]
        if (rest > 0) != (remainder is not None) or (
            remainder is not None
            and (
                remainder["remainder_of_id"], remainder["amount_minor"],
                remainder["transfer_id"], remainder["account_id"], remainder["kind"],
                remainder["available_at"],
            ) != (
                funds_id, rest, row["transfer_id"], row["account_id"], row["kind"],
                row["available_at"],
            )
        ):  # fmt: skip
            problem(
                "a part ended in part without its exact remainder",
                f"{funds_id} ended {row['ended_amount_minor']} of {row['amount_minor']}, "
                f"remainder {dict(remainder) if remainder else None}",
            )
    # Per transfer: what its credit scheduled = released + released early + reversed +
    # still pending; a delayed credit scheduled all it posted, due its delay after.
    per_transfer: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        per_transfer.setdefault(row["transfer_id"], []).append(row)
    scheduled_total = 0
    for transfer_id, parts in per_transfer.items():
        roots = [p for p in parts if p["remainder_of_id"] is None]
        scheduled = sum(p["amount_minor"] for p in roots)
        scheduled_total += scheduled
        ended = Counter[str]()
        for p in parts:
            if p["end_kind"] is not None:
                ended[p["end_kind"]] += p["ended_amount_minor"]
        still = sum(p["amount_minor"] for p in parts if p["end_kind"] is None)
        if sum(ended.values()) + still != scheduled:
            problem(
                "released + released early + reversed + pending is not what was scheduled",
                f"{transfer_id}: {dict(ended)} + {still} pending, scheduled {scheduled}",
            )
        transfer = transfers.get(transfer_id)
        if transfer is None or transfer["availability_delay"] is None:
            problem("parts of a transfer that asked for no delay", transfer_id)
            continue
        posted_at = sorted(transfer["posted_at"])  # each posting (a hold's captures)
        if scheduled != transfer["posted_amount_minor"] or len(roots) != len(posted_at):
            problem(
                "a delayed credit not scheduled whole, once per posting",
                f"{transfer_id}: {len(roots)} parts of {scheduled}, posted "
                f"{transfer['posted_amount_minor']} in {len(posted_at)}",
            )
        elif sorted(r["available_at"] for r in roots) != [
            at + transfer["availability_delay"] for at in posted_at
        ]:
            # (A part's created_at is the write's statement time, a few ms after the
            # posting: the posting's time is the transaction's.)
            problem(
                "a delayed credit due at another time than its delay after posting",
                f"{transfer_id}: posted {posted_at}, due "
                f"{sorted(r['available_at'] for r in roots)}, delay "
                f"{transfer['availability_delay']}",
            )
        if ended["REVERSED"] > transfer["reversed_amount_minor"]:
            problem(
                "more taken back from a credit's parts than reversed",
                f"{transfer_id}: {ended['REVERSED']} of {transfer['reversed_amount_minor']}",
            )
    for transfer_id, transfer in transfers.items():
        if (
            transfer["availability_delay"] is not None
            and transfer["state"] == "POSTED"
            and transfer["posted_amount_minor"] > 0
            and transfer_id not in per_transfer
        ):
            problem("a delayed credit that scheduled nothing", transfer_id)
    # Per account: its total is its unended parts, and (all due now) zero.
    open_sum: Counter[str] = Counter()
    for row in rows:
        if row["end_kind"] is None:
            open_sum[row["account_id"]] += row["amount_minor"]
    for account in accounts:
        if account["pending_availability_minor"] != open_sum[account["account_id"]]:
            problem(
                "pending_availability_minor is not the sum of the unended parts",
                f"{account['account_id']}: {account['pending_availability_minor']}, parts "
                f"{open_sum[account['account_id']]}",
            )
        if account["pending_availability_minor"] or account["reserved_minor"]:
            problem(
                "pending availability left once every credit was due",
                f"{account['account_id']}: {account['pending_availability_minor']} pending, "
                f"{account['reserved_minor']} reserved",
            )
    # Every part released (by the sweeper or early) is told in one FUNDS_RELEASED event,
    # released as stored.
    told: Counter[str] = Counter()
    for event in events:
        if event.type != ev.EVENT_TYPE_FUNDS_RELEASED:
            continue
        for part in event.funds:
            told[part.id] += 1
            row = by_id.get(part.id)
            if row is None or (part.ended_amount_minor, part.state) != (
                row["ended_amount_minor"], _FUNDS_STATE.get(row["end_kind"] or "", 0),
            ):  # fmt: skip
                problem(
                    "a FUNDS_RELEASED part differs from its row",
                    f"{part.id} told {part.ended_amount_minor} state {part.state}, row "
                    f"{dict(row) if row else None}",
                )
    for row in rows:
        wanted = 1 if row["end_kind"] in ("RELEASED", "RELEASED_EARLY") else 0
        if told[row["funds_id"]] != wanted:
            problem(
                "a part not told exactly once as released",
                f"{row['funds_id']} ({row['end_kind']}) told {told[row['funds_id']]} times",
            )
    acked = [r for r in records if r["op"] == "release" and r["outcome"] == "ack"]
    delayed = Counter(r["outcome"] for r in records if r["op"] == "delayed")
    return [
        f"  funds: {delayed['ack']} delayed credits acknowledged (+ held ones captured), "
        f"{len(per_transfer)} credits scheduled {scheduled_total} in {len(rows)} parts: "
        f"released by the sweeper {ends['RELEASED']} (at most {max_late:.2f}s after its "
        f"time, none before), released early {ends['RELEASED_EARLY']} "
        f"({len(acked)} releases acknowledged, {sum(1 for r in acked if r.get('fee'))} with "
        f"a fee), reversed {ends['REVERSED']}, still pending "
        f"{scheduled_total - sum(ends.values())}"
        + (f": FAILED ({sum(problems.values())})" if problems else ""),
    ]


_FUNDS_STATE = {
    "RELEASED": funds_pb2.ScheduledFunds.STATE_RELEASED,
    "RELEASED_EARLY": funds_pb2.ScheduledFunds.STATE_RELEASED_EARLY,
    "REVERSED": funds_pb2.ScheduledFunds.STATE_REVERSED,
}
