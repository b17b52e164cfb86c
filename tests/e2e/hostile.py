"""Helpers shared by the hostile-input tests: every RPC from the descriptors, answers
decoded without raising, the checks every answer must pass, and a ledger fingerprint.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from moneymovement.v1 import (
    account_service_pb2,
    asset_service_pb2,
    balance_service_pb2,
    error_reason_pb2,
    event_service_pb2,
    funds_service_pb2,
    holder_service_pb2,
    money_movement_service_pb2,
    payout_service_pb2,
)
from tests.conftest import PROJECT_ROOT

Code = grpc.StatusCode
# The tenant services. AdminService takes the admin token, not a tenant's: its refusal of
# tenant tokens is tested on its own (test_admin_api.py, test_tenant_isolation.py).
SERVICE_FILES = (
    account_service_pb2,
    balance_service_pb2,
    money_movement_service_pb2,
    event_service_pb2,
    funds_service_pb2,
    payout_service_pb2,
    asset_service_pb2,
    holder_service_pb2,
)
# How long a stream (WatchEvents) is read for its first response before it counts as
# open and quiet: the answer is then OK without a response.
FIRST_RESPONSE_S = 0.5


@dataclass(frozen=True)
class Rpc:
    """One method of our services, callable on any channel."""

    service: str
    name: str
    path: str
    request_type: type[Message]
    response_type: type[Message]
    mutating: bool
    streaming: bool = False  # server streaming: the answer is its first response

    def callable(self, channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        """The method on `channel`, with the generated (de)serializers (unary ones)."""
        return channel.unary_unary(
            self.path,
            request_serializer=self.request_type.SerializeToString,
            response_deserializer=self.response_type.FromString,
        )


def all_rpcs() -> list[Rpc]:
    """Every RPC of AccountService, BalanceService, MoneyMovementService, EventService,
    FundsService, PayoutService, AssetService and HolderService, read from the generated
    descriptors so that a new RPC cannot be forgotten by the hostile tests."""
    rpcs = []
    for module in SERVICE_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                side_effects = method.GetOptions().idempotency_level
                rpcs.append(
                    Rpc(
                        service=service.name,
                        name=method.name,
                        path=f"/{service.full_name}/{method.name}",
                        request_type=message_factory.GetMessageClass(method.input_type),
                        response_type=message_factory.GetMessageClass(method.output_type),
                        mutating=side_effects != descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
                        streaming=method.server_streaming,
                    )
                )
    return rpcs


# --- answers --------------------------------------------------------------------------


@dataclass
class Answer:
    """What one call told the client, success or failure, decoded without raising."""

    code: Code
    message: str = ""
    response: Message | None = None
    has_status: bool = False
    domain: str = ""
    reason: str = ""
    info_metadata: dict[str, str] = field(default_factory=dict)
    violations: list[tuple[str, str, str]] = field(default_factory=list)
    trailer_keys: tuple[str, ...] = ()
    problem: str = ""  # the status details could not be decoded


async def ask(
    rpc: Rpc,
    channel: grpc.aio.Channel,
    request: Message | bytes,
    metadata: Sequence[tuple[str, str]],
    timeout_s: float = 30.0,
) -> Answer:
    """Sends one request (a message, or raw bytes sent as they are); returns the decoded
    answer whatever it is."""
    if rpc.streaming:
        return await _ask_stream(rpc, channel, request, metadata)
    if isinstance(request, bytes):
        sender: grpc.aio.UnaryUnaryMultiCallable[Any, Any] = channel.unary_unary(
            rpc.path, response_deserializer=rpc.response_type.FromString
        )
    else:
        sender = rpc.callable(channel)
    try:
        response = await sender(request, metadata=tuple(metadata), timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        return decode_error(error)
    return Answer(Code.OK, response=response)


async def _ask_stream(
    rpc: Rpc,
    channel: grpc.aio.Channel,
    request: Message | bytes,
    metadata: Sequence[tuple[str, str]],
) -> Answer:
    """A server-streaming call's answer: its error, its first response, or OK without a
    response when it stays open and quiet for FIRST_RESPONSE_S."""
    serializer = None if isinstance(request, bytes) else rpc.request_type.SerializeToString
    call = channel.unary_stream(
        rpc.path, request_serializer=serializer, response_deserializer=rpc.response_type.FromString
    )(request, metadata=tuple(metadata))
    try:
        first = await asyncio.wait_for(call.read(), FIRST_RESPONSE_S)
    except TimeoutError:
        return Answer(Code.OK)
    except grpc.aio.AioRpcError as error:
        return decode_error(error)
    finally:
        call.cancel()
    if first is grpc.aio.EOF:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            return decode_error(error)
        return Answer(Code.OK)
    return Answer(Code.OK, response=first)


def decode_error(error: grpc.aio.AioRpcError) -> Answer:
    """The code, message and google.rpc.Status details of a failed call."""
    trailers = error.trailing_metadata() or ()
    answer = Answer(
        error.code(),
        message=error.details() or "",
        trailer_keys=tuple(sorted({str(key) for key, _ in trailers})),
    )
    try:
        status = rpc_status.from_call(error)
    except ValueError as mismatch:  # the details disagree with the code or the message
        answer.problem = str(mismatch)
        return answer
    if status is None:
        return answer
    answer.has_status = True
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            answer.domain, answer.reason = info.domain, info.reason
            answer.info_metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            answer.violations = [(v.field, v.reason, v.description) for v in bad.field_violations]
    return answer


# --- what every answer must satisfy ------------------------------------------------------

# Never acceptable from our RPCs: a server fault, or a method the contract declares.
FORBIDDEN_CODES = {Code.INTERNAL, Code.UNKNOWN, Code.UNIMPLEMENTED, Code.DATA_LOSS}
# Fragments of stack traces, SQL, driver names and Python internals.
LEAK_FRAGMENTS = (
    "Traceback", 'File "', "SELECT", "INSERT", "UPDATE", "DELETE", "asyncpg", "psql",
    "psycopg", "postgres", "relation", "violates", "constraint", "SQLSTATE", "syntax error",
    "KeyError", "TypeError", "ValueError", "AttributeError", "IndexError", "NoneType",
    "Exception", "object at 0x", "<module>", ".py", "__",
)  # fmt: skip


def _documented_codes() -> dict[str, str]:
    """{reason: code name} from the table of docs/errors.md."""
    text = (PROJECT_ROOT / "docs" / "errors.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([A-Z_]+) \|", text, flags=re.MULTILINE)
    return dict(rows)


DOCUMENTED_REASONS = {
    name.removeprefix("ERROR_REASON_")
    for name in error_reason_pb2.ErrorReason.keys()  # noqa: SIM118 (an enum wrapper)
    if name != "ERROR_REASON_UNSPECIFIED"
}
REASON_CODES = _documented_codes()
# Codes that only our error table produces: each must carry ErrorInfo.
CODES_WITH_REASON = {
    Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION, Code.NOT_FOUND, Code.ALREADY_EXISTS,
    Code.UNAUTHENTICATED,
}  # fmt: skip


def answer_problems(answer: Answer, request_text: str) -> list[str]:
    """Everything wrong with one answer (empty when it is acceptable).

    `request_text` is the request as sent: a fragment the caller sent itself (a metadata
    key named SELECT, say) may be echoed in a field path without being a leak.
    """
    problems = []
    if answer.code in FORBIDDEN_CODES:
        problems.append(f"code {answer.code.name}")
    if answer.problem:
        problems.append(f"undecodable status details: {answer.problem}")
    texts = [answer.message, *answer.info_metadata.values()]
    texts += [f"{f} {r} {d}" for f, r, d in answer.violations]
    for fragment in LEAK_FRAGMENTS:
        if fragment in request_text:
            continue
        if any(fragment in text for text in texts):
            problems.append(f"leaks {fragment!r}: {texts}")
    if answer.code in CODES_WITH_REASON and not answer.reason:
        problems.append(f"{answer.code.name} without ErrorInfo")
    if answer.reason:
        if answer.domain != "moneymovement":
            problems.append(f"ErrorInfo domain {answer.domain!r}")
        if answer.reason not in DOCUMENTED_REASONS:
            problems.append(f"undocumented reason {answer.reason}")
        elif REASON_CODES.get(answer.reason) != answer.code.name:
            problems.append(f"{answer.reason} with code {answer.code.name}")
    if answer.code == Code.INVALID_ARGUMENT and not answer.violations:
        problems.append("INVALID_ARGUMENT without BadRequest field violations")
    return problems


# --- the ledger --------------------------------------------------------------------------

# What a refused request, a read or an exact replay must leave alone: every row of these
# tables (the ledger's; funds accessibility's: scheduled parts, balance monitors with
# their triggered state, funds policy changes; the rails': external accounts with their
# state, payouts with their state and holds, inbound transfers; tenant assets; holders), by count
# and digest, in key order. Request outcomes are left out on purpose: business
# rejections are recorded there. The payout worker moves payouts on its own (PENDING ->
# PROCESSING -> POSTED): a caller comparing fingerprints must keep it from doing so
# meanwhile.
_FINGERPRINTED = (
    ("accounts", "tenant_id, account_id"),
    ("transfers", "tenant_id, transfer_id"),
    ("entries", "tenant_id, account_id, account_version"),
    ("scheduled_funds", "tenant_id, funds_id"),
    ("balance_monitors", "tenant_id, monitor_id"),
    ("account_policy_changes", "tenant_id, account_id, version"),
    ("external_accounts", "tenant_id, external_account_id"),
    ("payouts", "tenant_id, payout_id"),
    ("inbound_transfers", "tenant_id, inbound_id"),
    ("assets", "tenant_id, code"),
    ("holders", "tenant_id, holder_id"),
)
_COUNT = "(SELECT count(*) FROM {0}) AS {0}"
_DIGEST = (
    "(SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY {1})), '') FROM {0} t) AS {0}_digest"
)
# Our own table names, not input.
_LEDGER_SQL = "SELECT " + ", ".join(
    f"{_COUNT.format(table)}, {_DIGEST.format(table, order)}" for table, order in _FINGERPRINTED
)


async def ledger_fingerprint(connection: asyncpg.Connection) -> dict[str, object]:
    """Counts and digests of every row of the fingerprinted tables (accounts with their
    totals, versions, state, policy and timestamps; transfers; entries; scheduled parts;
    monitors; policy changes; external accounts, payouts and inbound transfers)."""
    row = await connection.fetchrow(_LEDGER_SQL)
    assert row is not None
    return dict(row)


async def tenant_rows(connection: asyncpg.Connection, tenant_id: str) -> dict[str, list[str]]:
    """Every row one tenant owns, as text: what another tenant must never change."""
    rows: dict[str, list[str]] = {}
    for table, order in (*_FINGERPRINTED, ("request_outcomes", "tenant_id, request_id")):
        found = await connection.fetch(
            f"SELECT t::text AS row FROM {table} t WHERE tenant_id = $1 ORDER BY {order}",  # noqa: S608
            tenant_id,
        )
        rows[table] = [record["row"] for record in found]
    return rows


async def tenant_id_of(connection: asyncpg.Connection, account_id: str) -> str:
    """The tenant owning an account (tests know account ids, not tenant ids)."""
    tenant: str = await connection.fetchval(
        "SELECT tenant_id FROM accounts WHERE account_id = $1", account_id
    )
    return tenant


def write_report(name: str, text: str) -> Path:
    """Writes a report under .data/ (the lead quotes it) and returns its path."""
    path = PROJECT_ROOT / ".data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
