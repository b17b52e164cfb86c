"""moneymovement.v1.PayoutService: parse and validate, call one use case, convert the
result (errors: the interceptor's, transport/errors.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import grpc

from moneymovement.domain import ids
from moneymovement.rails.base import Rail
from moneymovement.service.payouts import PayoutService
from moneymovement.transport import convert_payouts as payouts_in
from moneymovement.transport.context import current_caller
from moneymovement.transport.convert_common import named
from moneymovement.v1 import payout_service_pb2 as pb
from moneymovement.v1 import payout_service_pb2_grpc as pgrpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class PayoutServicer(pgrpc.PayoutServiceServicer):
    """moneymovement.v1.PayoutService."""

    def __init__(self, payouts: PayoutService, rails: Mapping[str, Rail]) -> None:
        self._payouts = payouts
        self._rails = rails

    async def CreateExternalAccount(
        self, request: pb.CreateExternalAccountRequest, context: Context
    ) -> pb.CreateExternalAccountResponse:
        request_id, fields = payouts_in.external_account_request(request, tuple(self._rails))
        external = await self._payouts.create_external_account(
            current_caller(),
            request_id,
            **fields,  # type: ignore[arg-type]
        )
        return pb.CreateExternalAccountResponse(
            external_account=payouts_in.external_account_message(external)
        )

    async def GetExternalAccount(
        self, request: pb.GetExternalAccountRequest, context: Context
    ) -> pb.GetExternalAccountResponse:
        _, external_id = named(request, "id", ids.EXTERNAL_ACCOUNT)
        external = await self._payouts.external_account(current_caller(), external_id)
        return pb.GetExternalAccountResponse(
            external_account=payouts_in.external_account_message(external)
        )

    async def ListExternalAccounts(
        self, request: pb.ListExternalAccountsRequest, context: Context
    ) -> pb.ListExternalAccountsResponse:
        size = payouts_in.page_size(request)
        page = await self._payouts.external_accounts(
            current_caller(), request.fingerprint or None, size, request.page_token
        )
        return pb.ListExternalAccountsResponse(
            external_accounts=[payouts_in.external_account_message(x) for x in page.items],
            next_page_token=page.next_token,
        )

    async def DisableExternalAccount(
        self, request: pb.DisableExternalAccountRequest, context: Context
    ) -> pb.DisableExternalAccountResponse:
        request_id, external_id = named(request, "id", ids.EXTERNAL_ACCOUNT, with_request_id=True)
        external = await self._payouts.disable_external_account(
            current_caller(), request_id, external_id
        )
        return pb.DisableExternalAccountResponse(
            external_account=payouts_in.external_account_message(external)
        )

    async def CreatePayout(
        self, request: pb.CreatePayoutRequest, context: Context
    ) -> pb.CreatePayoutResponse:
        request_id, command = payouts_in.payout_request(request)
        payout = await self._payouts.create_payout(current_caller(), request_id, command)
        return pb.CreatePayoutResponse(payout=payouts_in.payout_message(payout))

    async def GetPayout(
        self, request: pb.GetPayoutRequest, context: Context
    ) -> pb.GetPayoutResponse:
        _, payout_id = named(request, "id", ids.PAYOUT)
        payout = await self._payouts.payout(current_caller(), payout_id)
        return pb.GetPayoutResponse(payout=payouts_in.payout_message(payout))

    async def ListPayouts(
        self, request: pb.ListPayoutsRequest, context: Context
    ) -> pb.ListPayoutsResponse:
        account, state, external, size = payouts_in.payout_listing(request)
        page = await self._payouts.payouts(
            current_caller(), account, state, external, size, request.page_token
        )
        return pb.ListPayoutsResponse(
            payouts=[payouts_in.payout_message(p) for p in page.items],
            next_page_token=page.next_token,
        )

    async def CancelPayout(
        self, request: pb.CancelPayoutRequest, context: Context
    ) -> pb.CancelPayoutResponse:
        request_id, payout_id = named(request, "id", ids.PAYOUT, with_request_id=True)
        payout = await self._payouts.cancel_payout(current_caller(), request_id, payout_id)
        return pb.CancelPayoutResponse(payout=payouts_in.payout_message(payout))

    async def GetInboundTransfer(
        self, request: pb.GetInboundTransferRequest, context: Context
    ) -> pb.GetInboundTransferResponse:
        _, inbound_id = named(request, "id", ids.INBOUND)
        inbound = await self._payouts.inbound_transfer(current_caller(), inbound_id)
        return pb.GetInboundTransferResponse(inbound_transfer=payouts_in.inbound_message(inbound))

    async def ListInboundTransfers(
        self, request: pb.ListInboundTransfersRequest, context: Context
    ) -> pb.ListInboundTransfersResponse:
        size = payouts_in.page_size(request)
        page = await self._payouts.inbound_transfers(
            current_caller(), request.account_id or None, size, request.page_token
        )
        return pb.ListInboundTransfersResponse(
            inbound_transfers=[payouts_in.inbound_message(i) for i in page.items],
            next_page_token=page.next_token,
        )

    async def Reconcile(
        self, request: pb.ReconcileRequest, context: Context
    ) -> pb.ReconcileResponse:
        caller = current_caller()
        rail, lines = payouts_in.reconcile_request(request, tuple(self._rails), caller.tenant_id)
        if not request.lines:
            lines = await self._rails[rail].settlement_report()
        result = await self._payouts.reconcile(caller, rail, lines)
        return payouts_in.reconcile_response(result)
