"""moneymovement.v1.AssetService: parse and validate, call one use case, convert the
result (errors: the interceptor's, transport/errors.py)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from moneymovement.service.assets import AssetService
from moneymovement.transport import convert_assets as assets_in
from moneymovement.transport.context import current_caller
from moneymovement.v1 import asset_service_pb2 as pb
from moneymovement.v1 import asset_service_pb2_grpc as agrpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class AssetServicer(agrpc.AssetServiceServicer):
    """moneymovement.v1.AssetService."""

    def __init__(self, assets: AssetService) -> None:
        self._assets = assets

    async def RegisterAsset(
        self, request: pb.RegisterAssetRequest, context: Context
    ) -> pb.RegisterAssetResponse:
        request_id, command = assets_in.register_request(request)
        asset = await self._assets.register(current_caller(), request_id, command)
        return pb.RegisterAssetResponse(currency=assets_in.asset_message(asset))

    async def ListCurrencies(
        self, request: pb.ListCurrenciesRequest, context: Context
    ) -> pb.ListCurrenciesResponse:
        size = assets_in.page_size(request)
        page = await self._assets.currencies(current_caller(), size, request.page_token)
        return pb.ListCurrenciesResponse(
            currencies=[assets_in.currency_message(c) for c in page.items],
            next_page_token=page.next_token,
        )
