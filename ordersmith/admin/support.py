"""Support access: staff request, elevate and revoke grants, and work in a tenant through them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from ordersmith.admin.support_access import read_tenant_store, update_tenant_store
from ordersmith.api.access import staff
from ordersmith.api.payloads import given
from ordersmith.api.store import Store, StoreUpdate
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.support_grants import (
    DEFAULT_PAGE_SIZE,
    SupportGrantView,
    elevate_support_grant,
    list_support_grants,
    request_support_grant,
    revoke_support_grant,
)

ANY_STAFF = staff("support", "auditor", "superadmin")
GRANT_HOLDERS = staff("support", "superadmin")


class SupportGrantRequest(msgspec.Struct):
    # Why access is needed: a ticket number and what is being looked at.
    reason: str | None = None
    # How long the grant lasts, 1 to 480; 60 when not given.
    minutes: int | None = None


class SupportGrant(msgspec.Struct):
    id: str
    staff_id: str
    staff_email: str
    tenant_id: str
    tenant_slug: str
    reason: str
    # "read_only" or "read_write"
    access: str
    # The superadmin who made the grant read_write, if one did.
    elevated_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    is_active: bool

    @classmethod
    def of(cls, grant: SupportGrantView) -> SupportGrant:
        return cls(
            str(grant.id),
            str(grant.staff_id),
            grant.staff_email,
            str(grant.tenant_id),
            grant.tenant_slug,
            grant.reason,
            grant.access,
            str(grant.elevated_by) if grant.elevated_by else None,
            grant.created_at,
            grant.expires_at,
            grant.revoked_at,
            grant.is_active,
        )


class SupportGrantList(msgspec.Struct):
    data: list[SupportGrant]
    next_cursor: str | None


@post(
    "/admin/api/v1/tenants/{slug:str}/support-grants",
    operation_id="createSupportGrant",
    summary="Request time-boxed, read-only access to a tenant's data, with a reason.",
    opt=GRANT_HOLDERS,
    tags=["admin"],
    status_code=HTTP_201_CREATED,
)
async def create_grant(
    state: State,
    principal: NamedDependency[Principal],
    slug: FromPath[str],
    data: JSONBody[SupportGrantRequest],
) -> SupportGrant:
    """Open a read-only grant for yourself; the tenant's admins see it and every access under it."""
    grant = await request_support_grant(
        state.database, principal, slug, reason=data.reason, minutes=data.minutes
    )
    return SupportGrant.of(grant)


@get(
    "/admin/api/v1/support-grants",
    operation_id="listAllSupportGrants",
    summary="List support grants, newest first, of one tenant or of all.",
    opt=ANY_STAFF,
    tags=["admin"],
)
async def list_grants(
    state: State,
    tenant: FromQuery[str | None] = None,
    is_active: FromQuery[bool | None] = None,
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> SupportGrantList:
    """Filter with ?tenant=<slug> and ?is_active=true|false; follow next_cursor for more."""
    page = await list_support_grants(
        state.database, tenant_slug=tenant, is_active=is_active, limit=limit, cursor=cursor
    )
    return SupportGrantList([SupportGrant.of(grant) for grant in page.grants], page.next_cursor)


@post(
    "/admin/api/v1/support-grants/{grant_id:str}/elevate",
    operation_id="elevateSupportGrant",
    summary="Let another staff member's active grant change data too.",
    opt=staff("superadmin"),
    tags=["admin"],
    status_code=HTTP_200_OK,
)
async def elevate_grant(
    state: State, principal: NamedDependency[Principal], grant_id: FromPath[str]
) -> SupportGrant:
    """Make a grant read_write, recording who elevated it; never your own grant."""
    return SupportGrant.of(await elevate_support_grant(state.database, principal, grant_id))


@delete(
    "/admin/api/v1/support-grants/{grant_id:str}",
    operation_id="revokeSupportGrant",
    summary="End a support grant now.",
    opt=GRANT_HOLDERS,
    tags=["admin"],
    status_code=HTTP_200_OK,
)
async def revoke_grant(
    state: State, principal: NamedDependency[Principal], grant_id: FromPath[str]
) -> SupportGrant:
    """Its holder or a superadmin may revoke a grant; revoking it again changes nothing."""
    return SupportGrant.of(await revoke_support_grant(state.database, principal, grant_id))


@get(
    "/admin/api/v1/tenants/{slug:str}/store",
    operation_id="getTenantStoreAsStaff",
    summary="Read a tenant's store profile under your support grant.",
    opt=GRANT_HOLDERS,
    tags=["admin"],
)
async def read_store(
    request: Request[Any, Any, Any], state: State, principal: NamedDependency[Principal], slug: FromPath[str]
) -> Store:
    """Needs an active grant of your own on the tenant; the access goes to the tenant's audit trail."""
    profile = await read_tenant_store(
        state.database, principal, slug, method=request.method, path=request.url.path
    )
    return Store.of(profile)


@patch(
    "/admin/api/v1/tenants/{slug:str}/store",
    operation_id="updateTenantStoreAsStaff",
    summary="Change a tenant's store profile under your read_write support grant.",
    opt=GRANT_HOLDERS,
    tags=["admin"],
)
async def change_store(
    request: Request[Any, Any, Any],
    state: State,
    principal: NamedDependency[Principal],
    slug: FromPath[str],
    data: JSONBody[StoreUpdate],
) -> Store:
    """Needs an active read_write grant of your own; the access goes to the tenant's audit trail."""
    profile = await update_tenant_store(
        state.database,
        principal,
        slug,
        given(data),
        method=request.method,
        path=request.url.path,
    )
    return Store.of(profile)


ROUTES = [create_grant, list_grants, elevate_grant, revoke_grant, read_store, change_store]
