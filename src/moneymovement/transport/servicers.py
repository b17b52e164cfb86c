"""The three gRPC services: parse and validate, call one use case, convert the result.

Errors are not handled here: domain errors propagate to the interceptor, which owns the
one mapping to gRPC status codes (transport/errors.py).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from moneymovement.domain.errors import DomainError, Reason
from moneymovement.service.accounts import AccountService
from moneymovement.service.balances import BalanceService
from moneymovement.service.transfers import TransferService
from moneymovement.transport import convert
from moneymovement.transport.context import current_caller
from moneymovement.v1 import (
    account_service_pb2 as accounts_pb,
)
from moneymovement.v1 import (
    account_service_pb2_grpc as accounts_grpc,
)
from moneymovement.v1 import (
    balance_service_pb2 as balances_pb,
)
from moneymovement.v1 import (
    balance_service_pb2_grpc as balances_grpc,
)
from moneymovement.v1 import (
    money_movement_service_pb2 as movements_pb,
)
from moneymovement.v1 import (
    money_movement_service_pb2_grpc as movements_grpc,
)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _not_yet(what: str) -> DomainError:
    return DomainError(Reason.NOT_IMPLEMENTED, f"{what} is declared but not served yet")


class AccountServicer(accounts_grpc.AccountServiceServicer):
    """moneymovement.v1.AccountService."""

    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts

    async def CreateAccount(
        self, request: accounts_pb.CreateAccountRequest, context: Context
    ) -> accounts_pb.CreateAccountResponse:
        request_id, new = convert.new_account(request)
        account = await self._accounts.create(current_caller(), request_id, new)
        return accounts_pb.CreateAccountResponse(account=convert.account_message(account))

    async def GetAccount(
        self, request: accounts_pb.GetAccountRequest, context: Context
    ) -> accounts_pb.GetAccountResponse:
        account = await self._accounts.get(current_caller(), convert.account_id(request))
        return accounts_pb.GetAccountResponse(account=convert.account_message(account))

    async def ListAccounts(
        self, request: accounts_pb.ListAccountsRequest, context: Context
    ) -> accounts_pb.ListAccountsResponse:
        where, size = convert.account_query(request)
        page = await self._accounts.list(current_caller(), where, size, request.page_token)
        return accounts_pb.ListAccountsResponse(
            accounts=[convert.account_message(a) for a in page.items],
            next_page_token=page.next_token,
        )

    async def UpdateAccount(
        self, request: accounts_pb.UpdateAccountRequest, context: Context
    ) -> accounts_pb.UpdateAccountResponse:
        request_id, account_id, changes, version = convert.account_update(request)
        account = await self._accounts.update(
            current_caller(), request_id, account_id, changes, version
        )
        return accounts_pb.UpdateAccountResponse(account=convert.account_message(account))

    async def FreezeAccount(
        self, request: accounts_pb.FreezeAccountRequest, context: Context
    ) -> accounts_pb.FreezeAccountResponse:
        account = await self._accounts.freeze(current_caller(), *convert.account_change(request))
        return accounts_pb.FreezeAccountResponse(account=convert.account_message(account))

    async def UnfreezeAccount(
        self, request: accounts_pb.UnfreezeAccountRequest, context: Context
    ) -> accounts_pb.UnfreezeAccountResponse:
        account = await self._accounts.unfreeze(current_caller(), *convert.account_change(request))
        return accounts_pb.UnfreezeAccountResponse(account=convert.account_message(account))

    async def CloseAccount(
        self, request: accounts_pb.CloseAccountRequest, context: Context
    ) -> accounts_pb.CloseAccountResponse:
        account = await self._accounts.close(current_caller(), *convert.account_change(request))
        return accounts_pb.CloseAccountResponse(account=convert.account_message(account))


class BalanceServicer(balances_grpc.BalanceServiceServicer):
    """moneymovement.v1.BalanceService."""

    def __init__(self, balances: BalanceService) -> None:
        self._balances = balances

    async def GetBalance(
        self, request: balances_pb.GetBalanceRequest, context: Context
    ) -> balances_pb.GetBalanceResponse:
        account_id = convert.account_id(request)
        if request.HasField("as_of_time"):
            raise _not_yet("GetBalance with as_of_time")
        [snapshot] = await self._balances.get_many(current_caller(), [account_id])
        return balances_pb.GetBalanceResponse(balance=convert.balance_message(snapshot))

    async def BatchGetBalances(
        self, request: balances_pb.BatchGetBalancesRequest, context: Context
    ) -> balances_pb.BatchGetBalancesResponse:
        snapshots = await self._balances.get_many(current_caller(), convert.balance_ids(request))
        return balances_pb.BatchGetBalancesResponse(
            balances=[convert.balance_message(s) for s in snapshots]
        )

    async def ListEntries(
        self, request: balances_pb.ListEntriesRequest, context: Context
    ) -> balances_pb.ListEntriesResponse:
        raise _not_yet("ListEntries")


class MoneyMovementServicer(movements_grpc.MoneyMovementServiceServicer):
    """moneymovement.v1.MoneyMovementService."""

    def __init__(self, transfers: TransferService) -> None:
        self._transfers = transfers

    async def CreateTransfer(
        self, request: movements_pb.CreateTransferRequest, context: Context
    ) -> movements_pb.CreateTransferResponse:
        request_id, spec = convert.transfer_spec(request)
        transfer = await self._transfers.create(current_caller(), request_id, spec)
        return movements_pb.CreateTransferResponse(transfer=convert.transfer_message(transfer))

    async def GetTransfer(
        self, request: movements_pb.GetTransferRequest, context: Context
    ) -> movements_pb.GetTransferResponse:
        transfer = await self._transfers.get(current_caller(), convert.transfer_id(request))
        return movements_pb.GetTransferResponse(transfer=convert.transfer_message(transfer))

    async def ListTransfers(
        self, request: movements_pb.ListTransfersRequest, context: Context
    ) -> movements_pb.ListTransfersResponse:
        where, size = convert.transfer_query(request)
        page = await self._transfers.list(current_caller(), where, size, request.page_token)
        return movements_pb.ListTransfersResponse(
            transfers=[convert.transfer_message(t) for t in page.items],
            next_page_token=page.next_token,
        )

    async def PostTransfer(
        self, request: movements_pb.PostTransferRequest, context: Context
    ) -> movements_pb.PostTransferResponse:
        raise _not_yet("PostTransfer")

    async def VoidTransfer(
        self, request: movements_pb.VoidTransferRequest, context: Context
    ) -> movements_pb.VoidTransferResponse:
        raise _not_yet("VoidTransfer")

    async def ReverseTransfer(
        self, request: movements_pb.ReverseTransferRequest, context: Context
    ) -> movements_pb.ReverseTransferResponse:
        raise _not_yet("ReverseTransfer")

    async def CreateTransfers(
        self, request: movements_pb.CreateTransfersRequest, context: Context
    ) -> movements_pb.CreateTransfersResponse:
        raise _not_yet("CreateTransfers")
