"""The store profile: name, default currency, time zone, the threshold over which orders are reviewed."""

from __future__ import annotations

import msgspec
from litestar import get, patch
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api.access import requires
from ordersmith.api.payloads import given
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.store.service import StoreProfile, get_store_profile, update_store_profile


class Store(msgspec.Struct):
    display_name: str
    default_currency: str
    timezone: str
    # Orders in the default currency whose total is over this (minor units) are placed
    # with a fraud_review hold instead of confirmed; null: no order is held for review.
    review_orders_over_amount: int | None
    # A customer's first order (none placed before) is placed with a fraud_review hold too.
    review_first_orders: bool

    @classmethod
    def of(cls, profile: StoreProfile) -> Store:
        return cls(
            profile.display_name,
            profile.default_currency,
            profile.timezone,
            profile.review_orders_over_amount,
            profile.review_first_orders,
        )


class StoreUpdate(msgspec.Struct, omit_defaults=True):
    # null or absent: unchanged.
    display_name: str | None = None
    default_currency: str | None = None
    timezone: str | None = None
    # Absent: unchanged; null: hold no order for review.
    review_orders_over_amount: int | msgspec.UnsetType | None = msgspec.UNSET
    # null or absent: unchanged.
    review_first_orders: bool | None = None


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
    """The store's name, default currency, time zone and review threshold."""
    assert principal.tenant is not None
    return Store.of(await get_store_profile(principal.tenant.context, tenant_session))


@patch(
    "/api/v1/store",
    operation_id="updateStore",
    summary="Change the store's name, default currency, time zone or review threshold.",
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
        state.database, principal.tenant.context, tenant_session, given(data), actor=principal.actor
    )
    return Store.of(profile)


ROUTES = [read_store, change_store]
