"""moneymovement.v1.HolderService: parse and validate, call one use case, convert the
result (errors: the interceptor's, transport/errors.py)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from moneymovement.service.holders import HolderService
from moneymovement.transport import convert_holders as holders_in
from moneymovement.transport.context import current_caller
from moneymovement.v1 import holder_service_pb2 as pb
from moneymovement.v1 import holder_service_pb2_grpc as hgrpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class HolderServicer(hgrpc.HolderServiceServicer):
    """moneymovement.v1.HolderService."""

    def __init__(self, holders: HolderService) -> None:
        self._holders = holders

    async def CreateHolder(
        self, request: pb.CreateHolderRequest, context: Context
    ) -> pb.CreateHolderResponse:
        request_id, command = holders_in.create_request(request)
        holder = await self._holders.create(current_caller(), request_id, command)
        return pb.CreateHolderResponse(holder=holders_in.holder_message(holder))

    async def GetHolder(
        self, request: pb.GetHolderRequest, context: Context
    ) -> pb.GetHolderResponse:
        holder = await self._holders.get(current_caller(), holders_in.holder_id(request))
        return pb.GetHolderResponse(holder=holders_in.holder_message(holder))

    async def ListHolders(
        self, request: pb.ListHoldersRequest, context: Context
    ) -> pb.ListHoldersResponse:
        where, size = holders_in.holder_query(request)
        page = await self._holders.list(current_caller(), where, size, request.page_token)
        return pb.ListHoldersResponse(
            holders=[holders_in.holder_message(h) for h in page.items],
            next_page_token=page.next_token,
        )

    async def UpdateHolder(
        self, request: pb.UpdateHolderRequest, context: Context
    ) -> pb.UpdateHolderResponse:
        request_id, command = holders_in.update_request(request)
        holder = await self._holders.update(current_caller(), request_id, command)
        return pb.UpdateHolderResponse(holder=holders_in.holder_message(holder))

    async def GetHolderBalances(
        self, request: pb.GetHolderBalancesRequest, context: Context
    ) -> pb.GetHolderBalancesResponse:
        holder = holders_in.holder_id(request)
        as_of, sums = await self._holders.balances(current_caller(), holder)
        return holders_in.balances_response(as_of, sums)
