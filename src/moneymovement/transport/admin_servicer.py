"""moneymovement.v1.AdminService: tenants and tokens, through the same TenantDirectory as
the `tenants` and `tokens` commands. Who may call it is the interceptor's to check
(transport/admin_auth.py). What each change did goes on the call's one log line (which
carries actor "admin"): domain_event and the ids it touched, never a token."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import grpc
import structlog

from moneymovement.domain.errors import tenant_not_found, token_not_found
from moneymovement.domain.holders import holder_not_found
from moneymovement.service.tenants import TenantDirectory, UnknownHolder, UnknownTenant
from moneymovement.transport import convert_admin as admin_in
from moneymovement.transport.context import current_caller
from moneymovement.transport.convert_common import timestamp
from moneymovement.v1 import admin_service_pb2 as pb
from moneymovement.v1 import admin_service_pb2_grpc as admin_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# How long RevokeToken waits, at most, for the replicas' confirmations (as the CLI does),
# and what it leaves of the caller's deadline to answer in.
REVOCATION_WAIT_S = 5.0
_ANSWER_MARGIN_S = 0.5


class AdminServicer(admin_grpc.AdminServiceServicer):
    """moneymovement.v1.AdminService."""

    def __init__(self, directory: TenantDirectory) -> None:
        self._directory = directory

    async def CreateTenant(
        self, request: pb.CreateTenantRequest, context: Context
    ) -> pb.CreateTenantResponse:
        _, name = admin_in.create_tenant_request(request)
        tenant, created = await self._directory.ensure_tenant(name)
        _tell("tenant_created" if created else "tenant_exists", tenant_id=tenant.id)
        return pb.CreateTenantResponse(tenant=admin_in.tenant_message(tenant), created=created)

    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: Context
    ) -> pb.ListTenantsResponse:
        size = admin_in.list_tenants_request(request)
        page = await self._directory.tenant_page(size, request.page_token)
        return pb.ListTenantsResponse(
            tenants=[admin_in.tenant_message(t) for t in page.items],
            next_page_token=page.next_token,
        )

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: Context
    ) -> pb.CreateTokenResponse:
        _, tenant_id, holder_id = admin_in.create_token_request(request)
        try:
            issued = await self._directory.create_token(
                tenant_id, by_id_only=True, holder_id=holder_id
            )
        except UnknownTenant as error:
            raise tenant_not_found(tenant_id) from error
        except UnknownHolder as error:
            raise holder_not_found(str(holder_id)) from error
        _tell(
            "token_created",
            tenant_id=issued.tenant_id,
            token_id=issued.token_id,
            holder_id=issued.holder_id,
        )
        return admin_in.issued_message(issued)

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: Context
    ) -> pb.ListTokensResponse:
        tenant_id, size = admin_in.list_tokens_request(request)
        try:
            page = await self._directory.token_page(tenant_id, size, request.page_token)
        except UnknownTenant as error:
            raise tenant_not_found(tenant_id) from error
        return pb.ListTokensResponse(
            api_tokens=[admin_in.token_message(t) for t in page.items],
            next_page_token=page.next_token,
        )

    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: Context
    ) -> pb.RevokeTokenResponse:
        _, token_id = admin_in.revoke_token_request(request)
        revocation = await self._directory.revoke_token(token_id, wait_s=self._wait_s())
        if revocation.revoked_at is None:
            raise token_not_found(token_id)
        everywhere = revocation.confirmed >= revocation.servers
        _tell(
            "token_revoked",
            token_id=token_id,
            replicas=revocation.servers,
            replicas_confirmed=revocation.confirmed,
        )
        return pb.RevokeTokenResponse(
            token_id=token_id,
            revoke_time=timestamp(revocation.revoked_at),
            replica_count=revocation.servers,
            confirmed_replica_count=revocation.confirmed,
            all_replicas_confirmed=everywhere,
        )

    def _wait_s(self) -> float:
        """The confirmations' wait: REVOCATION_WAIT_S, or less to answer in the deadline."""
        deadline = current_caller().deadline
        if deadline is None:
            return REVOCATION_WAIT_S
        left = deadline - asyncio.get_running_loop().time() - _ANSWER_MARGIN_S
        return max(0.0, min(REVOCATION_WAIT_S, left))


def _tell(event: str, **fields: object) -> None:
    """Puts what the call did on its canonical log line (the interceptor's)."""
    structlog.contextvars.bind_contextvars(domain_event=event, **fields)
