"""The store profile: name, default currency, time zone."""

from __future__ import annotations

import msgspec
from litestar import get, patch
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api.access import requires
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.store.service import StoreProfile, get_store_profile, update_store_profile


class Store(msgspec.Struct):
    display_name: str
    default_currency: str
    timezone: str

    @classmethod
    def of(cls, profile: StoreProfile) -> Store:
        return cls(profile.display_name, profile.default_currency, profile.timezone)


class StoreUpdate(msgspec.Struct, omit_defaults=True):
    display_name: str | None = None
    default_currency: str | None = None
    timezone: str | None = None


@get(
    "/api/v1/store",
    operation_id="getStore",
    summary="Read the store profile.",
    opt=requires(Permission.SETTINGS_READ),
    tags=["store"],
)
async def read_store(
    principal: NamedDependency[Principal], tenant_session: NamedDependency[AsyncSession]
) -> Store:
    """The store's name, default currency and time zone."""
    assert principal.tenant is not None
    return Store.of(await get_store_profile(principal.tenant.context, tenant_session))


@patch(
    "/api/v1/store",
    operation_id="updateStore",
    summary="Change the store's name, default currency or time zone.",
    opt=requires(Permission.SETTINGS_MANAGE),
    tags=["store"],
)
async def change_store(
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[StoreUpdate],
) -> Store:
    """Update the fields given; the others stay as they are. Changes go to the audit trail."""
    assert principal.tenant is not None
    profile = await update_store_profile(
        state.database,
        principal.tenant.context,
        tenant_session,
        actor=principal.actor,
        display_name=data.display_name,
        default_currency=data.default_currency,
        timezone=data.timezone,
    )
    return Store.of(profile)


ROUTES = [read_store, change_store]
