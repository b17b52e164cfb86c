"""The five gRPC services: parse and validate, call one use case, convert the result.

Errors are not handled here: domain errors propagate to the interceptor, which owns the
one mapping to gRPC status codes (transport/errors.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from moneymovement.domain.accounts import balance_snapshot
from moneymovement.service.accounts import AccountService
from moneymovement.service.balances import BalanceService
from moneymovement.service.event_stream import EventStream, cursor_of
from moneymovement.service.funds import FundsService
from moneymovement.service.transfers import TransferService
from moneymovement.transport import convert_accounts as accounts_in
from moneymovement.transport import convert_balances as balances_in
from moneymovement.transport import convert_events as events_in
from moneymovement.transport import convert_funds as funds_in
from moneymovement.transport import convert_transfers as transfers_in
from moneymovement.transport.context import current_caller
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import account_service_pb2_grpc as agrpc
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import balance_service_pb2_grpc as bgrpc
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import event_service_pb2_grpc as egrpc
from moneymovement.v1 import funds_service_pb2 as fpb
from moneymovement.v1 import funds_service_pb2_grpc as fgrpc
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
_account = accounts_in.account_message
_transfer = transfers_in.transfer_message


class AccountServicer(agrpc.AccountServiceServicer):
    """moneymovement.v1.AccountService."""

    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts

    async def CreateAccount(
        self, request: apb.CreateAccountRequest, context: Context
    ) -> apb.CreateAccountResponse:
        request_id, new = accounts_in.new_account(request)
        account = await self._accounts.create(current_caller(), request_id, new)
        return apb.CreateAccountResponse(account=_account(account))

    async def GetAccount(
        self, request: apb.GetAccountRequest, context: Context
    ) -> apb.GetAccountResponse:
        account = await self._accounts.get(current_caller(), accounts_in.account_id(request))
        return apb.GetAccountResponse(account=_account(account))

    async def ListAccounts(
        self, request: apb.ListAccountsRequest, context: Context
    ) -> apb.ListAccountsResponse:
        where, size = accounts_in.account_query(request)
        page = await self._accounts.list(current_caller(), where, size, request.page_token)
        return apb.ListAccountsResponse(
            accounts=[_account(a) for a in page.items], next_page_token=page.next_token
        )

    async def UpdateAccount(
        self, request: apb.UpdateAccountRequest, context: Context
    ) -> apb.UpdateAccountResponse:
        request_id, account_id, changes, *versions = accounts_in.account_update(request)
        account = await self._accounts.update(
            current_caller(), request_id, account_id, changes, *versions
        )
        return apb.UpdateAccountResponse(account=_account(account))

    async def FreezeAccount(
        self, request: apb.FreezeAccountRequest, context: Context
    ) -> apb.FreezeAccountResponse:
        request_id, command = accounts_in.freeze_request(request)
        account = await self._accounts.freeze(current_caller(), request_id, command)
        return apb.FreezeAccountResponse(account=_account(account))

    async def UnfreezeAccount(
        self, request: apb.UnfreezeAccountRequest, context: Context
    ) -> apb.UnfreezeAccountResponse:
        change = accounts_in.account_change(request)
        account = await self._accounts.unfreeze(current_caller(), *change)
        return apb.UnfreezeAccountResponse(account=_account(account))

    async def CloseAccount(
        self, request: apb.CloseAccountRequest, context: Context
    ) -> apb.CloseAccountResponse:
        change = accounts_in.account_change(request)
        account = await self._accounts.close(current_caller(), *change)
        return apb.CloseAccountResponse(account=_account(account))


class BalanceServicer(bgrpc.BalanceServiceServicer):
    """moneymovement.v1.BalanceService."""

    def __init__(self, balances: BalanceService) -> None:
        self._balances = balances

    async def GetBalance(
        self, request: bpb.GetBalanceRequest, context: Context
    ) -> bpb.GetBalanceResponse:
        account_id, as_of = balances_in.balance_request(request)
        [snapshot] = await self._balances.get_many(current_caller(), [account_id], as_of)
        return bpb.GetBalanceResponse(balance=balances_in.balance_message(snapshot))

    async def BatchGetBalances(
        self, request: bpb.BatchGetBalancesRequest, context: Context
    ) -> bpb.BatchGetBalancesResponse:
        account_ids, as_of = balances_in.balance_ids(request)
        snapshots = await self._balances.get_many(current_caller(), account_ids, as_of)
        return bpb.BatchGetBalancesResponse(
            balances=[balances_in.balance_message(s) for s in snapshots]
        )

    async def ListEntries(
        self, request: bpb.ListEntriesRequest, context: Context
    ) -> bpb.ListEntriesResponse:
        account_id, start, end, oldest_first, size = balances_in.statement_request(request)
        account, page = await self._balances.statement(
            current_caller(),
            account_id,
            start=start,
            end=end,
            oldest_first=oldest_first,
            size=size,
            token=request.page_token,
        )
        return bpb.ListEntriesResponse(
            entries=[balances_in.entry_message(account, e) for e in page.items],
            next_page_token=page.next_token,
        )


class MoneyMovementServicer(mgrpc.MoneyMovementServiceServicer):
    """moneymovement.v1.MoneyMovementService."""

    def __init__(self, transfers: TransferService) -> None:
        self._transfers = transfers

    async def CreateTransfer(
        self, request: mpb.CreateTransferRequest, context: Context
    ) -> mpb.CreateTransferResponse:
        request_id, spec = transfers_in.transfer_spec(request)
        transfer = await self._transfers.create(current_caller(), request_id, spec)
        return mpb.CreateTransferResponse(transfer=_transfer(transfer))

    async def PostTransfer(
        self, request: mpb.PostTransferRequest, context: Context
    ) -> mpb.PostTransferResponse:
        request_id, hold, amount, final = transfers_in.post_request(request)
        transfer = await self._transfers.post(
            current_caller(), request_id, hold, amount, final=final
        )
        return mpb.PostTransferResponse(transfer=_transfer(transfer))

    async def VoidTransfer(
        self, request: mpb.VoidTransferRequest, context: Context
    ) -> mpb.VoidTransferResponse:
        request_id, hold = transfers_in.void_request(request)
        transfer = await self._transfers.void(current_caller(), request_id, hold)
        return mpb.VoidTransferResponse(transfer=_transfer(transfer))

    async def IncrementHold(
        self, request: mpb.IncrementHoldRequest, context: Context
    ) -> mpb.IncrementHoldResponse:
        request_id, hold, amount = transfers_in.increment_request(request)
        transfer = await self._transfers.increment(current_caller(), request_id, hold, amount)
        return mpb.IncrementHoldResponse(transfer=_transfer(transfer))

    async def ExtendHold(
        self, request: mpb.ExtendHoldRequest, context: Context
    ) -> mpb.ExtendHoldResponse:
        request_id, command = transfers_in.extend_request(request)
        transfer = await self._transfers.extend(current_caller(), request_id, command)
        return mpb.ExtendHoldResponse(transfer=_transfer(transfer))

    async def ReverseTransfer(
        self, request: mpb.ReverseTransferRequest, context: Context
    ) -> mpb.ReverseTransferResponse:
        request_id, reversal = transfers_in.reversal_request(request)
        made, original = await self._transfers.reverse(current_caller(), request_id, reversal)
        return mpb.ReverseTransferResponse(reversal=_transfer(made), original=_transfer(original))

    async def CreateTransfers(
        self, request: mpb.CreateTransfersRequest, context: Context
    ) -> mpb.CreateTransfersResponse:
        request_id, items, operations = transfers_in.batch_specs(request)
        transfers = await self._transfers.create_batch(
            current_caller(), request_id, items, operations=operations
        )
        return mpb.CreateTransfersResponse(transfers=[_transfer(t) for t in transfers])

    async def GetTransfer(
        self, request: mpb.GetTransferRequest, context: Context
    ) -> mpb.GetTransferResponse:
        transfer = await self._transfers.get(current_caller(), transfers_in.transfer_id(request))
        return mpb.GetTransferResponse(transfer=_transfer(transfer))

    async def ListTransfers(
        self, request: mpb.ListTransfersRequest, context: Context
    ) -> mpb.ListTransfersResponse:
        where, size = transfers_in.transfer_query(request)
        page = await self._transfers.list(current_caller(), where, size, request.page_token)
        return mpb.ListTransfersResponse(
            transfers=[_transfer(t) for t in page.items], next_page_token=page.next_token
        )


class EventServicer(egrpc.EventServiceServicer):
    """moneymovement.v1.EventService."""

    def __init__(self, events: EventStream) -> None:
        self._events = events

    async def ListEvents(
        self, request: epb.ListEventsRequest, context: Context
    ) -> epb.ListEventsResponse:
        after, start, where, size = events_in.list_request(request)
        events, through = await self._events.page(current_caller(), after, start, where, size)
        return epb.ListEventsResponse(
            events=[events_in.event_message(e) for e in events], next_cursor=cursor_of(through)
        )

    async def WatchEvents(
        self, request: epb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[epb.WatchEventsResponse]:
        after, start, where = events_in.watch_request(request)
        async for events, through in self._events.watch(current_caller(), after, start, where):
            yield epb.WatchEventsResponse(
                events=[events_in.event_message(e) for e in events], cursor=cursor_of(through)
            )


class FundsServicer(fgrpc.FundsServiceServicer):
    """moneymovement.v1.FundsService."""

    def __init__(self, funds: FundsService) -> None:
        self._funds = funds

    async def ReleaseFunds(
        self, request: fpb.ReleaseFundsRequest, context: Context
    ) -> fpb.ReleaseFundsResponse:
        request_id, command = funds_in.release_request(request)
        release = await self._funds.release(current_caller(), request_id, command)
        response = fpb.ReleaseFundsResponse(
            released=[funds_in.funds_message(f) for f in release.released],
            released_minor=release.released_minor,
            balance=balances_in.balance_message(
                balance_snapshot(release.account, release.account.updated_at, release.schedule)
            ),
        )
        if release.fee_transfer is not None:
            response.fee_transfer.CopyFrom(_transfer(release.fee_transfer))
        return response

    async def ListScheduledFunds(
        self, request: fpb.ListScheduledFundsRequest, context: Context
    ) -> fpb.ListScheduledFundsResponse:
        account_id, size = funds_in.listing(request)
        page = await self._funds.scheduled(
            current_caller(), account_id, request.include_ended, size, request.page_token
        )
        return fpb.ListScheduledFundsResponse(
            funds=[funds_in.funds_message(f) for f in page.items], next_page_token=page.next_token
        )

    async def CreateBalanceMonitor(
        self, request: fpb.CreateBalanceMonitorRequest, context: Context
    ) -> fpb.CreateBalanceMonitorResponse:
        request_id, command = funds_in.monitor_request(request)
        monitor = await self._funds.create_monitor(current_caller(), request_id, command)
        return fpb.CreateBalanceMonitorResponse(monitor=funds_in.monitor_message(monitor))

    async def ListBalanceMonitors(
        self, request: fpb.ListBalanceMonitorsRequest, context: Context
    ) -> fpb.ListBalanceMonitorsResponse:
        account_id = accounts_in.account_id(request)
        monitors = await self._funds.monitors(current_caller(), account_id)
        return fpb.ListBalanceMonitorsResponse(
            monitors=[funds_in.monitor_message(m) for m in monitors]
        )

    async def DeleteBalanceMonitor(
        self, request: fpb.DeleteBalanceMonitorRequest, context: Context
    ) -> fpb.DeleteBalanceMonitorResponse:
        request_id, monitor_id = funds_in.monitor_delete(request)
        monitor = await self._funds.delete_monitor(current_caller(), request_id, monitor_id)
        return fpb.DeleteBalanceMonitorResponse(monitor=funds_in.monitor_message(monitor))

    async def ListPolicyChanges(
        self, request: fpb.ListPolicyChangesRequest, context: Context
    ) -> fpb.ListPolicyChangesResponse:
        account_id, size = funds_in.listing(request)
        page = await self._funds.policy_changes(
            current_caller(), account_id, size, request.page_token
        )
        return fpb.ListPolicyChangesResponse(
            changes=[funds_in.policy_change_message(c) for c in page.items],
            next_page_token=page.next_token,
        )
