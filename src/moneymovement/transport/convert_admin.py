"""AdminService messages to arguments and back (docs/operations.md, "Administration over
gRPC")."""

from __future__ import annotations

from moneymovement.domain import ids
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.validation import Checker
from moneymovement.service.tenants import IssuedToken, TenantInfo, TokenInfo
from moneymovement.transport.convert_common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    named,
    timestamp,
)
from moneymovement.v1 import admin_service_pb2 as pb

# The tenants table's limit on a name.
MAX_TENANT_NAME_LENGTH = 100


def create_tenant_request(request: pb.CreateTenantRequest) -> tuple[str, str]:
    """CreateTenant's request id and tenant name."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    name = check.text("name", request.name, MAX_TENANT_NAME_LENGTH)
    if not name:
        check.fail("name", FieldReason.REQUIRED, "is required")
    check.raise_if_any()
    return request_id, name


def list_tenants_request(request: pb.ListTenantsRequest) -> int:
    """ListTenants' page size (its token is the directory's to check)."""
    check = Checker()
    size = _page_size(check, request.page_size)
    check.raise_if_any()
    return size


def create_token_request(request: pb.CreateTokenRequest) -> tuple[str, str, str | None]:
    """CreateToken's request id, tenant id and holder id (None: the platform's token)."""
    request_id, tenant_id = named(request, "tenant_id", ids.TENANT, with_request_id=True)
    if not request.holder_id:
        return request_id, tenant_id, None
    check = Checker()
    holder_id = check.resource_id("holder_id", request.holder_id, ids.HOLDER)
    check.raise_if_any()
    return request_id, tenant_id, holder_id


def list_tokens_request(request: pb.ListTokensRequest) -> tuple[str, int]:
    """ListTokens' tenant id and page size."""
    check = Checker()
    tenant_id = check.resource_id("tenant_id", request.tenant_id, ids.TENANT)
    size = _page_size(check, request.page_size)
    check.raise_if_any()
    return tenant_id, size


def revoke_token_request(request: pb.RevokeTokenRequest) -> tuple[str, str]:
    """RevokeToken's request id and token id."""
    return named(request, "token_id", ids.TOKEN, with_request_id=True)


def _page_size(check: Checker, value: int) -> int:
    return check.page_size("page_size", value, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)


def tenant_message(tenant: TenantInfo) -> pb.Tenant:
    return pb.Tenant(
        tenant_id=tenant.id,
        name=tenant.name,
        create_time=timestamp(tenant.created_at),
        live_token_count=tenant.live_tokens,
    )


def token_message(token: TokenInfo) -> pb.ApiToken:
    message = pb.ApiToken(
        token_id=token.id,
        tenant_id=token.tenant_id,
        create_time=timestamp(token.created_at),
        holder_id=token.holder_id or "",
    )
    if token.revoked_at is not None:
        message.revoke_time.CopyFrom(timestamp(token.revoked_at))
    return message


def issued_message(issued: IssuedToken) -> pb.CreateTokenResponse:
    """The new token: its id and time, and the token itself (shown this once)."""
    message = pb.ApiToken(
        token_id=issued.token_id, tenant_id=issued.tenant_id, holder_id=issued.holder_id or ""
    )
    if issued.created_at is not None:
        message.create_time.CopyFrom(timestamp(issued.created_at))
    return pb.CreateTokenResponse(api_token=message, bearer_token=issued.token)
