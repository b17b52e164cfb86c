"""A chaos client: one process sending random operations through the real server.

Besides transfers, holds, captures (final, and partial ones that leave the rest held),
hold increments, voids, reversals and batches, a modest share of the
operations exercise funds accessibility: credits to the accounts with a funds policy
(`funds_accounts`) that stay unavailable for 1 to 5 s (`availability_delay`, on immediate
transfers and on some holds, counted from their capture), and early releases of such funds
by amount (ReleaseFunds), some with a small fee to the currency's fee account. When the
plan names a holder's seller accounts (tests/chaos/reserve.py), charges to them, moves of
their money (some acting for the holder, `mm-holder`) and refunds of the charges, alone or
as a batch of `reverse_transfer` operations, which their negative-balance reserve covers.

Every request gets a fresh request_id; on UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED it is
retried with the same request_id (that is what makes retries safe) until a time budget
runs out, and then its outcome is "unknown". Every outcome is written as a JSON line.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import (
    balance_service_pb2_grpc,
    funds_service_pb2_grpc,
    money_movement_service_pb2_grpc,
)
from moneymovement.v1 import funds_service_pb2 as fpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.chaos.reserve import SELLER_OPS, SellerAccounts

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
}
ATTEMPT_TIMEOUT_S = 5.0
RETRY_BUDGET_S = 40.0
# The operations and their shares (in %); delayed credits and early releases only when
# the plan names accounts with a funds policy, the seller's operations only when it names
# seller accounts.
OPS = (
    "transfer", "hold", "capture", "partial", "increment", "void", "reverse", "batch", "read",
    "delayed", "release", "charge", "seller_move", "refund", "refund_batch",
)  # fmt: skip
WEIGHTS = (26, 14, 8, 6, 4, 6, 8, 8, 16, 6, 4, 6, 6, 4, 2)
FUNDS_OPS = frozenset({"delayed", "release"})


@dataclass(frozen=True)
class ClientPlan:
    """What one client process does."""

    index: int
    seed: int
    target: str  # host:port, or ipv4:host:port,host:port,... for several replicas
    token: str
    duration_s: float
    accounts: dict[str, list[str]]  # currency -> customer account ids
    log_path: str
    # currency -> the customers whose funds policy allows early release (credits to them
    # may be delayed, and released early), and the account that early-release fees go to.
    funds_accounts: dict[str, list[str]] = field(default_factory=dict)
    fee_accounts: dict[str, str] = field(default_factory=dict)
    sellers: SellerAccounts | None = None


def run_client(plan: ClientPlan) -> None:
    """Process entry point (multiprocessing, spawn)."""
    asyncio.run(_Client(plan).run())


class _Client:
    def __init__(self, plan: ClientPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed * 1000 + plan.index)
        self.md = (("authorization", f"Bearer {plan.token}"),)
        self.holds: list[str] = []  # holds this client created (acknowledged)
        self.posted: list[str] = []  # posted transfers this client created
        self.charges: list[str] = []  # charges to the sellers this client made
        self.log = Path(plan.log_path).open("a", encoding="utf-8")  # noqa: SIM115
        self.weights = [
            0
            if (op in FUNDS_OPS and not plan.funds_accounts)
            or (op in SELLER_OPS and plan.sellers is None)
            else weight
            for op, weight in zip(OPS, WEIGHTS, strict=True)
        ]

    async def run(self) -> None:
        # Several replicas: client-side round-robin over all their addresses.
        options = [("grpc.lb_policy_name", "round_robin")] if "," in self.plan.target else []
        async with grpc.aio.insecure_channel(self.plan.target, options=options) as channel:
            self.moves = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
            self.balances = balance_service_pb2_grpc.BalanceServiceStub(channel)
            self.funds = funds_service_pb2_grpc.FundsServiceStub(channel)
            stop_at = time.monotonic() + self.plan.duration_s
            while time.monotonic() < stop_at:
                op = self.rng.choices(OPS, weights=self.weights)[0]
                await getattr(self, "_" + op)()
        self.log.close()

    def _pair(self) -> tuple[str, str, str]:
        currency = self.rng.choice(sorted(self.plan.accounts))
        debit, credit = self.rng.sample(self.plan.accounts[currency], 2)
        return currency, debit, credit

    async def _transfer(self) -> None:
        currency, debit, credit = self._pair()
        await self._pay("transfer", currency, debit, credit, self.posted)

    async def _pay(
        self, kind: str, currency: str, debit: str, credit: str, made: list[str]
    ) -> None:
        """A transfer of 1 to 400, filed in `made` once acknowledged."""
        amount = self.rng.randint(1, 400)
        request = mpb.CreateTransferRequest(
            debit_account_id=debit, credit_account_id=credit, amount_minor=amount,
            currency_code=currency,
        )  # fmt: skip
        params = {"debit": debit, "credit": credit, "amount": amount, "currency": currency}
        reply = await self._call(kind, self.moves.CreateTransfer, request, params)
        if reply is not None:
            made.append(reply.transfer.id)

    async def _hold(self) -> None:
        currency, debit, credit = self._pair()
        amount = self.rng.randint(1, 300)
        timeout = duration_pb2.Duration(seconds=self.rng.randint(1, 6))
        request = mpb.CreateTransferRequest(
            debit_account_id=debit, credit_account_id=credit, amount_minor=amount,
            currency_code=currency, pending=True, hold_timeout=timeout,
        )  # fmt: skip
        params: dict[str, Any] = {
            "debit": debit, "credit": credit, "amount": amount, "currency": currency,
        }  # fmt: skip
        if credit in self.plan.funds_accounts.get(currency, ()) and self.rng.random() < 0.3:
            # Unavailable for a while once captured (the delay counts from the capture).
            params["delay_s"] = self.rng.randint(1, 5)
            request.availability_delay.CopyFrom(duration_pb2.Duration(seconds=params["delay_s"]))
        reply = await self._call("hold", self.moves.CreateTransfer, request, params)
        if reply is not None:
            self.holds.append(reply.transfer.id)

    async def _capture(self) -> None:
        if not self.holds:
            return
        hold = self.rng.choice(self.holds)
        amount = self.rng.choice([0, self.rng.randint(1, 150)])
        request = mpb.PostTransferRequest(transfer_id=hold, amount_minor=amount)
        reply = await self._call(
            "capture", self.moves.PostTransfer, request, {"hold": hold, "amount": amount}
        )
        if reply is not None:
            self.posted.append(hold)

    async def _partial(self) -> None:
        """A capture that leaves the rest of the hold held (or ends it if it takes all)."""
        if not self.holds:
            return
        hold = self.rng.choice(self.holds)
        amount = self.rng.randint(1, 120)
        request = mpb.PostTransferRequest(
            transfer_id=hold, amount_minor=amount, final_capture=False
        )
        reply = await self._call(
            "partial", self.moves.PostTransfer, request, {"hold": hold, "amount": amount}
        )
        if reply is not None:
            self.posted.append(hold)

    async def _increment(self) -> None:
        if not self.holds:
            return
        hold = self.rng.choice(self.holds)
        amount = self.rng.randint(1, 100)
        request = mpb.IncrementHoldRequest(transfer_id=hold, amount_minor=amount)
        await self._call(
            "increment", self.moves.IncrementHold, request, {"hold": hold, "amount": amount}
        )

    async def _void(self) -> None:
        if not self.holds:
            return
        hold = self.rng.choice(self.holds)
        request = mpb.VoidTransferRequest(transfer_id=hold)
        await self._call("void", self.moves.VoidTransfer, request, {"hold": hold})

    async def _reverse(self) -> None:
        await self._reverse_one("reverse", self.posted, 100)

    async def _reverse_one(self, kind: str, originals: list[str], most: int) -> None:
        """A reversal of one of `originals`, all of what remains or 1 to `most`."""
        if not originals:
            return
        original = self.rng.choice(originals)
        amount = self.rng.choice([0, self.rng.randint(1, most)])
        request = mpb.ReverseTransferRequest(transfer_id=original, amount_minor=amount)
        await self._call(
            kind, self.moves.ReverseTransfer, request, {"original": original, "amount": amount}
        )

    async def _delayed(self) -> None:
        """A credit to an account with a funds policy, unavailable for 1 to 5 s."""
        currency = self.rng.choice(sorted(self.plan.funds_accounts))
        credit = self.rng.choice(self.plan.funds_accounts[currency])
        debit = self.rng.choice([a for a in self.plan.accounts[currency] if a != credit])
        amount = self.rng.randint(1, 400)
        delay_s = self.rng.randint(1, 5)
        request = mpb.CreateTransferRequest(
            debit_account_id=debit, credit_account_id=credit, amount_minor=amount,
            currency_code=currency, availability_delay=duration_pb2.Duration(seconds=delay_s),
        )  # fmt: skip
        params = {
            "debit": debit, "credit": credit, "amount": amount, "currency": currency,
            "delay_s": delay_s,
        }  # fmt: skip
        reply = await self._call("delayed", self.moves.CreateTransfer, request, params)
        if reply is not None:
            self.posted.append(reply.transfer.id)

    async def _release(self) -> None:
        """An early release by amount of what the balance shows pending (it may have been
        released meanwhile: then refused, RELEASE_EXCEEDS_PENDING), some with a fee."""
        currency = self.rng.choice(sorted(self.plan.funds_accounts))
        account = self.rng.choice(self.plan.funds_accounts[currency])
        balance = await self._call(
            "read", self.balances.GetBalance, bpb.GetBalanceRequest(account_id=account),
            {"account": account},
        )  # fmt: skip
        pending = balance.balance.pending_availability_minor if balance is not None else 0
        amount = self.rng.randint(1, pending) if pending > 0 else self.rng.randint(1, 20)
        fee = self.rng.randint(1, 5) if self.rng.random() < 0.4 else 0
        request = fpb.ReleaseFundsRequest(account_id=account, amount_minor=amount)
        params: dict[str, Any] = {"account": account, "amount": amount, "currency": currency}
        if fee:
            request.fee_minor = fee
            request.fee_account_id = self.plan.fee_accounts[currency]
            params.update(fee=fee, fee_account=self.plan.fee_accounts[currency])
        await self._call("release", self.funds.ReleaseFunds, request, params)

    async def _batch(self) -> None:
        items, params = [], []
        for _ in range(self.rng.randint(2, 5)):
            currency, debit, credit = self._pair()
            amount = self.rng.randint(1, 200)
            items.append(
                mpb.CreateTransfersRequest.Item(
                    debit_account_id=debit, credit_account_id=credit, amount_minor=amount,
                    currency_code=currency,
                )
            )  # fmt: skip
            params.append({"debit": debit, "credit": credit, "amount": amount})
        request = mpb.CreateTransfersRequest(transfers=items)
        await self._call("batch", self.moves.CreateTransfers, request, {"items": params})

    async def _charge(self) -> None:
        """A customer pays the seller (repaying the reserve first when the seller owes)."""
        sellers = cast(SellerAccounts, self.plan.sellers)
        currency = self.rng.choice(sorted(sellers.sellers))
        debit, credit = self.rng.choice(self.plan.accounts[currency]), sellers.sellers[currency]
        await self._pay("charge", currency, debit, credit, self.charges)

    async def _seller_move(self) -> None:
        """The seller's money moves: out to a customer (the platform's call), or to and
        from the holder's second account acting for the holder (a move back repays).
        Most moves out take all the seller has (as a payout would), so that refunds of
        its charges need the reserve."""
        sellers = cast(SellerAccounts, self.plan.sellers)
        currency = self.rng.choice(sorted(sellers.sellers))
        seller, savings = sellers.sellers[currency], sellers.savings[currency]
        holder: str | None = sellers.holder_id
        kind = self.rng.choice(("out", "out", "save", "back"))
        if kind == "out":
            debit, credit = seller, self.rng.choice(self.plan.accounts[currency])
            holder = None
        else:
            debit, credit = (seller, savings) if kind == "save" else (savings, seller)
        amount = self.rng.randint(1, 300)
        if kind != "back" and self.rng.random() < 0.7:
            balance = await self._call(
                "read", self.balances.GetBalance, bpb.GetBalanceRequest(account_id=seller),
                {"account": seller}, holder,
            )  # fmt: skip
            if balance is not None and balance.balance.available_minor > 0:
                amount = balance.balance.available_minor
        request = mpb.CreateTransferRequest(
            debit_account_id=debit, credit_account_id=credit, amount_minor=amount,
            currency_code=currency,
        )  # fmt: skip
        params = {"debit": debit, "credit": credit, "amount": amount, "currency": currency}
        await self._call("seller_move", self.moves.CreateTransfer, request, params, holder)

    async def _refund(self) -> None:
        """A refund of a charge (all of it, or part): covered when the seller spent it."""
        await self._reverse_one("refund", self.charges, 200)

    async def _refund_batch(self) -> None:
        """Refunds of one to three charges in one batch of reverse_transfer operations."""
        if not self.charges:
            return
        originals = self.rng.sample(self.charges, min(len(self.charges), self.rng.randint(1, 3)))
        items = [{"original": o, "amount": self.rng.choice([0, self.rng.randint(1, 200)])}
                 for o in originals]  # fmt: skip
        reverse = mpb.CreateTransfersRequest.ReverseTransfer
        request = mpb.CreateTransfersRequest(
            operations=[
                mpb.CreateTransfersRequest.Operation(
                    reverse_transfer=reverse(transfer_id=i["original"], amount_minor=i["amount"])
                )
                for i in items
            ]
        )
        await self._call("refund_batch", self.moves.CreateTransfers, request, {"items": items})

    async def _read(self) -> None:
        currency = self.rng.choice(sorted(self.plan.accounts))
        account = self.rng.choice(self.plan.accounts[currency])
        request = bpb.GetBalanceRequest(account_id=account)
        reply = await self._call("read", self.balances.GetBalance, request, {"account": account})
        if reply is not None and reply.balance.available_minor < 0:
            self._write({"op": "read", "outcome": "violation", "account": account,
                         "available_minor": reply.balance.available_minor})  # fmt: skip

    async def _call(
        self, op: str, method: Any, request: Any, params: dict[str, Any], holder: str | None = None
    ) -> Any:
        """Sends `request` (acting for `holder`, `mm-holder`, when given) until answered.
        The request id recorded is the ledger's: `<holder id>/<request id>` for a holder."""
        request_id = None
        metadata = self.md
        if holder is not None:
            metadata = (*self.md, ("mm-holder", holder))
            params = {**params, "holder": holder}
        if hasattr(request, "request_id"):
            request.request_id = uuid.uuid4().hex
            request_id = request.request_id if holder is None else f"{holder}/{request.request_id}"
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                reply = await method(request, metadata=metadata, timeout=ATTEMPT_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                reason = _reason(error)
                if code in RETRYABLE and time.monotonic() - started < RETRY_BUDGET_S:
                    await asyncio.sleep(min(1.0, 0.05 * 2 ** min(attempts, 5)) * self.rng.random())
                    continue
                outcome = "unknown" if code in RETRYABLE else "rejected"
                if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                    outcome = "violation"
                self._write({"op": op, "request_id": request_id, "outcome": outcome,
                             "code": code.name, "reason": reason, "attempts": attempts,
                             **params})  # fmt: skip
                return None
            result = _result(op, reply)
            self._write({"op": op, "request_id": request_id, "outcome": "ack",
                         "attempts": attempts, "result": result, **params})  # fmt: skip
            return reply

    def _write(self, record: dict[str, Any]) -> None:
        record["client"] = self.plan.index
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()


def _reason(error: grpc.aio.AioRpcError) -> str:
    status: Any = rpc_status.from_call(cast(Any, error))
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def _result(op: str, reply: Any) -> dict[str, Any]:
    op = SELLER_OPS.get(op, op)
    if op in ("transfer", "hold", "capture", "partial", "increment", "void", "delayed"):
        t = reply.transfer
        return {
            "id": t.id, "state": t.state, "posted": t.posted_amount_minor,
            "amount": t.amount_minor, "step": t.history[-1].kind,
        }  # fmt: skip
    if op == "reverse":
        return {"id": reply.reversal.id, "amount": reply.reversal.amount_minor}
    if op == "batch":
        return {"ids": [t.id for t in reply.transfers]}
    if op == "release":
        return {
            "released": reply.released_minor,
            "funds": [f.id for f in reply.released],
            "fee_id": reply.fee_transfer.id,
        }
    return {"available": reply.balance.available_minor}
