"""Generated requests, valid and hostile, to every RPC of the running server.

Every answer must be a documented one: never INTERNAL, UNKNOWN or UNIMPLEMENTED, no
stack trace, SQL or Python internals in a message, an ErrorInfo reason from
docs/errors.md with its documented code; an external account's full account number is
never echoed. A request that is refused, a read and an exact replay never change the
ledger (accounts, transfers, entries, scheduled funds, balance monitors, funds policy
changes, external accounts, payouts, inbound transfers, tenant assets, holders; request outcomes
are left out: business rejections are recorded there by design).

How it runs: the server lives on the test's event loop; hypothesis runs in a worker
thread (its @given does not drive coroutines) and hands each call to the loop with
run_coroutine_threadsafe. Calls are sequential, so a ledger fingerprint taken before and
after a call sees that call's effect alone. Two background workers would spoil that, and
are kept still: the sweeper (which expires holds and releases due funds) runs hourly, and
the payout worker never touches a STANDARD payout (MM_PAYOUT_STANDARD_DELAY_S is an hour:
they stay PENDING, cancelable). It does move an INSTANT payout at once (PENDING ->
PROCESSING -> POSTED or FAILED, over a fast simulated rail): after a request that
created one, the fuzzer waits until the worker is done with it (POSTED or FAILED, where it
stays: payouts only go to destinations the rail never returns and always answers), takes
the fingerprint again, and only then replays the request or sends the next one. Inbound
credits are seeded, booked and returned before the run.

Knobs: MM_FUZZ_EXAMPLES (default 420, about 12 per RPC: about 15 s here) and
MM_FUZZ_SEED (unset: the same derandomized run every time, for CI). A longer run:
    MM_FUZZ_EXAMPLES=20000 MM_FUZZ_SEED=$RANDOM .venv/bin/python -m pytest \
        tests/e2e/test_fuzz.py -q
The summary (requests sent, codes back per RPC) goes to the terminal and .data/fuzz-summary.txt.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import (
    descriptor,
    duration_pb2,
    message,
    message_factory,
    text_format,
    timestamp_pb2,
)
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from moneymovement.domain import ids
from moneymovement.rails.simulated import SimulatedBank
from moneymovement.v1 import (
    account_pb2,
    event_pb2,
    funds_pb2,
    holder_pb2,
    payout_pb2,
    transfer_pb2,
)
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import funds_service_pb2 as fpb
from moneymovement.v1 import holder_service_pb2 as hpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import payout_service_pb2 as ppb
from tests.e2e.conftest import Api, Client, start_api, stop_api
from tests.e2e.hostile import (
    Answer,
    Rpc,
    all_rpcs,
    answer_problems,
    ask,
    ledger_fingerprint,
    write_report,
)
from tests.ledger_checks import assert_ledger_consistent

EXAMPLES = int(os.environ.get("MM_FUZZ_EXAMPLES", "420"))
SEED = os.environ.get("MM_FUZZ_SEED")
pytestmark = [
    pytest.mark.timeout(max(120, EXAMPLES // 4)),
    # Hypothesis checks that a draw leaves the global `random` state alone; the server's
    # event loop keeps running while the worker thread draws, and OpenTelemetry makes
    # span ids with `random` (the health monitor's database ping, say). Not our draws.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

Strategy = st.SearchStrategy
FD = descriptor.FieldDescriptor
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # MM_MAX_MESSAGE_BYTES's default, which the server uses
INT32_MAX, INT32_MIN = 2**31 - 1, -(2**31)


@dataclass
class World:
    """What exists on the server, growing as generated requests succeed. Strategies read
    the lists at draw time, so later examples name what earlier ones created."""

    accounts: list[str] = field(default_factory=list)
    # A USD funding account and two USD wallets that no plausible request freezes or
    # closes, so that plausible transfers and holds keep succeeding.
    stable: list[str] = field(default_factory=list)
    funding: list[str] = field(default_factory=list)
    foreign_accounts: list[str] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    foreign_transfers: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=lambda: ["ext-1"])
    holders: list[str] = field(default_factory=lambda: ["holder-1"])
    # HolderService's holders (hld_ ids) of A's, and one of B's.
    holder_records: list[str] = field(default_factory=list)
    foreign_holders: list[str] = field(default_factory=list)
    # USD accounts whose funds policy allows early release; the first is seeded with
    # delayed credits and no plausible request freezes, closes or re-policies it.
    sellers: list[str] = field(default_factory=list)
    funds: list[str] = field(default_factory=list)  # every scheduled funds id seen
    # The first seller's SCHEDULED AVAILABILITY rows (as last seen): releasable by id.
    open_funds: list[str] = field(default_factory=list)
    foreign_funds: list[str] = field(default_factory=list)
    monitors: list[str] = field(default_factory=list)
    foreign_monitors: list[str] = field(default_factory=list)
    # External accounts that payouts may go to: those the rail answers for good at once
    # (not RESTLESS_LAST4). The first (USD) no plausible request disables.
    destinations: list[str] = field(default_factory=list)
    # Every other external account of A's, those RESTLESS_LAST4 included (named by gets,
    # lists and disables only).
    external_accounts: list[str] = field(default_factory=list)
    foreign_external_accounts: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    foreign_fingerprints: list[str] = field(default_factory=list)
    payouts: list[str] = field(default_factory=list)
    foreign_payouts: list[str] = field(default_factory=list)
    inbounds: list[str] = field(default_factory=list)
    foreign_inbounds: list[str] = field(default_factory=list)
    rail_references: list[str] = field(default_factory=list)  # of A's inbound credits
    foreign_rail_references: list[str] = field(default_factory=list)
    # Settlement lines as the ledger had them when last seen (a report that matches).
    report_lines: list[payout_pb2.SettlementLine] = field(default_factory=list)


# Destinations whose payouts the simulated rail does not settle for good at once
# (rails/simulated_model.py): 0004 is returned a while after it posts, 0006 stays
# PROCESSING (every submission refused). Payouts to them would move in the background.
RESTLESS_LAST4 = frozenset({"0004", "0006"})
STANDARD, INSTANT = payout_pb2.PAYOUT_METHOD_STANDARD, payout_pb2.PAYOUT_METHOD_INSTANT
# Where the payout worker leaves a payout to a destination that is not restless.
SETTLED = frozenset(
    {
        payout_pb2.PAYOUT_STATE_POSTED,
        payout_pb2.PAYOUT_STATE_FAILED,
        payout_pb2.PAYOUT_STATE_CANCELED,
        payout_pb2.PAYOUT_STATE_RETURNED,
    }
)

_serial = itertools.count()


def fresh_ids() -> Strategy[str]:
    """Request ids never sent before (hypothesis would repeat its favourite uuids)."""
    return st.just("fz").map(lambda prefix: f"{prefix}-{next(_serial)}")


def weighted(*choices: tuple[int, Strategy[Any]]) -> Strategy[Any]:
    """One of the strategies, chosen with the given weights (st.one_of flattens nested
    one_ofs, which would let a many-branched strategy crowd out the others)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def pick(pool: list[str]) -> Strategy[str]:
    """An element of a live list (empty string while it is empty)."""
    return st.integers(0, 2**32).map(lambda i: pool[i % len(pool)] if pool else "")


# --- values, hostile and plausible ------------------------------------------------------

GARBAGE_TEXT: Strategy[str] = st.one_of(
    st.text(max_size=40),  # any unicode, NUL and control characters included
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
    st.sampled_from(
        [
            "", " ", "\x00", "\x00" * 10, "acct_", "tr_", "acct_" + "a" * 26 + "\x00",
            "ACCT_" + "A" * 26, "acct_" + "1" * 26, "acct_" + "a" * 27, "tr_" + "z" * 25,
            "' OR '1'='1", "'; DROP TABLE accounts; --", "$1", "%s%s%n", "{}", "null",
            "\u202e\u200b", "\ud7ff\ue000", "\U0001d54f" * 64, "a" * 128, "a" * 129, "a" * 10_000,
            "x" * 300_000,
        ]
    ),
)  # fmt: skip
# Built by map, not st.just: hypothesis would otherwise repr megabytes in its reports.
LONG_TEXT = st.sampled_from([10_000, 300_000]).map(lambda n: "x" * n)
HUGE_TEXT = st.just(5_000_000).map(lambda n: "h" * n)  # beyond MM_MAX_MESSAGE_BYTES
REFERENCE = st.from_regex(r"[A-Za-z0-9._:\-]{1,20}", fullmatch=True)
INT64: Strategy[int] = st.one_of(
    st.sampled_from([0, 1, -1, 2, INT64_MAX, INT64_MIN, INT64_MAX - 1, 2**62, 2**53 + 1]),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-5, 1000),
)
INT32: Strategy[int] = st.one_of(
    st.sampled_from([0, 1, -1, 500, 501, INT32_MAX, INT32_MIN]), st.integers(INT32_MIN, INT32_MAX)
)
CURRENCIES = ["USD", "EUR", "JPY", "BHD"]
CURRENCY: Strategy[str] = st.one_of(
    st.sampled_from(CURRENCIES),
    st.sampled_from(["usd", "XXX", "US", "USDD", "", "ZZZ", "US\x00", "€"]),
    # Tenant asset codes (AssetService): registrable, or one character too many.
    st.sampled_from(["USDC", "POINTS", "XAU", "A1B2C3D4E5F6", "A1B2C3D4E5F6G"]),
    GARBAGE_TEXT,
)
NOW_S = int(time.time())
TIMESTAMP: Strategy[timestamp_pb2.Timestamp] = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.one_of(
        st.sampled_from([0, -1, NOW_S, NOW_S - 3600, NOW_S + 3600, -62135596801, 253402300800]),
        # Around the 90 days an availability may lie ahead.
        st.sampled_from([NOW_S + 90 * 86400 - 60, NOW_S + 90 * 86400 + 60, NOW_S + 86400]),
        st.integers(INT64_MIN, INT64_MAX),
    ),
    nanos=st.one_of(st.just(0), st.sampled_from([-1, 999_999_999, 10**9, INT32_MAX, INT32_MIN])),
)
DURATION: Strategy[duration_pb2.Duration] = st.builds(
    duration_pb2.Duration,
    seconds=st.one_of(
        st.sampled_from([0, 1, 60, 3600, 30 * 86400, 30 * 86400 + 1, -1, 10**15, INT64_MAX]),
        st.sampled_from([90 * 86400, 90 * 86400 + 1, 86400]),
        st.integers(INT64_MIN, INT64_MAX),
    ),
    nanos=st.sampled_from([0, 1, -1, 999_999_999, 10**9]),
)
METADATA_KEY = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.\-]{1,40}", fullmatch=True),
    st.text(max_size=45),
    st.sampled_from(["", "k" * 41, "k\x00", "SELECT", "__class__", "a b", "ключ"]),
)
METADATA_VALUE = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "v\x00"]),
    st.sampled_from([500, 501, 100_000]).map(lambda n: "v" * n),
)
METADATA: Strategy[dict[str, str]] = st.one_of(
    st.dictionaries(METADATA_KEY, METADATA_VALUE, max_size=6),
    st.integers(45, 400).map(lambda n: {f"k{i}": "v" * (i % 7 + 1) for i in range(n)}),
    st.just(1500).map(lambda n: {f"key{i}": "v" * 1000 for i in range(n)}),  # 1.5 MB
)


# A funds policy's time zone: the zone database's directories and names too long for a
# file name (the server looks zones up on its disk), names that are not zones (the
# database's other files, paths, case and whitespace variants, offsets), valid IANA names
# (odd offsets, DST, links, files of the database that are valid zones), generated names,
# garbage. The first kinds come first: hypothesis draws the first choices more often.
TIME_ZONE: Strategy[str] = weighted(
    (
        2,
        st.sampled_from(
            [
                "America", "Etc", "Europe", "Asia", "Pacific", "Antarctica", "US", "Brazil",
                "America/Argentina", "America/Indiana", "posix", "right", "a" * 256,
                "America/" + "b" * 300, "x/" * 200, "z" * 5000,
            ]
        ),
    ),
    (
        2,
        st.sampled_from(
            [
                "utc", "UTC ", " UTC", "Utc", "Europe/", "Europe/Paris\n", "Mars/Olympus_Mons",
                "GMT+5", "+05:00", "Z", "local", "localtime", "zone.tab", "zone1970.tab",
                "tzdata.zi", "iso3166.tab", "leapseconds", "leap-seconds.list", "+VERSION",
                "__init__.py", "__pycache__", ".", "..", "../etc/passwd", "/etc/localtime",
                "Europe/../UTC", "Europe//Paris", "Europe/Paris\x00", "\x00",
                "America\\New_York", "a" * 255,
            ]
        ),
    ),
    (
        3,
        st.sampled_from(
            [
                "", "UTC", "America/New_York", "Europe/London", "Asia/Kathmandu",
                "Pacific/Chatham", "Australia/Lord_Howe", "Pacific/Kiritimati", "Etc/GMT+12",
                "Etc/GMT-14", "America/St_Johns", "Factory", "posixrules", "right/UTC",
                "posix/Europe/Paris", "US/Eastern", "GMT0", "Zulu",
            ]
        ),
    ),
    (1, st.from_regex(r"[A-Za-z_+\-0-9]{1,20}(/[A-Za-z_+\-0-9]{1,20}){0,2}", fullmatch=True)),
    (1, GARBAGE_TEXT),
)  # fmt: skip
# The funds policy's small integers: their bounds (delay 0..90 days, reserve 0..10000
# bps for 1..365 days) and the int32 extremes.
POLICY_INT32: Strategy[int] = st.one_of(
    st.sampled_from([0, 1, 2, 5, 90, 91, 365, 366, 9999, 10_000, 10_001, -1]), INT32
)


# Every id prefix: a well-formed id of another kind.
WRONG_TYPES = [
    ids.ACCOUNT, ids.TRANSFER, ids.BATCH, ids.FUNDS, ids.MONITOR, ids.EXTERNAL_ACCOUNT,
    ids.PAYOUT, ids.INBOUND,
]  # fmt: skip


def resource_ids(own: list[str], foreign: list[str], prefix: str) -> Strategy[str]:
    """Own ids, another tenant's, made-up well-formed ones, the wrong type, garbage."""
    return weighted(
        (4, pick(own)),
        (1, pick(foreign)),
        (1, st.builds(ids.new_id, st.just(prefix))),
        (
            1,
            st.builds(
                ids.new_id,
                st.sampled_from(WRONG_TYPES),
            ),
        ),
        (2, GARBAGE_TEXT),
    )


def request_ids(world: World) -> Strategy[str]:
    """Mostly fresh; sometimes reused (replays and REQUEST_ID_REUSED); sometimes garbage."""
    return weighted((6, fresh_ids()), (2, pick(world.request_ids)), (2, GARBAGE_TEXT))


def page_tokens(world: World) -> Strategy[str]:
    """Real tokens (often of another listing), forged base64 JSON, garbage."""
    forged = st.sampled_from(
        ["eyJwIjogW10sICJzIjogIngifQ", "e30", "W10", "bnVsbA", "eyJwIjpbMSwyXX0", "====", "%%%"]
    )
    return st.one_of(st.just(""), pick(world.page_tokens), forged, GARBAGE_TEXT)


# An account number: 4 to 34 ASCII digits (the test destinations' last four included),
# or not quite.
ACCOUNT_NUMBER: Strategy[str] = st.one_of(
    st.tuples(
        st.from_regex(r"[0-9]{0,30}", fullmatch=True),
        st.sampled_from(["1234", "0002", "0003", "0004", "0005", "0006", "9999"]),
    ).map("".join),
    st.from_regex(r"[0-9]{1,40}", fullmatch=True),
    st.sampled_from(
        [
            "", "123", "0" * 34, "0" * 35, "1234-5678", "1234 5678", " 12345678", "12345678\n",
            "+12345678", "-12345678", "0x12345678", "1e10",
            # Digits, but not ASCII ones: fullwidth, Arabic-Indic.
            "\uff11\uff12\uff13\uff14\uff15\uff16", "\u0661\u0662\u0663\u0664\u0665\u0666",
        ]
    ),
)  # fmt: skip
# A settlement line's state: the rail's states, others, garbage.
LINE_STATE: Strategy[str] = st.one_of(
    st.sampled_from(
        [
            "POSTED", "PROCESSING", "FAILED", "RETURNED", "RECEIVED", "PENDING", "CANCELED",
            "", "posted", "s" * 32, "s" * 33,
        ]
    ),
    GARBAGE_TEXT,
)  # fmt: skip


def record_id(owner: str, world: World) -> Strategy[str]:
    """The `id` field of a PayoutService request, by the request it is in."""
    if owner in ("GetExternalAccountRequest", "DisableExternalAccountRequest"):
        return st.one_of(
            resource_ids(world.external_accounts, world.foreign_external_accounts,
                         ids.EXTERNAL_ACCOUNT),
            pick(world.destinations),
        )  # fmt: skip
    if owner in ("GetPayoutRequest", "CancelPayoutRequest"):
        return resource_ids(world.payouts, world.foreign_payouts, ids.PAYOUT)
    if owner == "GetInboundTransferRequest":
        return resource_ids(world.inbounds, world.foreign_inbounds, ids.INBOUND)
    raise LookupError(f"no strategy for the id of {owner!r}: add one to test_fuzz.py")


def string_field(name: str, world: World, owner: str = "") -> Strategy[str]:
    """The hostile strategy of a string field, by its name (and, for `id`, the name of
    the message it is in); a new field must be added."""
    accounts = resource_ids(world.accounts, world.foreign_accounts, ids.ACCOUNT)
    transfers = resource_ids(world.transfers, world.foreign_transfers, ids.TRANSFER)
    destinations = resource_ids(
        world.destinations, world.foreign_external_accounts, ids.EXTERNAL_ACCOUNT
    )
    if name == "id":
        return _sized(record_id(owner, world))
    by_name: dict[str, Strategy[str]] = {
        "request_id": request_ids(world),
        "account_id": accounts,
        "account_ids": accounts,
        "debit_account_id": st.one_of(pick(world.funding), accounts),
        "credit_account_id": accounts,
        "transfer_id": transfers,
        "fee_account_id": st.one_of(pick(world.stable[1:]), accounts),
        # A reserve: any account (mostly refused as one), or none.
        "negative_balance_reserve_account_id": st.one_of(st.just(""), accounts),
        "funds_ids": resource_ids(world.funds, world.foreign_funds, ids.FUNDS),
        "monitor_id": resource_ids(world.monitors, world.foreign_monitors, ids.MONITOR),
        "time_zone": TIME_ZONE,
        "batch_id": resource_ids(world.batches, [], ids.BATCH),
        "trace_id": st.one_of(pick(world.traces), st.just("0" * 32), GARBAGE_TEXT),
        "page_token": page_tokens(world),
        "currency_code": CURRENCY,
        "name": st.one_of(st.text(max_size=30), st.just("n" * 201), GARBAGE_TEXT),
        "description": st.one_of(st.text(max_size=30), st.just("d" * 501), GARBAGE_TEXT),
        # FreezeAccount's: at most 500 characters, like a description.
        "reason": st.one_of(
            st.text(max_size=30), st.sampled_from([500, 501]).map(lambda n: "r" * n), GARBAGE_TEXT
        ),
        "external_id": st.one_of(pick(world.external_ids), REFERENCE, GARBAGE_TEXT),
        "holder_id": st.one_of(
            pick(world.holders),
            resource_ids(world.holder_records, world.foreign_holders, ids.HOLDER),
            REFERENCE,
            GARBAGE_TEXT,
        ),
        # Event cursors: positions, past the end, beyond a bigint, signed, garbage.
        "after_cursor": st.one_of(
            st.sampled_from(["", "0", "1", "3", "9" * 19, "9" * 20, "-1", "+1", "1e3", "٣"]),
            GARBAGE_TEXT,
        ),
        # PayoutService's. Payouts go only to destinations; ListPayouts filters by any.
        "external_account_id": (
            st.one_of(destinations, pick(world.external_accounts))
            if owner == "ListPayoutsRequest"
            else destinations
        ),
        "fingerprint": st.one_of(
            pick(world.fingerprints),
            pick(world.foreign_fingerprints),
            st.sampled_from(["0" * 32, "f" * 32, "F" * 32, "0" * 64, "0" * 31]),
            GARBAGE_TEXT,
        ),
        "rail": st.one_of(
            st.sampled_from(["simulated", "simulated", "file", "SIMULATED", "simulated ", ""]),
            GARBAGE_TEXT,
        ),
        "routing_reference": st.one_of(
            st.sampled_from(["110000000", "021000021", " ", " 110000000 ", "r" * 64, "r" * 65]),
            REFERENCE,
            GARBAGE_TEXT,
        ),
        "account_number": ACCOUNT_NUMBER,
        "holder_name": st.one_of(
            st.text(max_size=30), st.sampled_from([200, 201]).map(lambda n: "h" * n), GARBAGE_TEXT
        ),
        # A settlement line's: a payout id or an inbound credit's rail reference.
        "reference": st.one_of(
            pick(world.payouts),
            pick(world.rail_references),
            pick(world.foreign_payouts),
            pick(world.foreign_rail_references),
            st.just(200).map(lambda n: "p" * n),
            REFERENCE,
            GARBAGE_TEXT,
        ),
        "state": LINE_STATE,
        # ListAccounts' and ListTransfers' filter on keys present: the seeds' keys or any.
        "metadata_keys": st.one_of(st.sampled_from(["tier", "fee", "seed"]), METADATA_KEY),
    }
    if name not in by_name:
        raise LookupError(f"no strategy for string field {name!r}: add one to test_fuzz.py")
    return _sized(by_name[name])


def _sized(base: Strategy[str]) -> Strategy[str]:
    """`base`, or now and then a text beyond any limit (or beyond the message size)."""
    return st.integers(0, 199).flatmap(
        lambda i: HUGE_TEXT if i == 0 else LONG_TEXT if i < 4 else base
    )


def field_value(fd: FD, world: World, depth: int) -> Strategy[Any]:
    """A hostile value for one field of a request message."""
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        if fd.name != "metadata":
            raise LookupError(f"no strategy for map field {fd.name!r}")
        return METADATA
    repeated = fd.is_repeated
    if fd.type == FD.TYPE_MESSAGE:
        assert fd.message_type is not None
        name = fd.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return TIMESTAMP
        if name == "google.protobuf.Duration":
            return DURATION
        if name == "moneymovement.v1.CreateTransfersRequest.Item" and repeated and depth == 0:
            item = message_of(fd.message_type, world, depth + 1)
            plausible_item = plausible_items(world, 1)
            return st.one_of(
                st.lists(st.one_of(item, plausible_item.map(lambda xs: xs[0])), max_size=4),
                st.sampled_from([1000, 1001, 3000]).flatmap(lambda n: plausible_items(world, n)),
                st.integers(1001, 5000).map(
                    lambda n: [mpb.CreateTransfersRequest.Item() for _ in range(n)]
                ),
            )
        if name == "moneymovement.v1.CreateTransfersRequest.Operation" and repeated:
            return st.lists(plausible_operation(world), max_size=4)
        if name == "moneymovement.v1.EventFilter" and depth == 0:
            return message_of(fd.message_type, world, depth + 1)
        if name == "moneymovement.v1.FundsPolicy" and depth == 0:
            # Often a valid policy but for its time zone, which only the server's zone
            # database judges.
            zoned = st.tuples(plausible_policy(), string_field("time_zone", world))
            return weighted(
                (2, zoned.map(lambda pair: _zoned(*pair))),
                (2, message_of(fd.message_type, world, depth + 1)),
                (1, plausible_policy()),
            )
        if name == "moneymovement.v1.SettlementLine" and repeated and depth == 0:
            line = st.one_of(message_of(fd.message_type, world, depth + 1), plausible_line(world))
            return st.one_of(
                st.lists(line, max_size=6),
                # At the limit of 10,000 lines, and one beyond.
                st.sampled_from([10_000, 10_001]).flatmap(
                    lambda n: plausible_line(world).map(lambda one: [one] * n)
                ),
            )
        if name in POLICY_PARTS and not repeated and depth == 1:
            return message_of(fd.message_type, world, depth + 1)
        if name == "moneymovement.v1.DebitLimit" and repeated and depth == 1:
            limit = st.one_of(message_of(fd.message_type, world, depth + 1), plausible_limit())
            return st.one_of(
                st.lists(limit, max_size=5),
                # Every window twice, or many limits: each is a violation to report.
                st.just([funds_pb2.DebitLimit(window=w, max_count=1) for w in WINDOWS * 2]),
                st.sampled_from([100, 5000]).map(
                    lambda n: [
                        funds_pb2.DebitLimit(window=WINDOWS[i % 3], max_count=-1) for i in range(n)
                    ]
                ),
            )
        raise LookupError(f"no strategy for message field {fd.full_name!r}")
    if fd.type == FD.TYPE_STRING:
        owner = fd.containing_type.name if fd.containing_type is not None else ""
        single = string_field(fd.name, world, owner)
        if not repeated:
            return single
        if fd.name == "funds_ids":  # 1 to 100 distinct ids of the account's rows
            return st.one_of(
                st.lists(single, max_size=6),
                st.lists(pick(world.open_funds), min_size=2, max_size=4),  # duplicates
                st.sampled_from([100, 101, 500]).map(
                    lambda n: [ids.new_id(ids.FUNDS) for _ in range(n)]
                ),
                st.just(100).map(lambda n: [*world.funds[: n - 1], ids.new_id(ids.FUNDS)]),
            )
        return st.one_of(
            st.lists(single, max_size=6),
            st.integers(95, 130).map(lambda n: [ids.new_id(ids.ACCOUNT) for _ in range(n)]),
            st.integers(1, 101).flatmap(lambda n: st.lists(pick(world.accounts), min_size=n)),
        )
    if repeated and fd.type == FD.TYPE_ENUM:  # event types: known, unknown, many
        assert fd.enum_type is not None
        known = [v.number for v in fd.enum_type.values]
        value = st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, INT32_MAX]))
        return st.one_of(st.lists(value, max_size=5), st.just(known * 50))
    if repeated:
        raise LookupError(f"no strategy for repeated field {fd.full_name!r}")
    if fd.type == FD.TYPE_BOOL:
        return st.booleans()
    if fd.type == FD.TYPE_INT64:
        return INT64
    if fd.type == FD.TYPE_INT32:
        policy = fd.containing_type is not None and fd.containing_type.full_name in POLICY_MESSAGES
        return POLICY_INT32 if policy else INT32
    if fd.type == FD.TYPE_ENUM:
        assert fd.enum_type is not None
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, INT32_MAX]), INT32)
    raise LookupError(f"no strategy for field {fd.full_name!r} of type {fd.type}")


WINDOWS = (funds_pb2.LIMIT_WINDOW_DAY, funds_pb2.LIMIT_WINDOW_WEEK, funds_pb2.LIMIT_WINDOW_30_DAYS)
POLICY_PARTS = {"moneymovement.v1.AvailabilityPolicy", "moneymovement.v1.ReservePolicy"}
POLICY_MESSAGES = POLICY_PARTS | {"moneymovement.v1.DebitLimit", "moneymovement.v1.FundsPolicy"}


def message_of(desc: descriptor.Descriptor, world: World, depth: int = 0) -> Strategy[Any]:
    """A message of type `desc` with any subset of its fields set to hostile values."""
    optional = {fd.name: field_value(fd, world, depth) for fd in desc.fields}
    kind = message_class(desc)
    return st.fixed_dictionaries({}, optional=optional).map(lambda kw: kind(**kw))


def message_class(desc: descriptor.Descriptor) -> type[message.Message]:
    """The generated class of a descriptor."""
    return message_factory.GetMessageClass(desc)


# --- plausible requests: mostly valid, so that the ledger moves and rules are hit -------


def plausible_items(world: World, count: int) -> Strategy[list[mpb.CreateTransfersRequest.Item]]:
    """`count` transfer items from funding to own accounts, small amounts, USD."""
    fields = st.fixed_dictionaries(
        {
            "debit_account_id": st.one_of(pick(world.stable[:1]), pick(world.funding)),
            "credit_account_id": st.one_of(
                pick(world.stable[1:]), pick(world.accounts), pick(world.sellers)
            ),
            "amount_minor": st.integers(1, 50),
            "currency_code": st.sampled_from(["USD", "USD", "USD", "EUR"]),
        }
    )
    item = st.tuples(fields, availability()).map(
        lambda pair: mpb.CreateTransfersRequest.Item(**pair[0], **pair[1])
    )
    if count > 10:  # the same item many times: cheap to draw, still a full batch
        return item.map(lambda one: [one] * count)
    return st.lists(item, min_size=count, max_size=count)


def plausible_operation(world: World) -> Strategy[mpb.CreateTransfersRequest.Operation]:
    """A batch operation: a new transfer, a capture or void of a known or garbage hold
    id, a reversal of a known or garbage transfer id, or none at all."""
    batch = mpb.CreateTransfersRequest
    hold = st.one_of(pick(world.transfers), string_field("transfer_id", world))
    return st.one_of(
        plausible_items(world, 1).map(lambda xs: batch.Operation(transfer=xs[0])),
        st.builds(
            lambda t, a, f: batch.Operation(
                capture_hold=batch.CaptureHold(transfer_id=t, amount_minor=a, final_capture=f)
            ),
            hold,
            st.integers(-1, 200),
            st.booleans(),
        ),
        hold.map(lambda t: batch.Operation(void_hold=batch.VoidHold(transfer_id=t))),
        st.builds(
            lambda t, a: batch.Operation(
                reverse_transfer=batch.ReverseTransfer(transfer_id=t, amount_minor=a)
            ),
            hold,
            st.integers(-1, 200),
        ),
        st.just(batch.Operation()),
    )


def plausible_line(world: World) -> Strategy[payout_pb2.SettlementLine]:
    """A settlement line: one the ledger would match, or one about a known reference
    with a plausible amount, currency and state."""
    kind = payout_pb2.SettlementLineKind
    known = st.integers(0, 2**32).map(
        lambda i: (
            _copy(world.report_lines[i % len(world.report_lines)])
            if world.report_lines
            else payout_pb2.SettlementLine()
        )
    )
    made = st.builds(
        payout_pb2.SettlementLine,
        kind=st.sampled_from([kind.SETTLEMENT_LINE_KIND_PAYOUT, kind.SETTLEMENT_LINE_KIND_INBOUND]),
        reference=st.one_of(pick(world.payouts), pick(world.rail_references), REFERENCE),
        amount_minor=st.integers(1, 500),
        currency_code=st.sampled_from(["USD", "USD", "EUR"]),
        state=st.sampled_from(["POSTED", "PROCESSING", "FAILED", "RETURNED", "RECEIVED"]),
    )
    return weighted((2, known), (1, made))


def _copy(line: payout_pb2.SettlementLine) -> payout_pb2.SettlementLine:
    copied = payout_pb2.SettlementLine()
    copied.CopyFrom(line)
    return copied


def plausible_limit() -> Strategy[funds_pb2.DebitLimit]:
    """A debit limit within its bounds: a window, a maximum amount and/or count."""
    return st.builds(
        funds_pb2.DebitLimit,
        window=st.sampled_from(WINDOWS),
        max_amount_minor=st.sampled_from([0, 50, 1_000, 100_000]),
        max_count=st.sampled_from([1, 3, 100]),
    )


def plausible_policy() -> Strategy[funds_pb2.FundsPolicy]:
    """A funds policy within its bounds (sometimes the empty one, which clears it)."""
    availability = st.builds(
        funds_pb2.AvailabilityPolicy,
        delay_days=st.integers(0, 3),
        calendar=st.sampled_from([0, 1, 2]),
        time_zone=st.sampled_from(["", "UTC", "America/New_York", "Asia/Kathmandu"]),
    )
    reserve = st.one_of(
        st.just(funds_pb2.ReservePolicy()),
        st.builds(
            funds_pb2.ReservePolicy,
            rolling_percent_bps=st.integers(1, 2_000),
            rolling_days=st.integers(1, 30),
            minimum_minor=st.sampled_from([0, 10, 1_000]),
        ),
    )
    policy = st.builds(
        funds_pb2.FundsPolicy,
        availability=availability,
        reserve=reserve,
        early_release_allowed=st.booleans(),
        debit_limits=st.lists(plausible_limit(), max_size=3, unique_by=lambda limit: limit.window),
        max_balance_minor=st.sampled_from([0, 0, 100, 10_000_000]),
    )
    return weighted((5, policy), (1, st.just(funds_pb2.FundsPolicy())))


def _zoned(policy: funds_pb2.FundsPolicy, zone: str) -> funds_pb2.FundsPolicy:
    """A copy of `policy` in time zone `zone` (st.just's message is shared)."""
    zoned = funds_pb2.FundsPolicy()
    zoned.CopyFrom(policy)
    zoned.availability.time_zone = zone
    return zoned


def availability() -> Strategy[dict[str, Any]]:
    """A transfer's availability, mostly none: a delay, or a time (past, near, 90 days)."""
    delay = st.builds(duration_pb2.Duration, seconds=st.sampled_from([1, 60, 3600, 86400 * 3]))
    at = st.sampled_from([-60, 60, 86400, 90 * 86400 - 60]).map(
        lambda ahead: timestamp_pb2.Timestamp(seconds=int(time.time()) + ahead)
    )
    return weighted(
        (3, st.just({})),
        (2, delay.map(lambda d: {"availability_delay": d})),
        (1, at.map(lambda t: {"available_time": t})),
    )


def plausible(world: World) -> dict[str, Callable[[], Strategy[dict[str, Any]]]]:
    """Per RPC: keyword arguments of a request that is usually valid. Every RPC must
    have one (checked by the test), so a new RPC is not left to garbage alone."""
    fresh = fresh_ids()
    own = st.one_of(pick(world.accounts), pick(world.funding))
    version = st.integers(0, 4)
    size = st.integers(0, 5)
    token = st.one_of(st.just(""), pick(world.page_tokens))
    hold = duration_pb2.Duration(seconds=3600)
    cursor = st.sampled_from(["", "", "0", "1", "5", "99999"])
    seller = weighted((3, pick(world.sellers[:1])), (1, pick(world.sellers)))
    monitored = st.one_of(seller, own)
    events_filter = st.fixed_dictionaries(
        {},
        optional={
            "types": st.lists(st.integers(1, max(event_pb2.EventType.values())), max_size=3),
            "account_id": own,
            "holder_id": pick(world.holders),
        },
    ).map(lambda kw: epb.EventFilter(**dict[str, Any](kw)))

    def fd(**kw: Strategy[Any]) -> Callable[[], Strategy[dict[str, Any]]]:
        return lambda: st.fixed_dictionaries(kw)

    def fdo(
        required: dict[str, Strategy[Any]], **optional: Strategy[Any]
    ) -> Callable[[], Strategy[dict[str, Any]]]:
        return lambda: st.fixed_dictionaries(required, optional=optional)

    # ReleaseFunds: the first seller's rows by id (1 to 3, as last seen SCHEDULED), or an
    # amount; sometimes with a fee to a USD wallet (or the seller itself: MUST_DIFFER).
    release_what = st.one_of(
        st.lists(pick(world.open_funds), min_size=1, max_size=3, unique=True).map(
            lambda funds: {"funds_ids": funds}
        ),
        st.integers(1, 300).map(lambda amount: {"amount_minor": amount}),
    )
    fee = weighted(
        (3, st.just({})),
        (
            2,
            st.fixed_dictionaries(
                {
                    "fee_minor": st.integers(1, 20),
                    "fee_account_id": st.one_of(pick(world.stable[1:]), own, seller),
                },
                optional={
                    "description": st.sampled_from(["", "early payout"]),
                    "metadata": st.sampled_from([{}, {"fee": "early"}]),
                },
            ),
        ),
    )
    release = st.tuples(
        st.fixed_dictionaries({"request_id": fresh, "account_id": seller}), release_what, fee
    ).map(lambda parts: parts[0] | parts[1] | parts[2])
    # Payouts: mostly STANDARD (they stay PENDING), from the stable wallets or any own
    # account, mostly to the stable destination, mostly in USD; sometimes with a fee.
    source = st.one_of(pick(world.stable[1:]), own)
    destination = weighted((3, pick(world.destinations[:1])), (2, pick(world.destinations)))
    payout = st.tuples(
        st.fixed_dictionaries(
            {
                "request_id": fresh,
                "account_id": source,
                "external_account_id": destination,
                "amount_minor": st.integers(1, 500),
                # JPY: no destination, source or settlement account has it.
                "currency_code": st.sampled_from(["USD", "USD", "USD", "EUR", "JPY"]),
                "method": weighted((3, st.just(STANDARD)), (1, st.just(INSTANT))),
            },
            optional={
                "description": st.sampled_from(["", "weekly payout"]),
                "metadata": st.sampled_from([{}, {"batch": "w1"}]),
            },
        ),
        fee,
    ).map(lambda parts: parts[0] | parts[1])

    return {
        "CreateAccount": fdo(
            {
                "request_id": fresh,
                "currency_code": st.sampled_from(CURRENCIES),
                "normal_balance": st.sampled_from([1, 2]),
                "overdraft_mode": st.sampled_from([0, 1, 2, 3]),
                "external_id": st.one_of(st.just(""), fresh, pick(world.external_ids)),
                "holder_id": st.one_of(st.just(""), pick(world.holders)),
                "metadata": st.sampled_from([{}, {"tier": "gold"}]),
            },
            funds_policy=plausible_policy(),
        ),
        "GetAccount": fd(account_id=own),
        "ListAccounts": fd(
            page_size=size,
            page_token=token,
            currency_code=st.sampled_from(["", "USD"]),
            metadata_keys=st.sampled_from([[], ["tier"]]),
        ),
        "UpdateAccount": fdo(
            {
                "request_id": fresh,
                "account_id": own,
                "metadata": st.sampled_from([{}, {"tier": "x"}]),
                "overdraft_mode": st.sampled_from([0, 1, 2]),
                "expected_version": version,
            },
            funds_policy=plausible_policy(),
        ),
        "FreezeAccount": fdo(
            {"request_id": fresh, "account_id": own, "expected_version": version},
            scope=st.sampled_from([0, 1, 2, 2]),
            reason=st.sampled_from(["", "chargeback review", "kyc"]),
        ),
        "UnfreezeAccount": fd(request_id=fresh, account_id=own, expected_version=version),
        "CloseAccount": fd(request_id=fresh, account_id=own, expected_version=version),
        "GetBalance": fd(account_id=st.one_of(own, seller)),
        "BatchGetBalances": fd(
            account_ids=st.lists(st.one_of(own, seller), min_size=1, max_size=5)
        ),
        "ListEntries": fd(account_id=st.one_of(own, seller), page_size=size, page_token=token),
        "CreateTransfer": lambda: st.tuples(
            st.fixed_dictionaries(
                {
                    "request_id": fresh,
                    "debit_account_id": st.one_of(pick(world.stable[:1]), own),
                    "credit_account_id": st.one_of(pick(world.stable[1:]), own, seller),
                    "amount_minor": st.integers(1, 500),
                    "currency_code": st.sampled_from(["USD", "USD", "EUR"]),
                },
                optional={"pending": st.just(True)},
            ).map(lambda kw: kw | {"hold_timeout": hold} if kw.get("pending") else kw),
            availability(),
        ).map(lambda pair: pair[0] | pair[1]),
        "PostTransfer": fdo(
            {
                "request_id": fresh,
                "transfer_id": pick(world.transfers),
                "amount_minor": st.integers(0, 100),
            },
            final_capture=st.booleans(),
        ),
        "VoidTransfer": fd(request_id=fresh, transfer_id=pick(world.transfers)),
        "IncrementHold": fd(
            request_id=fresh, transfer_id=pick(world.transfers), amount_minor=st.integers(0, 100)
        ),
        "ExtendHold": fdo(
            {"request_id": fresh, "transfer_id": pick(world.transfers)},
            extend_by=st.builds(
                duration_pb2.Duration, seconds=st.sampled_from([-1, 0, 60, 3600, 86_400 * 40])
            ),
        ),
        "ReverseTransfer": fd(
            request_id=fresh, transfer_id=pick(world.transfers), amount_minor=st.integers(0, 100)
        ),
        "CreateTransfers": fd(
            request_id=fresh,
            transfers=st.integers(1, 4).flatmap(lambda n: plausible_items(world, n)),
        ),
        "GetTransfer": fd(transfer_id=pick(world.transfers)),
        "ListTransfers": fd(
            page_size=size,
            page_token=token,
            account_id=st.one_of(st.just(""), own, seller),
            batch_id=st.one_of(st.just(""), pick(world.batches)),
            metadata_keys=st.sampled_from([[], ["fee"]]),
        ),
        "ListEvents": fd(
            after_cursor=cursor,
            start=st.sampled_from([0, 1, 2]),
            filter=events_filter,
            page_size=size,
        ),
        "WatchEvents": fd(
            after_cursor=cursor, start=st.sampled_from([0, 1, 2]), filter=events_filter
        ),
        "ReleaseFunds": lambda: release,
        "ListScheduledFunds": fd(
            account_id=monitored,
            include_ended=st.booleans(),
            page_size=size,
            page_token=token,
        ),
        "CreateBalanceMonitor": fdo(
            {
                "request_id": fresh,
                "account_id": monitored,
                "field": st.integers(1, 6),
                "operator": st.integers(1, 4),
                "threshold_minor": st.sampled_from([-100, 0, 1, 100, 1_000, 100_000, 10**9]),
            },
            description=st.sampled_from(["", "low balance", "payout ready"]),
        ),
        "ListBalanceMonitors": fd(account_id=monitored),
        "DeleteBalanceMonitor": fd(request_id=fresh, monitor_id=pick(world.monitors)),
        "ListPolicyChanges": fd(account_id=monitored, page_size=size, page_token=token),
        "CreateExternalAccount": fdo(
            {
                "request_id": fresh,
                "rail": st.just("simulated"),
                "currency_code": st.sampled_from(["USD", "USD", "EUR"]),
                "routing_reference": st.sampled_from(["110000000", "021000021"]),
                "account_number": st.tuples(
                    st.from_regex(r"[0-9]{0,12}", fullmatch=True),
                    st.sampled_from(["1234", "5678", "0002", "0003", "0004", "0005", "0006"]),
                ).map("".join),
            },
            holder_name=st.sampled_from(["", "Ada Seller"]),
            metadata=st.sampled_from([{}, {"kind": "checking"}]),
        ),
        "GetExternalAccount": fd(
            id=st.one_of(pick(world.destinations), pick(world.external_accounts))
        ),
        "ListExternalAccounts": fd(
            fingerprint=st.one_of(st.just(""), pick(world.fingerprints)),
            page_size=size,
            page_token=token,
        ),
        "DisableExternalAccount": fd(request_id=fresh, id=pick(world.external_accounts)),
        "CreatePayout": lambda: payout,
        "GetPayout": fd(id=pick(world.payouts)),
        "ListPayouts": fd(
            account_id=st.one_of(st.just(""), source),
            state=st.integers(0, 6),
            external_account_id=st.one_of(st.just(""), destination),
            page_size=size,
            page_token=token,
        ),
        "CancelPayout": fd(request_id=fresh, id=pick(world.payouts)),
        "GetInboundTransfer": fd(id=pick(world.inbounds)),
        "ListInboundTransfers": fd(
            account_id=st.one_of(st.just(""), source), page_size=size, page_token=token
        ),
        "Reconcile": fd(
            rail=st.just("simulated"),
            lines=st.one_of(st.just([]), st.lists(plausible_line(world), min_size=1, max_size=5)),
        ),
        # AssetService's: codes registered again (alike, or with another exponent), an
        # ISO code, exponents at and past their bounds.
        "RegisterAsset": fd(
            request_id=fresh,
            currency_code=st.sampled_from(["USDC", "POINTS", "XAU", "GOLD", "EUR"]),
            exponent=st.sampled_from([0, 2, 6, 18, 19]),
            name=st.sampled_from(["Coin", "Points"]),
        ),
        "ListCurrencies": fd(page_size=st.integers(0, 200), page_token=token),
        # HolderService's: external ids new or taken; restrictions, their lifting, and
        # closings (refused while the holder has open accounts).
        "CreateHolder": fd(
            request_id=fresh,
            external_id=st.one_of(fresh, pick(world.external_ids)),
            name=st.sampled_from(["", "Seller"]),
            metadata=st.sampled_from([{}, {"tier": "gold"}]),
        ),
        "GetHolder": fd(holder_id=pick(world.holder_records)),
        "ListHolders": fd(
            page_size=size,
            page_token=token,
            state=st.integers(0, 3),
            metadata=st.sampled_from([{}, {"tier": "gold"}]),
        ),
        "UpdateHolder": fd(
            request_id=fresh,
            holder_id=pick(world.holder_records),
            state=st.sampled_from([0, 1, 1, 2, 3]),
            metadata=st.sampled_from([{}, {"tier": "x"}]),
        ),
        "GetHolderBalances": fd(holder_id=pick(world.holder_records)),
    }


async def seed_holders(api: Api, fuzzer: Fuzzer) -> None:
    """A holder of A's with an account opened for it, and one of B's."""
    mine = hpb.CreateHolderRequest(request_id="seed-holder", external_id="seller-1")
    fuzzer.harvest(await api.a.holders.CreateHolder(mine, metadata=api.a.md))
    holder = fuzzer.world.holder_records[0]
    fuzzer.harvest(await api.a.open("seed-for-holder", holder_id=holder))
    theirs = hpb.CreateHolderRequest(request_id="b-holder", external_id="b-seller")
    created = await api.b.holders.CreateHolder(theirs, metadata=api.b.md)
    fuzzer.world.foreign_holders.append(created.holder.holder_id)


def request_strategy(rpc: Rpc, world: World) -> Strategy[message.Message | bytes]:
    """Plausible requests, hostile ones, plausible ones with one field made hostile, and
    raw bytes that are not (or not quite) a valid encoding."""
    kind = rpc.request_type
    hostile = message_of(kind.DESCRIPTOR, world)  # type: ignore[arg-type]
    valid = plausible(world)[rpc.name]().map(lambda kw: kind(**kw))
    # The bad field is any one of the request's, equally often: hypothesis keeps hostile
    # messages small, so a graft of their first field set would nearly always spoil the
    # first fields (request_id), and the checks behind a late one (CreateAccount's
    # funds_policy, say) would never see it alone.
    fields: list[FD] = list(kind.DESCRIPTOR.fields)  # type: ignore[arg-type]
    one_field = weighted(*((1, _one_field(kind, fd, world)) for fd in fields))
    one_bad_field = st.tuples(valid, one_field).map(lambda pair: _graft(*pair))
    encoded = st.one_of(valid, hostile).map(lambda m: m.SerializeToString())
    raw = st.one_of(
        st.binary(max_size=64),
        st.tuples(encoded, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]]),
        st.tuples(encoded, st.integers(0, 200), st.integers(0, 255)).map(_flip),
        st.sampled_from(
            [
                b"\x20" + b"\xff" * 10 + b"\x01",  # a varint longer than 64 bits
                b"\x0f",  # wire type 7 does not exist
                b"\x12\xff\xff\xff\xff\x0f",  # a length far beyond the message
                b"\x0a\x02\xc3\x28",  # a string field that is not UTF-8
                b"\xfa\xff\xff\xff\x7f\x00",  # an unknown, huge field number
            ]
        ),
    )
    return weighted((4, valid), (3, hostile), (3, one_bad_field), (1, raw))


def _one_field(kind: type[message.Message], fd: FD, world: World) -> Strategy[message.Message]:
    """A `kind` message with field `fd` alone set, to a hostile value."""
    return field_value(fd, world, 0).map(lambda value: kind(**{fd.name: value}))


def _graft(valid: message.Message, hostile: message.Message) -> message.Message:
    """`valid` with one field (the first one set in `hostile`) taken from `hostile`."""
    fields = hostile.ListFields()
    if fields:
        descriptor_, _ = fields[0]
        valid.ClearField(descriptor_.name)
        if descriptor_.is_repeated or descriptor_.type == FD.TYPE_MESSAGE:
            getattr(valid, descriptor_.name).MergeFrom(getattr(hostile, descriptor_.name))
        else:
            setattr(valid, descriptor_.name, getattr(hostile, descriptor_.name))
    return valid


def _flip(triple: tuple[bytes, int, int]) -> bytes:
    data, position, value = triple
    if not data:
        return bytes([value])
    position %= len(data)
    return data[:position] + bytes([value]) + data[position + 1 :]


def _elided(text: str) -> str:
    """`text` with each run of 40 or more of one character written as its count, so that
    a problem's request shows every field (a 10,000-character time zone, say)."""
    return re.sub(r"(.)\1{39,}", lambda run: f"<{run.group(1)!r} * {len(run.group(0))}>", text)


def _undecodable(rpc: Rpc, request: message.Message | bytes) -> bool:
    """Whether raw request bytes fail to parse as the RPC's request message."""
    if not isinstance(request, bytes):
        return False
    try:
        rpc.request_type.FromString(request)
    except message.DecodeError:
        return True
    return False


PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def call_metadata(token: str) -> Strategy[list[tuple[str, str]]]:
    """Mostly the tenant's token; sometimes none, a bad one, odd traceparents, big headers."""
    auth = weighted(
        (12, st.just([("authorization", f"Bearer {token}")])),
        (
            1,
            st.sampled_from(
                [
                    [],
                    [("authorization", "Bearer ")],
                    [("authorization", "Bearer mm_not-a-token")],
                    [("authorization", f"Basic {token}")],
                    [("authorization", f"bearer   {token}  ")],
                    [("authorization", "Bearer " + "x" * 8000)],
                ]
            ),
        ),
    )
    extra = weighted(
        (8, st.just([])),
        (1, PRINTABLE.map(lambda text: [("traceparent", text)])),
        (
            1,
            st.sampled_from(
                [
                    [("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01")],
                    [("traceparent", "00-" + "A" * 32 + "-" + "B" * 16 + "-01")],
                    [("traceparent", "ff-" + "1" * 32 + "-" + "1" * 16 + "-ff-extra")],
                    [("x-fuzz", "y" * 12_000)],
                    [(f"x-fuzz-{i}", "z" * 100) for i in range(100)],
                ]
            ),
        ),
    )
    return st.tuples(auth, extra).map(lambda pair: pair[0] + pair[1])


# --- the run ------------------------------------------------------------------------


@dataclass
class Fuzzer:
    """Sends each generated request, checks its answer and the ledger, and counts."""

    api: Api
    connection: asyncpg.Connection
    world: World
    seen: dict[str, set[str]] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)
    per_rpc: Counter[tuple[str, str]] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    problems: dict[tuple[str, str], str] = field(default_factory=dict)
    # INSTANT payouts seen PENDING or PROCESSING: the payout worker is moving them.
    moving: set[str] = field(default_factory=set)
    lines_seen: set[bytes] = field(default_factory=set)
    stopped: bool = False  # a payout never settled: what follows would not be checkable

    def remember(self, pool: str, value: str) -> None:
        """Adds a value to one of the world's pools, once."""
        known = self.seen.setdefault(pool, set())
        if value and value not in known:
            known.add(value)
            getattr(self.world, pool).append(value)

    def harvest(self, reply: message.Message) -> None:
        """Learns the ids, tokens and references a successful answer shows."""
        for fd, value in reply.ListFields():
            if fd.type == FD.TYPE_MESSAGE and fd.is_repeated:
                assert fd.message_type is not None
                if not fd.message_type.GetOptions().map_entry:
                    for item in value:
                        self.harvest(item)
            elif fd.type == FD.TYPE_MESSAGE:
                self.harvest(value)
            elif fd.name == "next_page_token":
                self.remember("page_tokens", value)
        if isinstance(reply, account_pb2.Account):
            unlimited = reply.overdraft_mode == account_pb2.OVERDRAFT_MODE_UNLIMITED
            self.remember("funding" if unlimited else "accounts", reply.id)
            self.remember("external_ids", reply.external_id)
            self.remember("holders", reply.holder_id)
            if reply.funds_policy.early_release_allowed and reply.currency_code == "USD":
                self.remember("sellers", reply.id)
        elif isinstance(reply, transfer_pb2.Transfer):
            self.remember("transfers", reply.id)
            self.remember("batches", reply.batch_id)
            self.remember("traces", reply.trace_id)
        elif isinstance(reply, funds_pb2.ScheduledFunds):
            self.remember("funds", reply.id)
            self.remember("funds", reply.remainder_id)
            releasable = (
                reply.state == funds_pb2.ScheduledFunds.STATE_SCHEDULED
                and reply.kind == funds_pb2.FUNDS_KIND_AVAILABILITY
                and reply.account_id in self.world.sellers[:1]
            )
            if releasable:
                self.remember("open_funds", reply.id)
            elif reply.id in self.world.open_funds:
                self.world.open_funds.remove(reply.id)
        elif isinstance(reply, funds_pb2.BalanceMonitor):
            self.remember("monitors", reply.id)
        elif isinstance(reply, holder_pb2.Holder):
            self.remember("holder_records", reply.holder_id)
            self.remember("holders", reply.holder_id)
            self.remember("external_ids", reply.external_id)
        elif isinstance(reply, payout_pb2.ExternalAccount):
            if reply.last4 not in RESTLESS_LAST4:
                self.remember("destinations", reply.id)
            if reply.id not in self.world.destinations[:1]:
                self.remember("external_accounts", reply.id)
            self.remember("fingerprints", reply.fingerprint)
        elif isinstance(reply, payout_pb2.Payout):
            self.remember("payouts", reply.id)
            self.remember("traces", reply.trace_id)
            # The worker moves an INSTANT payout to a destination at once. (Only the seeds
            # pay restless destinations, and wait for their payouts' final states: a
            # payout the rail refuses for good stays PROCESSING, and is never written.)
            if (
                reply.method == INSTANT
                and reply.state not in SETTLED
                and reply.external_account_id in self.world.destinations
            ):
                self.moving.add(reply.id)
            state = payout_pb2.PayoutState.Name(reply.state).removeprefix("PAYOUT_STATE_")
            self.remember_line(payout_pb2.SETTLEMENT_LINE_KIND_PAYOUT, reply, reply.id, state)
        elif isinstance(reply, payout_pb2.InboundTransfer):
            self.remember("inbounds", reply.id)
            self.remember("rail_references", reply.rail_reference)
            state = payout_pb2.InboundTransferState.Name(reply.state)
            state = state.removeprefix("INBOUND_TRANSFER_STATE_")
            kind = payout_pb2.SETTLEMENT_LINE_KIND_INBOUND
            self.remember_line(kind, reply, reply.rail_reference, state)

    def remember_line(
        self,
        kind: int,
        reply: payout_pb2.Payout | payout_pb2.InboundTransfer,
        reference: str,
        state: str,
    ) -> None:
        """A settlement line that matches what the ledger says of a payout or credit."""
        line = payout_pb2.SettlementLine(
            kind=kind,  # type: ignore[arg-type]
            reference=reference,
            amount_minor=reply.amount_minor,
            currency_code=reply.currency_code,
            state=state,
        )
        key = line.SerializeToString(deterministic=True)
        if key not in self.lines_seen:
            self.lines_seen.add(key)
            self.world.report_lines.append(line)

    async def settle_payouts(self, rpc: Rpc, request: message.Message | bytes) -> bool:
        """Waits until the payout worker is done with the INSTANT payouts seen moving (it
        leaves them POSTED or FAILED, and touches them no more); whether there were any.
        One that does not settle within 30 s is a problem, and its moves from then on
        could be blamed on the requests that follow: the run stops (the examples left
        send nothing)."""
        if not self.moving:
            return False
        md = self.api.a.md
        deadline = time.monotonic() + 30
        while self.moving:
            for payout_id in sorted(self.moving):
                got = await self.api.a.payouts.GetPayout(
                    ppb.GetPayoutRequest(id=payout_id), metadata=md
                )
                if got.payout.state in SETTLED:
                    self.moving.discard(payout_id)
            if not self.moving:
                break
            if time.monotonic() > deadline:
                stuck = ", ".join(sorted(self.moving))
                self.note(
                    rpc,
                    f"INSTANT payouts never settled: {stuck}",
                    request,
                    Answer(grpc.StatusCode.OK),
                )
                self.stopped = True
                self.moving.clear()
                break
            await asyncio.sleep(0.02)
        return True

    async def refresh_open_funds(self) -> None:
        """Lists the first seller's SCHEDULED rows again, outside any request's check:
        releases, reversals and remainders change them, and a plausible ReleaseFunds names
        those that are left. Fewer than three (generated reversals take back the seeded
        credits' rows): a new credit there, delayed three days, first."""
        seller, md = self.world.sellers[0], self.api.a.md
        listed = fpb.ListScheduledFundsRequest(account_id=seller, page_size=500)
        reply = await self.api.a.funds.ListScheduledFunds(listed, metadata=md)
        releasable = [f.id for f in reply.funds if f.kind == funds_pb2.FUNDS_KIND_AVAILABILITY]
        if len(releasable) < 3:
            credit = mpb.CreateTransferRequest(
                request_id=f"fz-refill-{next(_serial)}", debit_account_id=self.world.stable[0],
                credit_account_id=seller, amount_minor=10_000, currency_code="USD",
                availability_delay=duration_pb2.Duration(seconds=3 * 86400),
            )  # fmt: skip
            await self.api.a.movements.CreateTransfer(credit, metadata=md)
            reply = await self.api.a.funds.ListScheduledFunds(listed, metadata=md)
            kind = funds_pb2.FUNDS_KIND_AVAILABILITY
            releasable = [f.id for f in reply.funds if f.kind == kind]
        self.world.open_funds[:] = releasable
        self.seen.setdefault("open_funds", set()).update(releasable)
        for row in reply.funds:
            self.remember("funds", row.id)

    def note(
        self, rpc: Rpc, problem: str, request: message.Message | bytes, answer: Answer
    ) -> None:
        """Keeps the first example of each kind of problem."""
        key = (rpc.name, problem[:70])
        if key not in self.problems:
            if isinstance(request, bytes):
                shown = _elided(repr(request))
            else:
                shown = _elided(text_format.MessageToString(request, as_one_line=True))
            if len(shown) > 1500:  # its head and its tail, where the late fields are
                shown = f"{shown[:700]} ... {shown[-700:]}"
            self.problems[key] = (
                f"{rpc.path}: {problem}\n  request: {shown}\n"
                f"  answer: {answer.code.name} {answer.message[:300]!r} reason={answer.reason}"
            )

    async def send(
        self,
        rpc: Rpc,
        request: message.Message | bytes,
        metadata: list[tuple[str, str]],
        replay: bool,
    ) -> None:
        """One generated request (and perhaps its exact replay), checked."""
        if self.stopped:
            return
        kind = "raw" if isinstance(request, bytes) else "message"
        self.kinds[kind] += 1
        request_id = "" if isinstance(request, bytes) else getattr(request, "request_id", "")
        self.remember("request_ids", str(request_id))
        before = await ledger_fingerprint(self.connection)
        answer = await self._ask(rpc, request, metadata)
        after = await ledger_fingerprint(self.connection)
        request_text = request.decode("latin-1") if isinstance(request, bytes) else str(request)
        if _undecodable(rpc, request):
            # Bytes that are no valid encoding of the request are refused as bad input
            # (they once got UNKNOWN with Python's exception text from grpc's decoder).
            self.kinds["undecodable bytes"] += 1
            if answer.code != grpc.StatusCode.INVALID_ARGUMENT and answer.code not in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ):
                self.note(rpc, f"undecodable bytes answered {answer.code.name}", request, answer)
        for problem in answer_problems(answer, request_text):
            self.note(rpc, problem, request, answer)
        size = len(request) if isinstance(request, bytes) else request.ByteSize()
        headers = sum(len(key) + len(value) for key, value in metadata)
        small = size < MAX_MESSAGE_BYTES and headers < 8 * 1024
        if answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED and small:
            self.note(rpc, "RESOURCE_EXHAUSTED for a request within the limits", request, answer)
        if (answer.code != grpc.StatusCode.OK or not rpc.mutating) and after != before:
            self.note(rpc, f"{answer.code.name} answer changed the ledger", request, answer)
        if answer.code == grpc.StatusCode.OK and answer.response is not None:
            self.harvest(answer.response)
        if isinstance(request, ppb.CreateExternalAccountRequest):
            self.check_account_number(rpc, request, answer)
        if await self.settle_payouts(rpc, request):
            # What the worker did with the payouts this request created is not the replay's.
            after = await ledger_fingerprint(self.connection)
        if replay and rpc.mutating and not self.stopped:
            self.kinds["replay"] += 1
            again = await self._ask(rpc, request, metadata)
            final = await ledger_fingerprint(self.connection)
            if final != after:
                self.note(rpc, "an exact replay changed the ledger", request, again)
            if (again.code, again.reason) != (answer.code, answer.reason) or (
                again.response != answer.response
            ):
                self.note(
                    rpc,
                    f"replay answered {again.code.name} after {answer.code.name}",
                    request,
                    again,
                )

    def check_account_number(
        self, rpc: Rpc, request: ppb.CreateExternalAccountRequest, answer: Answer
    ) -> None:
        """The full account number is never returned, nor named in a refusal. (Numbers of
        at least 8 characters, not in the request's other fields: shorter ones turn up
        by chance; the fingerprint, hex, and the timestamps are not read.)"""
        number = request.account_number
        sent = [request.request_id, request.rail, request.currency_code]
        sent += [request.routing_reference, request.holder_name]
        sent += [*request.metadata.keys(), *request.metadata.values()]
        if len(number) < 8 or any(number in text for text in sent):
            return
        texts = [answer.message, *answer.info_metadata.values()]
        texts += [f"{f} {d}" for f, _, d in answer.violations]
        if isinstance(answer.response, ppb.CreateExternalAccountResponse):
            shown = answer.response.external_account
            texts += [shown.id, shown.rail, shown.currency_code, shown.routing_reference]
            texts += [shown.last4, shown.holder_name, *shown.metadata.values()]
        if any(number in text for text in texts):
            self.note(rpc, "the account number is echoed", request, answer)

    async def _ask(
        self, rpc: Rpc, request: message.Message | bytes, metadata: list[tuple[str, str]]
    ) -> Answer:
        answer = await ask(rpc, self.api.channel, request, metadata)
        self.codes[answer.code.name] += 1
        self.per_rpc[(rpc.name, answer.code.name)] += 1
        return answer

    def summary(self, examples: int, elapsed_s: float) -> str:
        """The table the lead quotes: requests sent and the codes that came back."""
        total = sum(self.codes.values())
        codes = [code for code, _ in self.codes.most_common()]
        lines = [
            f"moneymovement fuzz: {examples} examples, {total} requests "
            f"({self.kinds['raw']} raw-bytes, {self.kinds['replay']} exact replays; "
            f"{self.kinds['undecodable bytes']} of them undecodable), "
            f"seed {SEED or 'derandomized'}, {elapsed_s:.1f} s",
            "",
            f"{'code':<20}{'count':>8}",
            *(f"{code:<20}{self.codes[code]:>8}" for code in codes),
            "",
            f"{'rpc':<24}" + "".join(f"{code[:9]:>10}" for code in codes),
        ]
        for rpc in all_rpcs():
            row = "".join(f"{self.per_rpc[(rpc.name, code)]:>10}" for code in codes)
            lines.append(f"{rpc.name:<24}{row}")
        lines += ["", f"problems: {len(self.problems)}"]
        lines += list(self.problems.values())
        return "\n".join(lines) + "\n"


async def seed_world(api: Api, fuzzer: Fuzzer, bank: SimulatedBank) -> None:
    """A few of everything for tenant A, and some ids of tenant B's to be refused."""
    md = api.a.md
    accounts, moves = api.a.accounts, api.a.movements
    for currency in ("USD", "EUR"):
        fuzzer.harvest(
            await api.a.open(
                f"seed-funding-{currency}",
                currency_code=currency,
                normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
                overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
            )
        )
    wallets = []
    for name, currency in (("w1", "USD"), ("w2", "USD"), ("w3", "EUR"), ("frozen", "USD")):
        wallet = await api.a.open(f"seed-{name}", currency_code=currency, external_id=name)
        fuzzer.harvest(wallet)
        wallets.append(wallet.id)
    funding_usd, funding_eur = fuzzer.world.funding
    world = fuzzer.world
    world.stable += [funding_usd, wallets[0], wallets[1]]
    world.accounts[:] = [a for a in world.accounts if a not in world.stable]
    world.funding[:] = [a for a in world.funding if a not in world.stable]
    for index, (wallet_id, funding) in enumerate(
        ((wallets[0], funding_usd), (wallets[1], funding_usd), (wallets[2], funding_eur))
    ):
        currency = "EUR" if funding == funding_eur else "USD"
        fuzzer.harvest(await api.a.pay(f"seed-pay-{index}", funding, wallet_id, 100_000, currency))
    hold = mpb.CreateTransferRequest(
        request_id="seed-hold", debit_account_id=wallets[0], credit_account_id=wallets[1],
        amount_minor=500, currency_code="USD", pending=True,
        hold_timeout=duration_pb2.Duration(seconds=86_400),
    )  # fmt: skip
    fuzzer.harvest(await moves.CreateTransfer(hold, metadata=md))
    batch = mpb.CreateTransfersRequest(
        request_id="seed-batch",
        transfers=[
            mpb.CreateTransfersRequest.Item(
                debit_account_id=funding_usd, credit_account_id=wallets[0], amount_minor=7,
                currency_code="USD",
            ),
            mpb.CreateTransfersRequest.Item(
                debit_account_id=wallets[0], credit_account_id=wallets[1], amount_minor=3,
                currency_code="USD",
            ),
        ],
    )  # fmt: skip
    created = await moves.CreateTransfers(batch, metadata=md)
    fuzzer.harvest(created)
    reverse = mpb.ReverseTransferRequest(
        request_id="seed-reverse", transfer_id=created.transfers[0].id, amount_minor=2
    )
    fuzzer.harvest(await moves.ReverseTransfer(reverse, metadata=md))
    frozen = apb.FreezeAccountRequest(request_id="seed-freeze", account_id=wallets[3])
    fuzzer.harvest(await accounts.FreezeAccount(frozen, metadata=md))
    closed = await api.a.open("seed-closed")
    await accounts.CloseAccount(
        apb.CloseAccountRequest(request_id="seed-close", account_id=closed.id), metadata=md
    )
    fuzzer.remember("accounts", closed.id)
    await seed_payouts(api, fuzzer, bank, wallets, closed.id)
    fuzzer.harvest(await accounts.ListAccounts(apb.ListAccountsRequest(page_size=1), metadata=md))
    fuzzer.harvest(await moves.ListTransfers(mpb.ListTransfersRequest(page_size=1), metadata=md))
    entries = bpb.ListEntriesRequest(account_id=wallets[0], page_size=1)
    fuzzer.harvest(await api.a.balances.ListEntries(entries, metadata=md))
    await seed_funds(api, fuzzer, funding_usd, wallets)
    foreign, _ = await api.b.fund("b-seed", 1_000)
    fuzzer.world.foreign_accounts.append(foreign)
    paid = await api.b.pay("b-pay", foreign, _, 10)
    fuzzer.world.foreign_transfers.append(paid.transfer.id)
    await seed_foreign_funds(api, fuzzer, _)
    await seed_foreign_payouts(api, fuzzer, bank, foreign)
    await seed_holders(api, fuzzer)


SELLER_POLICY = funds_pb2.FundsPolicy(
    availability=funds_pb2.AvailabilityPolicy(
        delay_days=1, calendar=funds_pb2.CALENDAR_BUSINESS_DAYS, time_zone="America/New_York"
    ),
    reserve=funds_pb2.ReservePolicy(rolling_percent_bps=500, rolling_days=30, minimum_minor=100),
    early_release_allowed=True,
    debit_limits=[
        funds_pb2.DebitLimit(window=funds_pb2.LIMIT_WINDOW_WEEK, max_amount_minor=10_000_000)
    ],
    max_balance_minor=1_000_000_000,
)


async def seed_funds(api: Api, fuzzer: Fuzzer, funding_usd: str, wallets: list[str]) -> None:
    """Funds accessibility for tenant A: a stable seller (USD; credits available the next
    New York business day, a 5 % rolling reserve, early release allowed) with delayed
    credits, a hold, an early release with a fee, and monitors; an account with tight debit
    limits and a maximum balance; one frozen for debits only."""
    md, world = api.a.md, fuzzer.world
    seller = await api.a.open("seed-seller", funds_policy=SELLER_POLICY, external_id="seller")
    fuzzer.harvest(seller)
    world.accounts.remove(seller.id)  # like the stable ones: plausible requests keep it
    assert world.sellers == [seller.id]
    hour, days = duration_pb2.Duration(seconds=3600), duration_pb2.Duration(seconds=3 * 86400)
    past = timestamp_pb2.Timestamp(seconds=int(time.time()) - 60)
    credits = [
        {"availability_delay": days},  # its own delay
        {},  # the policy's: the next business day in New York
        {"available_time": past},  # at once; the reserve still holds 5 %
        {"availability_delay": hour, "pending": True, "hold_timeout": days},  # from capture
    ]
    for index, extra in enumerate(credits):
        credit = mpb.CreateTransferRequest(
            request_id=f"seed-seller-pay-{index}", debit_account_id=funding_usd,
            credit_account_id=seller.id, amount_minor=100_000, currency_code="USD",
            **extra,  # type: ignore[arg-type]
        )  # fmt: skip
        fuzzer.harvest(await api.a.movements.CreateTransfer(credit, metadata=md))
    early = fpb.ReleaseFundsRequest(
        request_id="seed-release", account_id=seller.id, amount_minor=10, fee_minor=1,
        fee_account_id=wallets[1], description="early payout",
    )  # fmt: skip
    fuzzer.harvest(await api.a.funds.ReleaseFunds(early, metadata=md))
    for ended in (False, True):
        listed = fpb.ListScheduledFundsRequest(
            account_id=seller.id, include_ended=ended, page_size=1 if ended else 100
        )
        fuzzer.harvest(await api.a.funds.ListScheduledFunds(listed, metadata=md))
    assert world.open_funds, "the seller has no scheduled funds to release"
    Monitor = funds_pb2.BalanceMonitor
    for index, (account, field_, operator, threshold) in enumerate(
        (
            (seller.id, Monitor.FIELD_AVAILABLE, Monitor.OPERATOR_BELOW, 1_000_000),
            (seller.id, Monitor.FIELD_PENDING_AVAILABILITY, Monitor.OPERATOR_AT_OR_ABOVE, 1),
            (wallets[0], Monitor.FIELD_PENDING_OUTBOUND, Monitor.OPERATOR_ABOVE, 0),
        )
    ):
        monitor = fpb.CreateBalanceMonitorRequest(
            request_id=f"seed-monitor-{index}", account_id=account, field=field_,
            operator=operator, threshold_minor=threshold, description="seed",
        )  # fmt: skip
        fuzzer.harvest(await api.a.funds.CreateBalanceMonitor(monitor, metadata=md))
    changed = apb.UpdateAccountRequest(
        request_id="seed-seller-policy", account_id=seller.id, funds_policy=SELLER_POLICY
    )
    changed.funds_policy.max_balance_minor = 2_000_000_000
    fuzzer.harvest(await api.a.accounts.UpdateAccount(changed, metadata=md))
    history = fpb.ListPolicyChangesRequest(account_id=seller.id, page_size=1)
    fuzzer.harvest(await api.a.funds.ListPolicyChanges(history, metadata=md))
    limited_policy = funds_pb2.FundsPolicy(
        debit_limits=[
            funds_pb2.DebitLimit(
                window=funds_pb2.LIMIT_WINDOW_DAY, max_amount_minor=300, max_count=2
            )
        ],
        max_balance_minor=5_000,
    )
    limited = await api.a.open("seed-limited", funds_policy=limited_policy)
    fuzzer.harvest(limited)
    fuzzer.harvest(await api.a.pay("seed-limited-pay", funding_usd, limited.id, 4_000))
    debits_frozen = await api.a.open("seed-debits-frozen")
    fuzzer.harvest(debits_frozen)
    fuzzer.harvest(await api.a.pay("seed-debits-frozen-pay", funding_usd, debits_frozen.id, 900))
    freeze = apb.FreezeAccountRequest(
        request_id="seed-freeze-debits", account_id=debits_frozen.id,
        scope=account_pb2.FREEZE_SCOPE_DEBITS, reason="chargeback review",
    )  # fmt: skip
    fuzzer.harvest(await api.a.accounts.FreezeAccount(freeze, metadata=md))


async def seed_foreign_funds(api: Api, fuzzer: Fuzzer, funding: str) -> None:
    """Tenant B's scheduled funds and monitor: ids that A's requests name, to be refused."""
    md = api.b.md
    seller = await api.b.open("b-seller", funds_policy=SELLER_POLICY)
    credit = mpb.CreateTransferRequest(
        request_id="b-seller-pay", debit_account_id=funding, credit_account_id=seller.id,
        amount_minor=1_000, currency_code="USD",
        availability_delay=duration_pb2.Duration(seconds=86_400),
    )  # fmt: skip
    await api.b.movements.CreateTransfer(credit, metadata=md)
    listed = fpb.ListScheduledFundsRequest(account_id=seller.id)
    for row in (await api.b.funds.ListScheduledFunds(listed, metadata=md)).funds:
        fuzzer.world.foreign_funds.append(row.id)
    monitor = fpb.CreateBalanceMonitorRequest(
        request_id="b-monitor", account_id=seller.id,
        field=funds_pb2.BalanceMonitor.FIELD_POSTED,
        operator=funds_pb2.BalanceMonitor.OPERATOR_ABOVE, threshold_minor=0,
    )  # fmt: skip
    created = await api.b.funds.CreateBalanceMonitor(monitor, metadata=md)
    fuzzer.world.foreign_monitors.append(created.monitor.id)


async def seed_payouts(
    api: Api, fuzzer: Fuzzer, bank: SimulatedBank, wallets: list[str], closed: str
) -> None:
    """Tenant A's destinations (the stable one first; one the rail fails, one whose first
    answer is lost, one in EUR, one disabled; and two restless ones) and a payout in each
    state: PENDING (STANDARD, one with a fee), CANCELED, POSTED, FAILED, RETURNED and
    PROCESSING (at a destination the rail always refuses); USD and EUR settlement accounts
    opened. Inbound credits: one RECEIVED, one RETURNED, one refused (to a closed account:
    known only to the rail's report)."""
    md, payouts = api.a.md, api.a.payouts
    destinations = {}
    for name, currency, number in (
        ("stable", "USD", "000123456789"), ("fails", "USD", "99990002"),
        ("lost", "USD", "44440005"), ("eur", "EUR", "12345678"), ("off", "USD", "77771234"),
        ("returns", "USD", "55550004"), ("stuck", "USD", "66660006"),
    ):  # fmt: skip
        register = ppb.CreateExternalAccountRequest(
            request_id=f"seed-xacct-{name}", rail="simulated", currency_code=currency,
            routing_reference="110000000", account_number=number, holder_name="Seed Seller",
            metadata={"seed": name},
        )  # fmt: skip
        created = await payouts.CreateExternalAccount(register, metadata=md)
        fuzzer.harvest(created)
        destinations[name] = created.external_account.id
    assert fuzzer.world.destinations[0] == destinations["stable"]
    disable = ppb.DisableExternalAccountRequest(request_id="seed-disable", id=destinations["off"])
    fuzzer.harvest(await payouts.DisableExternalAccount(disable, metadata=md))
    wanted = {
        # name: (source, destination, amount, currency, method, end state)
        "pending": (wallets[0], "stable", 100, "USD", STANDARD, payout_pb2.PAYOUT_STATE_PENDING),
        "canceled": (wallets[0], "stable", 70, "USD", STANDARD, payout_pb2.PAYOUT_STATE_CANCELED),
        "eur": (wallets[2], "eur", 100, "EUR", STANDARD, payout_pb2.PAYOUT_STATE_PENDING),
        "posted": (wallets[0], "stable", 200, "USD", INSTANT, payout_pb2.PAYOUT_STATE_POSTED),
        "failed": (wallets[0], "fails", 30, "USD", INSTANT, payout_pb2.PAYOUT_STATE_FAILED),
        "lost": (wallets[0], "lost", 40, "USD", INSTANT, payout_pb2.PAYOUT_STATE_POSTED),
        "returned": (wallets[0], "returns", 60, "USD", INSTANT, payout_pb2.PAYOUT_STATE_RETURNED),
        "stuck": (wallets[0], "stuck", 20, "USD", INSTANT, payout_pb2.PAYOUT_STATE_PROCESSING),
    }
    for name, (source, to, amount, currency, method, state) in wanted.items():
        create = ppb.CreatePayoutRequest(
            request_id=f"seed-payout-{name}", account_id=source,
            external_account_id=destinations[to], amount_minor=amount, currency_code=currency,
            method=method, description=f"seed {name}",
        )  # fmt: skip
        if name == "pending":
            create.fee_minor, create.fee_account_id = 5, wallets[1]
        payout = (await payouts.CreatePayout(create, metadata=md)).payout
        if name == "canceled":
            cancel = ppb.CancelPayoutRequest(request_id="seed-cancel", id=payout.id)
            await payouts.CancelPayout(cancel, metadata=md)
        fuzzer.harvest(await _payout_in(api.a, payout.id, state))
    assert not fuzzer.moving, fuzzer.moving  # each is where it stays now
    # Inbound credits, in the order the worker books them: the refused one is settled by
    # the time the return after it is.
    bank.send_credit(api.tenant_a, closed, 100, "USD", "seed-wire-refused", "to a closed account")
    bank.send_credit(api.tenant_a, wallets[1], 700, "USD", "seed-wire-1", "seed wire")
    bank.send_credit(api.tenant_a, wallets[1], 300, "USD", "seed-wire-2", "seed wire, returned")
    bank.return_credit("seed-wire-2", "R10")
    fuzzer.remember("rail_references", "seed-wire-refused")
    listing = ppb.ListInboundTransfersRequest(account_id=wallets[1])
    returned = payout_pb2.INBOUND_TRANSFER_STATE_RETURNED
    inbound = await _eventually(
        lambda: payouts.ListInboundTransfers(listing, metadata=md),
        lambda found: (
            sorted(i.state for i in found.inbound_transfers)
            == sorted([payout_pb2.INBOUND_TRANSFER_STATE_RECEIVED, returned])
        ),
    )
    fuzzer.harvest(inbound)
    fuzzer.harvest(await payouts.ListPayouts(ppb.ListPayoutsRequest(page_size=1), metadata=md))
    listed = ppb.ListExternalAccountsRequest(page_size=1)
    fuzzer.harvest(await payouts.ListExternalAccounts(listed, metadata=md))


async def seed_foreign_payouts(api: Api, fuzzer: Fuzzer, bank: SimulatedBank, account: str) -> None:
    """Tenant B's destination, PENDING payout and inbound credit: ids, a fingerprint and a
    rail reference that A's requests name, to be refused (or listed nowhere)."""
    md, payouts, world = api.b.md, api.b.payouts, fuzzer.world
    register = ppb.CreateExternalAccountRequest(
        request_id="b-xacct", rail="simulated", currency_code="USD",
        routing_reference="110000000", account_number="000123456789",  # A's stable one's
    )  # fmt: skip
    external = (await payouts.CreateExternalAccount(register, metadata=md)).external_account
    world.foreign_external_accounts.append(external.id)
    world.foreign_fingerprints.append(external.fingerprint)
    create = ppb.CreatePayoutRequest(
        request_id="b-payout", account_id=account, external_account_id=external.id,
        amount_minor=100, currency_code="USD", method=STANDARD,
    )  # fmt: skip
    world.foreign_payouts.append((await payouts.CreatePayout(create, metadata=md)).payout.id)
    bank.send_credit(api.tenant_b, account, 50, "USD", "b-wire-1", "b's wire")
    listing = ppb.ListInboundTransfersRequest(account_id=account)
    listed = await _eventually(
        lambda: payouts.ListInboundTransfers(listing, metadata=md),
        lambda found: len(found.inbound_transfers) == 1,
    )
    world.foreign_inbounds.append(listed.inbound_transfers[0].id)
    world.foreign_rail_references.append("b-wire-1")


async def _payout_in(client: Client, payout_id: str, state: int) -> ppb.GetPayoutResponse:
    """The payout once the worker has brought it to `state`."""
    request = ppb.GetPayoutRequest(id=payout_id)
    return await _eventually(
        lambda: client.payouts.GetPayout(request, metadata=client.md),
        lambda got: got.payout.state == state,
    )


async def _eventually(
    ask_: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 30
) -> Any:
    """`ask_()`'s answer once `done` says so (the payout worker works in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await ask_()
        if done(answer):
            return answer
        assert time.monotonic() < deadline, f"timed out waiting: {answer}"
        await asyncio.sleep(0.05)


async def test_generated_requests_get_documented_answers_and_refusals_move_nothing(
    dsn: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Holds are created with any timeout, 1 ns included; a sweeper releasing one while
    # another request is being checked would look like that request's effect. STANDARD
    # payouts wait an hour (the worker never moves them during the run); INSTANT ones
    # settle within a few rounds of a fast rail, which Fuzzer.settle_payouts waits for.
    rail = tmp_path / "rail"
    api = await start_api(
        dsn,
        MM_HOLD_SWEEP_S="3600",
        MM_RAIL_DIR=str(rail),
        MM_RAIL_LATENCY_S="0.05",
        MM_RAIL_RETURN_AFTER_S="0.1",
        MM_PAYOUT_POLL_S="0.05",
        MM_PAYOUT_STANDARD_DELAY_S="3600",
    )
    connection = await asyncpg.connect(dsn)
    fuzzer = Fuzzer(api, connection, World())
    try:
        await seed_world(api, fuzzer, SimulatedBank(rail))
        rpcs = all_rpcs()
        unplanned = {rpc.name for rpc in rpcs} - set(plausible(fuzzer.world))
        assert not unplanned, f"RPCs without a plausible-request strategy: {unplanned}"
        # Built now: a request field without a strategy fails here, not halfway through.
        requests = {rpc.name: request_strategy(rpc, fuzzer.world) for rpc in rpcs}
        headers = call_metadata(api.a.md[0][1].removeprefix("Bearer "))
        loop = asyncio.get_running_loop()

        def fuzz(rpc: Rpc) -> None:
            """One hypothesis run per RPC, so that each gets its share of the examples."""

            @settings(
                max_examples=max(1, EXAMPLES // len(rpcs)),
                deadline=None,
                derandomize=SEED is None,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking against a live server
                suppress_health_check=list(HealthCheck),
            )
            @given(data=st.data())
            def one_request(data: st.DataObject) -> None:
                if rpc.name == "ReleaseFunds":
                    refreshed = asyncio.run_coroutine_threadsafe(fuzzer.refresh_open_funds(), loop)
                    refreshed.result(timeout=60)
                request = data.draw(requests[rpc.name], label="request")
                metadata = data.draw(headers, label="metadata")
                replay = data.draw(st.integers(0, 9), label="replay") == 0
                sent = asyncio.run_coroutine_threadsafe(
                    fuzzer.send(rpc, request, metadata, replay), loop
                )
                sent.result(timeout=120)

            if SEED is not None:
                one_request = seed(int(SEED))(one_request)
            one_request()

        started = time.monotonic()
        for rpc in rpcs:
            await asyncio.to_thread(fuzz, rpc)
        elapsed = time.monotonic() - started
    finally:
        await connection.close()
        await stop_api(api)
    await assert_ledger_consistent(dsn)
    report = fuzzer.summary(EXAMPLES, elapsed)
    path = write_report("fuzz-summary.txt", report)
    with capsys.disabled():
        print(f"\n{report}(written to {path})")
    assert not fuzzer.problems, "\n".join(fuzzer.problems.values())
    untried = {rpc.name for rpc in all_rpcs()} - {name for name, _ in fuzzer.per_rpc}
    assert not untried, f"RPCs that got no request: {untried}"
