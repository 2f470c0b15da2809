"""What a staff member may do inside a tenant, always through a support grant of their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ordersmith.platform.database import Database
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.support_grants import open_support_access
from ordersmith.tenants.store.service import StoreProfile, get_store_profile, update_store_profile


async def read_tenant_store(
    database: Database, staff: Principal, tenant_slug: str, *, method: str, path: str
) -> StoreProfile:
    """A tenant's store profile, read under the staff member's active grant (audited)."""
    access = await open_support_access(
        database, staff, tenant_slug, needs_write=False, method=method, path=path
    )
    async with database.tenant_session(access.tenant.context) as session:
        return await get_store_profile(access.tenant.context, session)


async def update_tenant_store(
    database: Database,
    staff: Principal,
    tenant_slug: str,
    changes: Mapping[str, Any],
    *,
    method: str,
    path: str,
) -> StoreProfile:
    """Change a tenant's store profile under a read_write grant (audited), as the tenant's own route does.

    `changes` holds the fields the body gave, as for the tenant's route: an absent field
    stays as it is, and a null review threshold turns the review off.
    """
    access = await open_support_access(
        database, staff, tenant_slug, needs_write=True, method=method, path=path
    )
    async with database.tenant_session(access.tenant.context) as session:
        return await update_store_profile(
            database, access.tenant.context, session, changes, actor=staff.actor
        )
