"""What one operation of each workload sends, with the generated gRPC stubs.

An operation is the unit the report counts: one transfer (uniform, hot), one hold then its
capture, one atomic batch (counted as its transfers), one balance read, or one health
check (the RPC floor). Each returns how many transfers (or reads, or calls) it did.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.accounts import account_id
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import balance_service_pb2_grpc as bgrpc
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc

# As moneymovement.client: these codes may be resent with the same request_id, safely.
RESENDABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
MAX_SENDS = 5
RPC_TIMEOUT_S = 10.0
BATCH_SIZE = 100
HOLD_TIMEOUT_S = 600  # long enough that no hold expires before its capture

# workload name -> (unit of its throughput, RPCs per operation, transfers per operation)
UNITS: dict[str, tuple[str, int, int]] = {
    "uniform": ("transfers", 1, 1),
    "hot": ("transfers", 1, 1),
    "hold_capture": ("transfers", 2, 1),
    "batch": ("transfers", 1, BATCH_SIZE),
    "reads": ("reads", 1, 0),
    "rpc_floor": ("calls", 1, 0),
}


class OperationFailed(Exception):
    """An operation ended with a gRPC error (after any resends)."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


@dataclass
class Caller:
    """One client process's stubs, token and randomness; counts its resends."""

    channel: grpc.aio.Channel
    token: str
    accounts: int
    hot: int
    rng: random.Random
    resends: int = 0
    counting: bool = False  # only resends inside the measurement window are reported
    # When set: the wall time each new transfer's answer arrived, by transfer id.
    answered: dict[str, float] | None = None
    _metadata: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        self._metadata = (("authorization", f"Bearer {self.token}"),)
        self.movements = mgrpc.MoneyMovementServiceStub(self.channel)
        self.balances = bgrpc.BalanceServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        """Sends `request`, resending (same request_id) on codes that are safe to resend."""
        for send in range(1, MAX_SENDS + 1):
            try:
                return await method(request, metadata=self._metadata, timeout=RPC_TIMEOUT_S)
            except grpc.aio.AioRpcError as failure:
                if failure.code() not in RESENDABLE or send == MAX_SENDS:
                    raise OperationFailed(failure.code()) from failure
                self.resends += 1 if self.counting else 0
                await asyncio.sleep(self.rng.uniform(0, min(2.0, 0.05 * 2 ** (send - 1))))
        raise AssertionError("unreachable")

    def pair(self, *, hot: bool = False) -> tuple[str, str]:
        """(debit, credit) account ids: distinct, random; the hot account as credit."""
        if hot:
            debit = self.rng.randrange(1, self.accounts)
            return account_id(debit + (debit >= self.hot)), account_id(self.hot)
        debit, credit = self.rng.sample(range(1, self.accounts + 1), 2)
        return account_id(debit), account_id(credit)


def _transfer_request(caller: Caller, *, hot: bool, pending: bool) -> mpb.CreateTransferRequest:
    debit, credit = caller.pair(hot=hot)
    request = mpb.CreateTransferRequest(
        request_id=uuid.uuid4().hex,
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=caller.rng.randint(1, 1000),
        currency_code="USD",
        pending=pending,
    )
    if pending:
        request.hold_timeout.FromSeconds(HOLD_TIMEOUT_S)
    return request


async def _create_transfer(caller: Caller, request: mpb.CreateTransferRequest) -> None:
    response = await caller.call(caller.movements.CreateTransfer, request)
    if caller.answered is not None:
        caller.answered[response.transfer.id] = time.time()


async def uniform(caller: Caller) -> None:
    """(a) An immediate transfer between two random accounts of 10,000."""
    await _create_transfer(caller, _transfer_request(caller, hot=False, pending=False))


async def hot(caller: Caller) -> None:
    """(b) An immediate transfer that credits the one hot account."""
    await _create_transfer(caller, _transfer_request(caller, hot=True, pending=False))


async def hold_capture(caller: Caller) -> None:
    """(c) A hold (pending transfer), then its full capture."""
    held = await caller.call(
        caller.movements.CreateTransfer, _transfer_request(caller, hot=False, pending=True)
    )
    capture = mpb.PostTransferRequest(request_id=uuid.uuid4().hex, transfer_id=held.transfer.id)
    await caller.call(caller.movements.PostTransfer, capture)


async def batch(caller: Caller) -> None:
    """(d) An atomic batch of 100 transfers between random accounts."""
    items = []
    for _ in range(BATCH_SIZE):
        debit, credit = caller.pair()
        items.append(
            mpb.CreateTransfersRequest.Item(
                debit_account_id=debit,
                credit_account_id=credit,
                amount_minor=caller.rng.randint(1, 1000),
                currency_code="USD",
            )
        )
    request = mpb.CreateTransfersRequest(request_id=uuid.uuid4().hex, transfers=items)
    await caller.call(caller.movements.CreateTransfers, request)


async def reads(caller: Caller) -> None:
    """(e) One account's current balance."""
    account = account_id(caller.rng.randint(1, caller.accounts))
    await caller.call(caller.balances.GetBalance, bpb.GetBalanceRequest(account_id=account))


async def rpc_floor(caller: Caller) -> None:
    """The RPC floor: a health check, which touches neither the database nor our code."""
    await caller.call(caller.health.Check, health_pb2.HealthCheckRequest())


OPERATIONS: dict[str, Callable[[Caller], Awaitable[None]]] = {
    "uniform": uniform,
    "hot": hot,
    "hold_capture": hold_capture,
    "batch": batch,
    "reads": reads,
    "rpc_floor": rpc_floor,
}
