"""The Python client library against the real server: every RPC has its method, each is
called here, failures are typed by family, retries are safe, and the client imports
nothing of the server (it ships alone in the moneymovement-client distribution)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2
from grpc_status import _common as grpc_status_common

import moneymovement.v1
from moneymovement import client as client_module
from moneymovement.client import (
    Aborted,
    AccountInactive,
    AdminClient,
    AlreadyExists,
    CursorExpired,
    DeadlineExceeded,
    ExternalIdTaken,
    FailedPrecondition,
    InsufficientFunds,
    InvalidRequest,
    LimitExceeded,
    MessageTooLarge,
    MoneyMovementClient,
    MoneyMovementError,
    NotFound,
    PermissionDenied,
    Rejected,
    RequestIdReused,
    RetriesExhausted,
    Retryable,
    RetryPolicy,
    ServerError,
    Throttled,
    Unauthenticated,
    Unavailable,
    VersionMismatch,
    WrongTransferState,
    capture_operation,
    error_type,
    settlement_line,
    transfer_item,
    transfer_operation,
    void_operation,
    wait_until_serving,
)
from moneymovement.rails.simulated import SimulatedBank
from moneymovement.service.retention import Retention
from moneymovement.storage.ledger import LedgerStore
from moneymovement.transport import errors as server_errors
from moneymovement.v1 import (
    account_pb2,
    asset_pb2,
    error_reason_pb2,
    funds_pb2,
    holder_pb2,
    payout_pb2,
)
from moneymovement.v1.account_pb2 import Account
from moneymovement.v1.transfer_pb2 import Transfer, TransferEvent
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import Api, start_api, stop_api
from tests.ledger_checks import assert_ledger_consistent

BIG = 9_007_199_254_740_993  # 2**53 + 1: not exact as a float


def _token(api: Api) -> str:
    return dict(api.a.md)["authorization"].split()[1]


def _client(api: Api, policy: RetryPolicy | None = None) -> MoneyMovementClient:
    return MoneyMovementClient(f"127.0.0.1:{api.port}", _token(api), policy or RetryPolicy())


# Every RPC has its method, and the client stands alone ---------------------------------


def _services() -> list[tuple[str, str, bool, bool]]:
    """(service, method, server streaming, has request_id) of every RPC of every service
    in the generated moneymovement.v1 modules."""
    found = []
    for module in pkgutil.iter_modules(moneymovement.v1.__path__):
        if not module.name.endswith("_pb2"):
            continue
        descriptor = importlib.import_module(f"moneymovement.v1.{module.name}").DESCRIPTOR
        for service in descriptor.services_by_name.values():
            for method in service.methods:
                has_id = "request_id" in method.input_type.fields_by_name
                found.append((service.name, method.name, method.server_streaming, has_id))
    return found


def test_every_rpc_of_every_service_has_a_client_method() -> None:
    rpcs = _services()
    assert {service for service, *_ in rpcs} == {
        "AccountService", "BalanceService", "MoneyMovementService", "EventService",
        "FundsService", "PayoutService", "AssetService", "AdminService", "HolderService",
    }  # fmt: skip
    assert len(rpcs) >= 25
    for service, rpc, streaming, has_request_id in rpcs:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()  # ListEntries: list_entries
        # AdminService takes the admin token: its methods are AdminClient's.
        client = AdminClient if service == "AdminService" else MoneyMovementClient
        method = getattr(client, name, None)
        assert method is not None, f"{service}.{rpc} has no {client.__name__}.{name}"
        if streaming:
            assert inspect.isasyncgenfunction(method), f"{name} should be an async generator"
        else:
            assert inspect.iscoroutinefunction(method), f"{name} should be async"
        parameters = inspect.signature(method).parameters
        if has_request_id:  # a mutation: the caller may give its own request_id
            assert parameters["request_id"].kind is inspect.Parameter.KEYWORD_ONLY, name
        if rpc.startswith("List"):  # a paged listing has its iterator too
            assert inspect.isasyncgenfunction(getattr(client, "iter_" + name[5:]))


def test_the_client_imports_only_grpc_protobuf_and_the_generated_stubs() -> None:
    source = Path(client_module.__file__).read_text()
    allowed = ("grpc", "google.protobuf", "google.rpc", "moneymovement.v1", "__future__")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            ok = root in sys.stdlib_module_names or any(
                name == a or name.startswith(a + ".") for a in allowed
            )
            assert ok, f"client.py imports {name}: not in the moneymovement-client distribution"
    # And at run time: what importing the client loads beyond grpc and protobuf (grpc
    # itself loads grpc_health and others when they are installed) is the client and the
    # generated stubs, nothing of the server, and no other distribution.
    probe = (
        "import sys, grpc, grpc.aio, google.protobuf, google.rpc.status_pb2\n"
        "before = set(sys.modules)\n"
        "import moneymovement.client\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )  # fmt: skip
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True,
        cwd=PROJECT_ROOT, timeout=60,
    ).stdout.split()  # fmt: skip
    assert "moneymovement.client" in loaded
    for name in loaded:
        root = name.split(".")[0]
        if root == "moneymovement":
            assert name in ("moneymovement", "moneymovement.client") or name.startswith(
                "moneymovement.v1"
            ), f"importing the client loads the server's {name}"
        else:
            assert root in {"grpc", "google", *sys.stdlib_module_names}, name


def test_what_the_client_copies_matches_grpc_and_the_server() -> None:
    # The health check without grpcio-health-checking: same bytes both ways.
    asked = health_pb2.HealthCheckRequest(service="moneymovement.v1.AccountService")
    copied = wrappers_pb2.StringValue(value="moneymovement.v1.AccountService")
    assert copied.SerializeToString() == asked.SerializeToString()
    reply = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    answer = wrappers_pb2.Int32Value.FromString(reply.SerializeToString()).value
    assert answer == client_module.HEALTH_SERVING == health_pb2.HealthCheckResponse.SERVING
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    assert f"/{health.full_name}/Check" == client_module.HEALTH_CHECK_METHOD
    # The trailer of the status details, as grpcio-status and the server name it.
    assert client_module.STATUS_DETAILS_KEY == grpc_status_common.GRPC_DETAILS_METADATA_KEY
    assert client_module.STATUS_DETAILS_KEY == server_errors.STATUS_DETAILS_KEY


# The class each reason raises: docs/errors.md says what a caller does with each.
CLASS_OF_REASON: dict[str, type[MoneyMovementError]] = {
    "INVALID_ARGUMENT": InvalidRequest,
    "TOKEN_MISSING": Unauthenticated,
    "TOKEN_INVALID": Unauthenticated,
    "ACCOUNT_NOT_FOUND": NotFound,
    "TRANSFER_NOT_FOUND": NotFound,
    "REQUEST_ID_REUSED": RequestIdReused,
    "EXTERNAL_ID_TAKEN": ExternalIdTaken,
    "INSUFFICIENT_FUNDS": InsufficientFunds,
    "ACCOUNT_FROZEN": AccountInactive,
    "ACCOUNT_CLOSED": AccountInactive,
    "CURRENCY_MISMATCH": FailedPrecondition,
    "ACCOUNT_NOT_EMPTY": FailedPrecondition,
    "VERSION_MISMATCH": VersionMismatch,
    "OVERDRAFT_LIMIT_IN_USE": FailedPrecondition,
    "BALANCE_OVERFLOW": FailedPrecondition,
    "TRANSFER_NOT_PENDING": WrongTransferState,
    "HOLD_EXPIRED": WrongTransferState,
    "POST_EXCEEDS_HOLD": FailedPrecondition,
    "TRANSFER_NOT_POSTED": WrongTransferState,
    "REVERSAL_EXCEEDS_ORIGINAL": FailedPrecondition,
    "REQUEST_IN_PROGRESS": Aborted,
    "CONCURRENCY_CONFLICT": Aborted,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "DATABASE_UNAVAILABLE": Unavailable,
    "NOT_IMPLEMENTED": ServerError,
    "INTERNAL": ServerError,
    "OVERLOADED": Throttled,
    "RATE_LIMITED": Throttled,
    "CURSOR_EXPIRED": CursorExpired,
    "SHUTTING_DOWN": Unavailable,
    "EARLY_RELEASE_NOT_ALLOWED": FailedPrecondition,
    "FUNDS_NOT_FOUND": NotFound,
    "FUNDS_NOT_SCHEDULED": FailedPrecondition,
    "RELEASE_EXCEEDS_PENDING": FailedPrecondition,
    "DEBIT_LIMIT_EXCEEDED": LimitExceeded,
    "BALANCE_LIMIT_EXCEEDED": LimitExceeded,
    "MONITOR_NOT_FOUND": NotFound,
    "MONITOR_LIMIT_REACHED": FailedPrecondition,
    "AVAILABILITY_NOT_APPLICABLE": FailedPrecondition,
    "EXTERNAL_ACCOUNT_NOT_FOUND": NotFound,
    "EXTERNAL_ACCOUNT_DISABLED": FailedPrecondition,
    "PAYOUT_NOT_FOUND": NotFound,
    "PAYOUT_NOT_CANCELABLE": FailedPrecondition,
    "FUNDS_NOT_YET_AVAILABLE": FailedPrecondition,
    "TRANSFER_OWNED": FailedPrecondition,
    "INVALID_PAYOUT_SOURCE": FailedPrecondition,
    "ASSET_CODE_TAKEN": AlreadyExists,
    "HOLD_EXTENSION_OUT_OF_RANGE": FailedPrecondition,
    "ASSET_CODE_RESERVED": AlreadyExists,
    "ASSET_LIMIT_REACHED": FailedPrecondition,
    "INBOUND_TRANSFER_NOT_FOUND": NotFound,
    "ADMIN_DISABLED": ServerError,
    "ADMIN_TOKEN_REQUIRED": PermissionDenied,
    "TENANT_NOT_FOUND": NotFound,
    "TOKEN_NOT_FOUND": NotFound,
    "HOLDER_NOT_FOUND": NotFound,
    "HOLDER_EXTERNAL_ID_TAKEN": AlreadyExists,
    "HOLDER_RESTRICTED": FailedPrecondition,
    "HOLDER_NOT_EMPTY": FailedPrecondition,
    "HOLDER_CLOSED": FailedPrecondition,
    "HOLDER_SCOPE_FORBIDS": PermissionDenied,
    "HOLDER_SCOPE_MISMATCH": PermissionDenied,
    "RESERVE_ACCOUNT_INELIGIBLE": FailedPrecondition,
    "RESERVE_DEBT_OUTSTANDING": FailedPrecondition,
    "RESERVE_TRANSFER_NOT_REVERSIBLE": FailedPrecondition,
}


def test_every_error_reason_of_the_contract_has_its_class() -> None:
    reasons = {
        value.name.removeprefix("ERROR_REASON_")
        for value in error_reason_pb2.ErrorReason.DESCRIPTOR.values
        if value.number != 0
    }
    assert set(CLASS_OF_REASON) == reasons  # a new reason: decide its class here
    for reason, code in server_errors.CODE_OF_REASON.items():
        with_delay = 0.1 if code == grpc.StatusCode.RESOURCE_EXHAUSTED else None
        assert error_type(code, reason.value, with_delay) is CLASS_OF_REASON[reason.value]
    # RESOURCE_EXHAUSTED without RetryInfo is gRPC's size limit; a reason under an
    # unexpected code keeps the code's family.
    assert error_type(grpc.StatusCode.RESOURCE_EXHAUSTED, "") is MessageTooLarge
    assert error_type(grpc.StatusCode.NOT_FOUND, "INSUFFICIENT_FUNDS") is NotFound
    assert error_type(grpc.StatusCode.UNKNOWN, "") is ServerError
    assert RetriesExhausted is Retryable
    assert all(issubclass(k, Rejected) for k in (NotFound, AlreadyExists, FailedPrecondition))


# Each method against the real server ---------------------------------------------------


async def test_money_moves_and_rejections_are_typed(api: Api) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        moved = await mm.create_transfer(funding.id, wallet.id, BIG, "USD")
        assert moved.amount_minor == BIG
        assert (await mm.get_balance(wallet.id)).posted_minor == BIG
        with pytest.raises(InsufficientFunds) as refused:
            await mm.create_transfer(wallet.id, funding.id, BIG + 1, "USD", request_id="big")
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.reason == "INSUFFICIENT_FUNDS"
        assert refused.value.account_id == wallet.id
        assert refused.value.available_minor == BIG
        assert refused.value.request_id == "big"
        with pytest.raises(InvalidRequest) as bad:
            await mm.create_transfer(wallet.id, wallet.id, 0, "usd")
        assert {f for f, _ in bad.value.field_violations} == {
            "credit_account_id", "amount_minor", "currency_code",
        }  # fmt: skip
        with pytest.raises(NotFound) as missing:
            await mm.get_account("acct_" + "x" * 26)
        assert missing.value.reason == "ACCOUNT_NOT_FOUND"
        assert missing.value.request_id is None  # a read
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", "mm_wrong") as stranger:
        with pytest.raises(Unauthenticated) as denied:
            await stranger.get_account(wallet.id)
        assert denied.value.reason == "TOKEN_INVALID"


async def test_accounts_are_opened_listed_changed_frozen_and_closed(api: Api) -> None:
    async with _client(api) as mm:
        alice = await mm.create_account(
            currency_code="USD", normal_balance="CREDIT", name="Alice", external_id="ext-a",
            holder_id="alice", metadata={"tier": "gold"}, request_id="open-alice",
        )  # fmt: skip
        assert (alice.name, alice.holder_id, dict(alice.metadata)) == (
            "Alice", "alice", {"tier": "gold"},
        )  # fmt: skip
        again = await mm.create_account(
            currency_code="USD", normal_balance="CREDIT", name="Alice", external_id="ext-a",
            holder_id="alice", metadata={"tier": "gold"}, request_id="open-alice",
        )  # fmt: skip
        assert again.id == alice.id  # the same request: the same account, opened once
        with pytest.raises(RequestIdReused) as reused:
            await mm.create_account(
                currency_code="EUR", normal_balance="CREDIT", request_id="open-alice"
            )
        assert reused.value.code == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(ExternalIdTaken):
            await mm.create_account(
                currency_code="USD", normal_balance="CREDIT", external_id="ext-a"
            )
        savings = await mm.create_account(
            currency_code="USD", normal_balance="CREDIT", holder_id="alice"
        )
        euros = await mm.create_account(currency_code="EUR", normal_balance="DEBIT")
        assert (await mm.get_account(savings.id)).holder_id == "alice"

        first = await mm.list_accounts(page_size=2)
        assert [a.id for a in first.accounts] == [euros.id, savings.id]  # newest first
        second = await mm.list_accounts(page_size=2, page_token=first.next_page_token)
        assert [a.id for a in second.accounts] == [alice.id]
        assert second.next_page_token == ""
        every = [a.id async for a in mm.iter_accounts(page_size=1)]
        assert every == [euros.id, savings.id, alice.id]
        held = [a.id async for a in mm.iter_accounts(holder_id="alice", currency_code="USD")]
        assert held == [savings.id, alice.id]
        assert [a.id async for a in mm.iter_accounts(external_id="ext-a")] == [alice.id]
        assert [a.id async for a in mm.iter_accounts(metadata={"tier": "gold"})] == [alice.id]
        with pytest.raises(InvalidRequest) as bad_token:
            await mm.list_accounts(page_token="not-a-token")
        assert bad_token.value.field_violations == [("page_token", "INVALID_PAGE_TOKEN")]
        with pytest.raises(ValueError, match="unknown State"):
            await mm.list_accounts(state="SLEEPING")

        renamed = await mm.update_account(
            alice.id, name="Alice B", metadata={"tier": "", "city": "Oslo"},
            overdraft_mode="LIMITED", overdraft_limit_minor=500,
            expected_version=alice.version,
        )  # fmt: skip
        assert (renamed.name, dict(renamed.metadata)) == ("Alice B", {"city": "Oslo"})
        assert renamed.overdraft_limit_minor == 500
        assert renamed.version > alice.version
        with pytest.raises(VersionMismatch) as stale:
            await mm.update_account(alice.id, name="late", expected_version=alice.version)
        assert stale.value.current_version == renamed.version

        frozen = await mm.freeze_account(savings.id, expected_version=savings.version)
        assert frozen.state == Account.STATE_FROZEN
        assert [a.id async for a in mm.iter_accounts(state="FROZEN")] == [savings.id]
        with pytest.raises(AccountInactive) as inactive:
            await mm.create_transfer(alice.id, savings.id, 1, "USD")  # from the overdraft
        assert inactive.value.reason == "ACCOUNT_FROZEN"
        thawed = await mm.unfreeze_account(savings.id)
        assert thawed.state == Account.STATE_ACTIVE
        await mm.create_transfer(alice.id, savings.id, 1, "USD")
        with pytest.raises(FailedPrecondition) as not_empty:
            await mm.close_account(savings.id)
        assert not_empty.value.reason == "ACCOUNT_NOT_EMPTY"
        closed = await mm.close_account(euros.id, expected_version=euros.version)
        assert closed.state == Account.STATE_CLOSED
        with pytest.raises(AccountInactive) as gone:
            await mm.freeze_account(euros.id)
        assert gone.value.reason == "ACCOUNT_CLOSED"
        with pytest.raises(NotFound):
            await mm.unfreeze_account("acct_" + "x" * 26)


async def test_balances_now_and_then_and_the_statement_page_by_page(api: Api) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        moves = [await mm.create_transfer(funding.id, wallet.id, n, "USD") for n in (BIG, 2, 3)]
        balance = await mm.get_balance(wallet.id)
        assert (balance.posted_minor, balance.available_minor) == (BIG + 5, BIG + 5)
        both = await mm.batch_get_balances([wallet.id, funding.id, wallet.id])
        assert [b.account_id for b in both] == [wallet.id, funding.id, wallet.id]
        assert both[1].posted_debits_minor == BIG + 5
        assert [b.account_id for b in await mm.get_balances(funding.id)] == [funding.id]
        with pytest.raises(NotFound) as missing:
            await mm.batch_get_balances([wallet.id, "acct_" + "x" * 26])
        assert missing.value.metadata["account_id"] == "acct_" + "x" * 26

        newest = await mm.list_entries(wallet.id, page_size=2)
        assert [e.transfer_id for e in newest.entries] == [moves[2].id, moves[1].id]
        rest = await mm.list_entries(wallet.id, page_size=2, page_token=newest.next_page_token)
        assert [e.transfer_id for e in rest.entries] == [moves[0].id]
        oldest = [e async for e in mm.iter_entries(wallet.id, order="OLDEST_FIRST", page_size=1)]
        assert [e.amount_minor for e in oldest] == [BIG, 2, 3]
        assert oldest[-1].balance_after.posted_minor == BIG + 5
        first_time = oldest[0].create_time.ToDatetime(tzinfo=UTC)
        before = await mm.get_balance(wallet.id, as_of_time=first_time - timedelta(seconds=1))
        assert before.posted_minor == 0
        then = await mm.get_balance(wallet.id, as_of_time=first_time)
        assert then.posted_minor == BIG
        with pytest.raises(InvalidRequest):
            await mm.get_balance(wallet.id, as_of_time=datetime.now(UTC) + timedelta(days=1))
        since = [e async for e in mm.iter_entries(wallet.id, start_time=first_time)]
        assert len(since) == 3
        assert [e async for e in mm.iter_entries(wallet.id, end_time=first_time)] == []
        with pytest.raises(NotFound):
            await mm.list_entries("acct_" + "x" * 26)


async def test_hold_steps_captures_increments_extensions_and_batch_operations(api: Api) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        shop = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        await mm.create_transfer(funding.id, wallet.id, 2_000, "USD")
        order = await mm.create_transfer(
            wallet.id, shop.id, 1_000, "USD", pending=True, over_capture_tolerance_bps=1_000
        )
        assert order.over_capture_tolerance_bps == 1_000

        part = await mm.post_transfer(order.id, 400, final=False)
        assert (part.state, part.posted_amount_minor) == (Transfer.STATE_PENDING, 400)
        raised = await mm.increment_hold(order.id, 500)
        assert raised.amount_minor == 1_500
        with pytest.raises(InsufficientFunds):
            await mm.increment_hold(order.id, 1_001)
        later = await mm.extend_hold(order.id, extend_by_s=3_600)
        assert later.expire_time.ToDatetime(UTC) - raised.expire_time.ToDatetime(UTC) == (
            timedelta(hours=1)
        )
        with pytest.raises(FailedPrecondition) as too_far:
            await mm.extend_hold(order.id, expire_time=datetime.now(UTC) + timedelta(days=31))
        assert too_far.value.reason == "HOLD_EXTENSION_OUT_OF_RANGE"

        extra = await mm.create_transfer(wallet.id, shop.id, 100, "USD", pending=True)
        done = await mm.create_transfers(
            [
                capture_operation(order.id, 1_250),  # 400 + 1,250 = 1,650: 1,500 + 10 %
                void_operation(extra.id),
                transfer_operation(shop.id, wallet.id, 50, "USD"),
            ]
        )
        assert [(t.state, t.posted_amount_minor) for t in done] == [
            (Transfer.STATE_POSTED, 1_650),
            (Transfer.STATE_VOIDED, 0),
            (Transfer.STATE_POSTED, 50),
        ]
        assert (await mm.get_balance(wallet.id)).available_minor == 2_000 - 1_650 + 50


async def test_holds_reversals_batches_and_transfer_listings(api: Api) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        shop = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        await mm.create_transfer(funding.id, wallet.id, 1_000, "USD", description="top-up")

        hold = await mm.create_transfer(
            wallet.id, shop.id, 300, "USD", pending=True, hold_timeout_s=60,
            metadata={"order": "o-1"},
        )  # fmt: skip
        assert hold.state == Transfer.STATE_PENDING
        assert (await mm.get_balance(wallet.id)).available_minor == 700
        captured = await mm.post_transfer(hold.id, 200)
        assert (captured.state, captured.posted_amount_minor) == (Transfer.STATE_POSTED, 200)
        with pytest.raises(WrongTransferState) as twice:
            await mm.post_transfer(hold.id)
        assert twice.value.reason == "TRANSFER_NOT_PENDING"

        expiry = datetime.now(UTC) + timedelta(days=1)
        other = await mm.create_transfer(
            wallet.id, shop.id, 50, "USD", pending=True, hold_expire_time=expiry
        )
        assert abs(other.expire_time.ToDatetime(tzinfo=UTC) - expiry) < timedelta(seconds=1)
        with pytest.raises(FailedPrecondition) as too_much:
            await mm.post_transfer(other.id, 51)
        assert too_much.value.reason == "POST_EXCEEDS_HOLD"
        voided = await mm.void_transfer(other.id)
        assert voided.state == Transfer.STATE_VOIDED

        back = await mm.reverse_transfer(
            captured.id, 80, description="refund", metadata={"why": "broken"}
        )
        assert (back.reversal.amount_minor, back.reversal.description) == (80, "refund")
        assert back.reversal.reversal_of_transfer_id == captured.id
        assert back.original.reversed_amount_minor == 80
        with pytest.raises(WrongTransferState) as not_posted:
            await mm.reverse_transfer(other.id)
        assert not_posted.value.reason == "TRANSFER_NOT_POSTED"

        batch = await mm.create_transfers(
            [
                transfer_item(funding.id, wallet.id, BIG, "USD", description="in"),
                transfer_item(wallet.id, shop.id, 5, "USD", pending=True, hold_timeout_s=30),
            ],
            request_id="batch-1",
        )
        assert [t.amount_minor for t in batch] == [BIG, 5]
        assert batch[0].batch_id
        assert batch[0].batch_id == batch[1].batch_id
        with pytest.raises(InsufficientFunds) as refused:
            await mm.create_transfers(
                [
                    transfer_item(funding.id, shop.id, 1, "USD"),
                    transfer_item(shop.id, funding.id, BIG, "USD"),
                ]
            )
        assert refused.value.item_index == 1

        fetched = await mm.get_transfer(hold.id)
        kinds = [h.kind for h in fetched.history]
        assert kinds == [
            TransferEvent.KIND_CREATED, TransferEvent.KIND_POSTED, TransferEvent.KIND_REVERSED,
        ]  # fmt: skip
        with pytest.raises(NotFound) as missing:
            await mm.get_transfer("tr_" + "x" * 26)
        assert missing.value.reason == "TRANSFER_NOT_FOUND"

        page = await mm.list_transfers(account_id=shop.id, page_size=2)
        assert len(page.transfers) == 2
        assert page.next_page_token
        of_shop = [t.id async for t in mm.iter_transfers(account_id=shop.id, page_size=2)]
        assert of_shop[:2] == [t.id for t in page.transfers]
        assert set(of_shop) == {hold.id, other.id, back.reversal.id, batch[1].id}
        in_batch = {t.id async for t in mm.iter_transfers(batch_id=batch[0].batch_id)}
        assert in_batch == {t.id for t in batch}
        assert [t.id async for t in mm.iter_transfers(state="VOIDED")] == [other.id]
        assert [t.id async for t in mm.iter_transfers(metadata={"order": "o-1"})] == [hold.id]
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert [t async for t in mm.iter_transfers(start_time=later)] == []
        assert len([t async for t in mm.iter_transfers(end_time=later)]) == 6


async def test_events_are_listed_page_by_page_and_an_expired_cursor_is_typed(api: Api) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        moved = await mm.create_transfer(funding.id, wallet.id, 5, "USD")
        first = await mm.list_events(page_size=2)
        assert [e.account.id for e in first.events] == [funding.id, wallet.id]
        rest = await mm.list_events(after_cursor=first.next_cursor)
        assert [e.transfer.id for e in rest.events] == [moved.id]
        only = await mm.list_events(types=["TRANSFER_CREATED"], account_id=wallet.id)
        assert [e.cursor for e in only.events] == [rest.events[0].cursor]
        assert (await mm.list_events(start="NOW")).events == []
        every = [e async for e in mm.iter_events(page_size=1)]
        assert [e.cursor for e in every] == [e.cursor for e in [*first.events, *rest.events]]
        after = [e async for e in mm.iter_events(after_cursor=first.events[0].cursor)]
        assert [e.cursor for e in after] == [e.cursor for e in every[1:]]
        assert [e async for e in mm.iter_events(types=["ACCOUNT_CLOSED"], page_size=1)] == []
        streamed: list[str] = []
        async with contextlib.aclosing(mm.watch_events(start="OLDEST")) as stream:
            async for response in stream:
                streamed += [e.cursor for e in response.events]
                if len(streamed) >= len(every):
                    break
        assert streamed == [e.cursor for e in every]
        with pytest.raises(InvalidRequest) as bad:
            await mm.list_events(after_cursor="x")
        assert bad.value.field_violations == [("after_cursor", "INVALID_FORMAT")]

        retention = Retention(
            api.database, event_retention_s=60, outcome_retention_s=86400, interval_s=60
        )
        await retention.prune_once(datetime.now(UTC) + timedelta(minutes=2))
        with pytest.raises(CursorExpired) as expired:
            await mm.list_events(after_cursor="1")
        assert expired.value.code == grpc.StatusCode.OUT_OF_RANGE
        assert expired.value.oldest_cursor == rest.next_cursor
        with pytest.raises(CursorExpired):
            await anext(mm.watch_events(after_cursor="1"))


@pytest.fixture
async def rail_api(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    """A server on a fresh simulated rail that settles in ~0.05 s, whose payout worker
    looks every 0.05 s (as tests/e2e/test_payouts_api.py runs it)."""
    running = await start_api(
        dsn, MM_RAIL_DIR=str(tmp_path / "rail"), MM_RAIL_LATENCY_S="0.05",
        MM_PAYOUT_POLL_S="0.05",
    )  # fmt: skip
    yield running
    await stop_api(running)
    await assert_ledger_consistent(dsn)


async def test_payouts_external_accounts_inbound_transfers_and_reconciliation(
    rail_api: Api, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    async with _client(rail_api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        seller = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        fees = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        await mm.create_transfer(funding.id, seller.id, 10_000, "USD")

        bank = await mm.create_external_account(
            rail="simulated", currency_code="USD", routing_reference="110000000",
            account_number="000123456789", holder_name="Ada Seller", metadata={"k": "v"},
            request_id="dest-1",
        )  # fmt: skip
        assert (bank.last4, bank.state) == ("6789", payout_pb2.EXTERNAL_ACCOUNT_STATE_ACTIVE)
        assert (await mm.get_external_account(bank.id)).fingerprint == bank.fingerprint
        twin = await mm.create_external_account(
            rail="simulated", currency_code="USD", routing_reference="110000000",
            account_number="000123456789",
        )  # fmt: skip
        same = [x.id async for x in mm.iter_external_accounts(fingerprint=bank.fingerprint)]
        assert same == [twin.id, bank.id]  # newest first
        page = await mm.list_external_accounts(page_size=1)
        assert ([x.id for x in page.external_accounts], bool(page.next_page_token)) == (
            [twin.id], True,
        )  # fmt: skip
        disabled = await mm.disable_external_account(twin.id)
        assert disabled.state == payout_pb2.EXTERNAL_ACCOUNT_STATE_DISABLED
        with pytest.raises(FailedPrecondition) as closed_door:
            await mm.create_payout(seller.id, twin.id, 1, "USD", "INSTANT")
        assert closed_door.value.reason == "EXTERNAL_ACCOUNT_DISABLED"
        with pytest.raises(NotFound) as no_destination:
            await mm.get_external_account("xacct_" + "x" * 26)
        assert no_destination.value.reason == "EXTERNAL_ACCOUNT_NOT_FOUND"
        with pytest.raises(ValueError, match="unknown PayoutMethod"):
            await mm.create_payout(seller.id, bank.id, 1, "USD", "CARRIER_PIGEON")

        payout = await mm.create_payout(
            seller.id, bank.id, 2_500, "USD", "instant", fee_minor=100,
            fee_account_id=fees.id, description="weekly", request_id="po-1",
        )  # fmt: skip
        assert (payout.request_id, payout.method) == ("po-1", payout_pb2.PAYOUT_METHOD_INSTANT)
        assert (await mm.get_balance(seller.id)).available_minor == 7_400  # held at once
        deadline = loop.time() + 10
        while (done := await mm.get_payout(payout.id)).state != payout_pb2.PAYOUT_STATE_POSTED:
            assert done.state in (
                payout_pb2.PAYOUT_STATE_PENDING,
                payout_pb2.PAYOUT_STATE_PROCESSING,
            )
            assert loop.time() < deadline, "the payout did not post within 10 s"
            await asyncio.sleep(0.05)
        assert (await mm.get_balance(fees.id)).posted_minor == 100
        with pytest.raises(FailedPrecondition) as too_late:
            await mm.cancel_payout(payout.id, request_id="cancel-1")
        assert too_late.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert too_late.value.reason == "PAYOUT_NOT_CANCELABLE"
        assert too_late.value.metadata == {"payout_id": payout.id, "state": "POSTED"}
        assert too_late.value.request_id == "cancel-1"
        with pytest.raises(FailedPrecondition) as owned:
            await mm.reverse_transfer(done.hold_transfer_id)
        assert owned.value.reason == "TRANSFER_OWNED"
        assert type(owned.value) is FailedPrecondition  # not WrongTransferState
        with pytest.raises(NotFound) as no_payout:
            await mm.get_payout("po_" + "x" * 26)
        assert no_payout.value.reason == "PAYOUT_NOT_FOUND"
        listed = await mm.list_payouts(account_id=seller.id, external_account_id=bank.id)
        assert [p.id for p in listed.payouts] == [payout.id]
        assert [p.id async for p in mm.iter_payouts(state="POSTED", page_size=1)] == [payout.id]
        assert [p async for p in mm.iter_payouts(state="CANCELED")] == []

        SimulatedBank(tmp_path / "rail").send_credit(
            rail_api.tenant_a, seller.id, 700, "USD", "wire-1", "customer wire"
        )
        deadline = loop.time() + 10
        while not (came := [i async for i in mm.iter_inbound_transfers(account_id=seller.id)]):
            assert loop.time() < deadline, "the inbound transfer did not arrive within 10 s"
            await asyncio.sleep(0.05)
        [inbound] = came
        got = await mm.get_inbound_transfer(inbound.id)
        assert (got.rail_reference, got.amount_minor) == ("wire-1", 700)
        assert got.state == payout_pb2.INBOUND_TRANSFER_STATE_RECEIVED
        assert [i.id for i in (await mm.list_inbound_transfers()).inbound_transfers] == [got.id]
        with pytest.raises(NotFound) as no_inbound:
            await mm.get_inbound_transfer("inb_" + "x" * 26)
        assert no_inbound.value.reason == "INBOUND_TRANSFER_NOT_FOUND"

        clean = await mm.reconcile("simulated")  # the rail's own report
        assert (clean.matched, list(clean.breaks)) == (2, [])
        off = await mm.reconcile(
            "simulated", [settlement_line("PAYOUT", payout.id, 2_501, "USD", "POSTED")]
        )
        assert off.matched == 0
        assert {(b.kind, b.reference) for b in off.breaks} == {
            (payout_pb2.RECONCILIATION_BREAK_KIND_AMOUNT_MISMATCH, payout.id),
            (payout_pb2.RECONCILIATION_BREAK_KIND_MISSING_IN_REPORT, got.rail_reference),
        }
        with pytest.raises(ValueError, match="unknown SettlementLineKind"):
            settlement_line("CHEQUE", "x", 1, "USD", "POSTED")


# Transient failures: retried with the same request_id, then typed -----------------------


async def test_assets_are_registered_listed_and_refused_typed(api: Api) -> None:
    async with _client(api) as mm:
        coin = await mm.register_asset("USDC", 6, "USD Coin", request_id="coin")
        assert (coin.currency_code, coin.exponent, coin.kind) == (
            "USDC", 6, asset_pb2.CURRENCY_KIND_TENANT_ASSET,
        )  # fmt: skip
        listed = [c async for c in mm.iter_currencies(page_size=40)]
        assert coin in listed
        assert {c.currency_code for c in listed} >= {"USD", "EUR", "JPY", "USDC"}
        page = await mm.list_currencies(page_size=1)
        assert (len(page.currencies), bool(page.next_page_token)) == (1, True)
        with pytest.raises(AlreadyExists) as taken:
            await mm.register_asset("USDC", 2, "USD Coin")
        assert (taken.value.reason, taken.value.metadata["exponent"]) == ("ASSET_CODE_TAKEN", "6")
        with pytest.raises(AlreadyExists) as reserved:
            await mm.register_asset("USD", 2, "Dollar")
        assert reserved.value.reason == "ASSET_CODE_RESERVED"
        with pytest.raises(InvalidRequest) as bad:
            await mm.register_asset("usdc", 19, "")
        assert {f for f, _ in bad.value.field_violations} == {"currency_code", "exponent", "name"}
        wallet = await mm.create_account(currency_code="USDC", normal_balance="CREDIT")
        assert wallet.currency_code == "USDC"


async def test_holders_are_created_listed_restricted_summed_and_refused_typed(api: Api) -> None:
    async with _client(api) as mm:
        ada = await mm.create_holder("seller-ada", name="Ada", request_id="ada")
        assert (ada.external_id, ada.state) == ("seller-ada", holder_pb2.Holder.STATE_ACTIVE)
        assert await mm.get_holder(ada.holder_id) == ada
        await mm.create_holder("seller-bob", metadata={"tier": "gold"})
        assert [h.external_id async for h in mm.iter_holders(page_size=1)] == [
            "seller-bob", "seller-ada",
        ]  # fmt: skip
        gold = await mm.list_holders(metadata={"tier": "gold"})
        assert [h.external_id for h in gold.holders] == ["seller-bob"]
        with pytest.raises(AlreadyExists) as taken:
            await mm.create_holder("seller-ada")
        assert (taken.value.reason, taken.value.metadata["holder_id"]) == (
            "HOLDER_EXTERNAL_ID_TAKEN", ada.holder_id,
        )  # fmt: skip
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(
            currency_code="USD", normal_balance="CREDIT", holder_id=ada.holder_id
        )
        await mm.create_transfer(funding.id, wallet.id, 900, "USD")
        restricted = await mm.update_holder(ada.holder_id, name="Ada L.", state="RESTRICTED")
        assert (restricted.name, restricted.version) == ("Ada L.", 2)
        with pytest.raises(FailedPrecondition) as refused:
            await mm.create_transfer(wallet.id, funding.id, 1, "USD")
        assert (refused.value.reason, refused.value.metadata["account_id"]) == (
            "HOLDER_RESTRICTED", wallet.id,
        )  # fmt: skip
        sums = await mm.get_holder_balances(ada.holder_id)
        assert [(b.currency_code, b.available_minor) for b in sums.balances] == [("USD", 900)]
        with pytest.raises(FailedPrecondition) as not_empty:
            await mm.update_holder(ada.holder_id, state="CLOSED")
        assert not_empty.value.metadata["open_account_count"] == "1"
        with pytest.raises(NotFound) as missing:
            await mm.get_holder_balances("hld_" + "b" * 26)
        assert missing.value.reason == "HOLDER_NOT_FOUND"


async def test_funds_availability_releases_monitors_limits_and_freezes(api: Api) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        fees = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        day = funds_pb2.DebitLimit(window=funds_pb2.LIMIT_WINDOW_DAY, max_count=1)
        shop = await mm.create_account(
            currency_code="USD", normal_balance="CREDIT", request_id="shop",
            funds_policy=funds_pb2.FundsPolicy(early_release_allowed=True, debit_limits=[day]),
        )  # fmt: skip
        credit = await mm.create_transfer(
            funding.id, shop.id, 1_000, "USD", availability_delay_s=3_600
        )
        assert credit.availability_delay.seconds == 3_600
        balance = await mm.get_balance(shop.id)
        assert (balance.pending_availability_minor, balance.available_minor) == (1_000, 0)
        [part] = [f async for f in mm.iter_scheduled_funds(shop.id)]
        monitor = await mm.create_balance_monitor(shop.id, "AVAILABLE", "ABOVE", 500)
        released = await mm.release_funds(
            shop.id, funds_ids=[part.id], fee_minor=10, fee_account_id=fees.id
        )
        assert (released.released_minor, released.balance.available_minor) == (1_000, 990)
        assert [m.triggered for m in await mm.list_balance_monitors(shop.id)] == [True]
        assert (await mm.delete_balance_monitor(monitor.id)).id == monitor.id
        with pytest.raises(FailedPrecondition) as again:
            await mm.release_funds(shop.id, funds_ids=[part.id])
        assert again.value.reason == "FUNDS_NOT_SCHEDULED"
        with pytest.raises(LimitExceeded) as limited:  # the fee was the day's one debit
            await mm.create_transfer(shop.id, fees.id, 1, "USD")
        assert limited.value.metadata["window"] == "DAY"
        frozen = await mm.freeze_account(shop.id, scope="DEBITS", reason="review")
        assert (frozen.freeze_scope, frozen.freeze_reason) == (
            account_pb2.FREEZE_SCOPE_DEBITS, "review",
        )  # fmt: skip
        await mm.update_account(shop.id, funds_policy=funds_pb2.FundsPolicy())
        changes = [c.request_id async for c in mm.iter_policy_changes(shop.id)]
        assert len(changes) == 2
        assert changes[1] == "shop"  # newest first: the update, then the opening


async def test_an_aborted_call_is_retried_with_the_same_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _client(api) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        # The server gives up after 12 attempts (ABORTED); the client then sends the
        # same request again, and that one goes through.
        original, conflicts = LedgerStore.write, iter(range(12))

        async def conflicting(self: LedgerStore, *written: object) -> None:
            if next(conflicts, None) is not None:
                raise asyncpg.SerializationError("forced by the test")
            await original(self, *written)  # type: ignore[arg-type]

        monkeypatch.setattr(LedgerStore, "write", conflicting)
        moved = await mm.create_transfer(funding.id, wallet.id, 25, "USD")
        assert mm.attempts == 2
        connection = await asyncpg.connect(api.dsn)
        try:
            count = await connection.fetchval(
                "SELECT count(*) FROM transfers WHERE request_id = $1", moved.request_id
            )
        finally:
            await connection.close()
        assert count == 1
        assert (await mm.get_balance(wallet.id)).posted_minor == 25


async def test_an_abort_the_client_does_not_retry_is_typed_with_its_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _client(api, RetryPolicy(max_attempts=1)) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
        )
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")

        async def conflicting(self: LedgerStore, *written: object) -> None:
            raise asyncpg.SerializationError("forced by the test")

        monkeypatch.setattr(LedgerStore, "write", conflicting)
        with pytest.raises(Aborted) as aborted:
            await mm.create_transfer(funding.id, wallet.id, 1, "USD")
        assert mm.attempts == 1
    assert aborted.value.reason == "CONCURRENCY_CONFLICT"
    assert aborted.value.request_id  # generated, for the caller's own retry


async def test_retries_are_bounded_and_keep_the_request_id(api: Api) -> None:
    await api.server.stop(0)  # nothing listens any more: every attempt is UNAVAILABLE
    policy = RetryPolicy(max_attempts=3, timeout_s=1, first_backoff_s=0.01)
    async with _client(api, policy) as mm:
        with pytest.raises(Unavailable) as gave_up:
            await mm.create_transfer(
                "acct_" + "a" * 26, "acct_" + "b" * 26, 1, "USD", request_id="r-1"
            )
        assert mm.attempts == 3
        with pytest.raises(RetriesExhausted):  # the family, by its older name
            await mm.get_account("acct_" + "a" * 26)
    assert gave_up.value.code == grpc.StatusCode.UNAVAILABLE
    assert gave_up.value.request_id == "r-1"


async def test_a_deadline_and_an_oversized_message_are_typed(api: Api) -> None:
    async with _client(api, RetryPolicy(max_attempts=1, timeout_s=1e-6)) as hasty:
        with pytest.raises(DeadlineExceeded) as late:
            await hasty.create_account(currency_code="USD", normal_balance="CREDIT")
        assert late.value.request_id  # generated: ask again with it to learn the outcome
    async with _client(api) as mm:
        with pytest.raises(MessageTooLarge) as huge:
            await mm.get_account("a" * 5_000_000)  # over the server's 4 MiB
        assert huge.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert mm.attempts == 1  # the same call would be refused again: not retried


async def test_a_rate_limited_call_is_typed_with_its_retry_delay(dsn: str) -> None:
    api = await start_api(dsn, MM_TENANT_RATE_PER_S="1", MM_TENANT_BURST="1")
    try:
        await wait_until_serving(f"127.0.0.1:{api.port}", timeout_s=10)
        async with _client(api, RetryPolicy(max_attempts=1)) as mm:
            await mm.list_accounts()
            with pytest.raises(Throttled) as slowed:
                await mm.list_accounts()
        assert slowed.value.reason == "RATE_LIMITED"
        assert slowed.value.retry_delay_s is not None
        assert slowed.value.retry_delay_s > 0
        assert slowed.value.metadata["rate_per_s"]
    finally:
        await stop_api(api)
    with pytest.raises(TimeoutError):
        await wait_until_serving(f"127.0.0.1:{api.port}", timeout_s=0.3)
