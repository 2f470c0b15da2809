"""Locations and stock: available-to-promise per SKU, the adjustment ledger, safety stock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.payloads import given
from ordersmith.platform.database import TenantContext
from ordersmith.platform.entitlement_usage import lock_locations
from ordersmith.platform.entitlements import resolve_entitlements
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.tenants.inventory.models import InventoryAdjustment
from ordersmith.tenants.inventory.models import Location as LocationRow
from ordersmith.tenants.inventory.service import (
    Availability,
    adjust_stock,
    availability,
    create_location,
    get_location,
    ledger,
    list_locations,
    location_id_of,
    set_safety_stock,
    update_location,
)
from ordersmith.tenants.orders.queries import backordered_units

# A location's fields and address are a few hundred characters; anything bigger is 413.
MAX_LOCATION_BODY = 64 * 1024


class Location(msgspec.Struct):
    id: str
    code: str
    name: str
    kind: str
    # Stock is reserved from lower numbers first.
    priority: int
    is_active: bool
    address: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: LocationRow) -> Location:
        return cls(
            str(row.id),
            row.code,
            row.name,
            row.kind,
            row.priority,
            row.is_active,
            row.address,
            row.created_at,
            row.updated_at,
        )


class LocationList(msgspec.Struct):
    data: list[Location]
    next_cursor: str | None = None


class LocationCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: str
    name: str
    kind: str
    priority: int | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    # Postal parts, all optional: line1, line2, city, region, postal_code, country_code.
    address: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class LocationUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: str | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType = msgspec.UNSET
    kind: str | msgspec.UnsetType = msgspec.UNSET
    priority: int | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    address: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class StockAtLocation(msgspec.Struct):
    location_id: str
    location_code: str
    location_active: bool
    on_hand: int
    reserved: int
    safety_stock: int
    # on_hand - reserved - safety_stock, never below zero: what new orders can take here.
    # 0 at an inactive location and for a SKU that is not sellable.
    available: int


class Stock(msgspec.Struct):
    sku: str
    variant_id: str
    allow_backorder: bool
    # False when the variant or its product is inactive: orders refuse the SKU, so nothing
    # is available anywhere, while on_hand, reserved and safety_stock still show the shelf.
    is_sellable: bool
    on_hand: int
    reserved: int
    # The sum of the locations' `available`: active locations only.
    available: int
    # Units live orders wait for beyond what they reserved: where the SKU allows backorders,
    # and units a location turned down that no other location had.
    backordered: int
    locations: list[StockAtLocation]

    @classmethod
    def of(cls, view: Availability, backordered: int) -> Stock:
        return cls(
            view.variant.sku_code,
            str(view.variant.id),
            view.variant.allow_backorder,
            view.is_sellable,
            view.on_hand,
            view.reserved,
            view.available,
            backordered,
            [
                StockAtLocation(
                    str(item.location.id),
                    item.location.code,
                    item.location.is_active,
                    item.on_hand,
                    item.reserved,
                    item.safety_stock,
                    item.available,
                )
                for item in view.locations
            ],
        )


async def _stock(tenant: TenantContext, session: AsyncSession, sku: str) -> Stock:
    """A SKU's stock, with the units orders wait for (read by the orders context, which owns them)."""
    stock = await availability(tenant, session, sku)
    return Stock.of(stock, await backordered_units(tenant, session, stock.variant.id))


class AdjustmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    # From GET /api/v1/locations: one that is no id is 422, an id of no location 404.
    location_id: str
    # receive (+), damage (-), correction (±), or count (what is on the shelf).
    kind: str
    quantity: int
    # Why, for every kind; a blank one is a 422 that says what a reason looks like.
    reason: str


class Adjustment(msgspec.Struct):
    id: str
    variant_id: str
    location_id: str
    kind: str
    # The signed change of on_hand (for a count: counted minus what was recorded).
    quantity: int
    on_hand_after: int
    reason: str
    reference: str | None
    actor_type: str
    actor_id: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: InventoryAdjustment) -> Adjustment:
        return cls(
            str(row.id),
            str(row.variant_id),
            str(row.location_id),
            row.kind,
            row.quantity,
            row.on_hand_after,
            row.reason,
            row.reference,
            row.actor_type,
            row.actor_id,
            row.created_at,
        )


class AdjustmentList(msgspec.Struct):
    data: list[Adjustment]
    next_cursor: str | None


class SafetyStockSet(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    # From GET /api/v1/locations: one that is no id is 422, an id of no location 404.
    location_id: str
    safety_stock: int


@post(
    "/api/v1/locations",
    operation_id="createLocation",
    summary="Add a warehouse or store that holds stock.",
    opt=requires(Permission.INVENTORY_WRITE),
    request_max_body_size=MAX_LOCATION_BODY,
    tags=["inventory"],
)
async def add_location(
    request: Request[Any, Any, Any],
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[LocationCreate],
) -> Response[Location]:
    """A taken code (ignoring case) is 409 `location_code_taken`; one past the plan's, 402 `limit_reached`.

    An `Idempotency-Key` makes a retry safe: it gets the first answer, not `location_code_taken`.
    """
    assert principal.tenant is not None
    tenant = principal.tenant

    async def create() -> Location:
        # Locked before the plan is read: a plan change holds this lock while it checks and
        # writes, so the limit judged here is the plan the store will be on.
        await lock_locations(tenant_session, tenant.id)
        entitlements = await resolve_entitlements(state.database, tenant.id)
        row = await create_location(tenant.context, tenant_session, given(data), entitlements=entitlements)
        return Location.of(row)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/locations",
    operation_id="listLocations",
    summary="List the store's locations in the order stock is reserved from.",
    opt=requires(Permission.INVENTORY_READ),
    tags=["inventory"],
)
async def read_locations(
    principal: NamedDependency[Principal], tenant_session: NamedDependency[AsyncSession]
) -> LocationList:
    assert principal.tenant is not None
    rows = await list_locations(principal.tenant.context, tenant_session)
    return LocationList([Location.of(row) for row in rows])


@get(
    "/api/v1/locations/{location_id:str}",
    operation_id="getLocation",
    summary="Read one location.",
    opt=requires(Permission.INVENTORY_READ),
    tags=["inventory"],
)
async def read_location(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    location_id: FromPath[str],
) -> Location:
    assert principal.tenant is not None
    row = await get_location(principal.tenant.context, tenant_session, location_id_of(location_id))
    return Location.of(row)


@patch(
    "/api/v1/locations/{location_id:str}",
    operation_id="updateLocation",
    summary="Change a location's name, code, kind, priority, address or active flag.",
    opt=requires(Permission.INVENTORY_WRITE),
    request_max_body_size=MAX_LOCATION_BODY,
    tags=["inventory"],
)
async def change_location(
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    location_id: FromPath[str],
    data: JSONBody[LocationUpdate],
) -> Location:
    """An inactive location keeps its stock but no new order reserves there; reactivating one counts
    against the plan's locations."""
    assert principal.tenant is not None
    changes = given(data)
    entitlements = None
    if changes.get("is_active") is True:
        await lock_locations(tenant_session, principal.tenant.id)
        entitlements = await resolve_entitlements(state.database, principal.tenant.id)
    row = await update_location(
        principal.tenant.context,
        tenant_session,
        location_id_of(location_id),
        changes,
        entitlements=entitlements,
    )
    return Location.of(row)


@get(
    "/api/v1/inventory",
    operation_id="getInventory",
    summary="Available-to-promise of one SKU, per location and in total.",
    opt=requires(Permission.INVENTORY_READ),
    tags=["inventory"],
)
async def read_inventory(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    sku: FromQuery[str],
) -> Stock:
    """`available` counts active locations only, and is 0 for a SKU not sellable (`is_sellable`: the
    variant or its product inactive); locations come in the order stock is reserved from; an unknown
    SKU is 404 `sku_not_found`."""
    assert principal.tenant is not None
    return await _stock(principal.tenant.context, tenant_session, sku)


@post(
    "/api/v1/inventory/adjustments",
    operation_id="createInventoryAdjustment",
    summary="Record received, counted, damaged or corrected stock in the ledger.",
    opt=requires(Permission.INVENTORY_WRITE),
    tags=["inventory"],
)
async def add_adjustment(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[AdjustmentCreate],
) -> Response[Adjustment]:
    """on_hand moves by the ledger entry; below zero is refused with 409 `stock_would_go_negative`.

    An `Idempotency-Key` makes a retry safe: a receipt retried after a timeout is counted once.
    """
    assert principal.tenant is not None
    tenant = principal.tenant.context

    async def create() -> Adjustment:
        row = await adjust_stock(
            tenant,
            tenant_session,
            sku=data.sku,
            location_id=data.location_id,
            kind=data.kind,
            quantity=data.quantity,
            reason=data.reason,
            actor=principal.actor,
        )
        return Adjustment.of(row)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/inventory/adjustments",
    operation_id="listInventoryAdjustments",
    summary="The adjustment ledger of one SKU, newest first.",
    opt=requires(Permission.INVENTORY_READ),
    tags=["inventory"],
)
async def read_adjustments(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    sku: FromQuery[str],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> AdjustmentList:
    assert principal.tenant is not None
    page = await ledger(
        principal.tenant.context, tenant_session, sku=sku, page=PageRequest.parse(limit, cursor)
    )
    return AdjustmentList([Adjustment.of(row) for row in page.items], page.next_cursor)


@put(
    "/api/v1/inventory/safety-stock",
    operation_id="setSafetyStock",
    summary="Keep some units of a SKU at a location out of reach of new orders.",
    opt=requires(Permission.INVENTORY_WRITE),
    tags=["inventory"],
)
async def put_safety_stock(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[SafetyStockSet],
) -> Stock:
    """Returns the SKU's stock with the new safety stock applied."""
    assert principal.tenant is not None
    tenant = principal.tenant.context
    await set_safety_stock(
        tenant,
        tenant_session,
        sku=data.sku,
        location_id=data.location_id,
        safety_stock=data.safety_stock,
    )
    return await _stock(tenant, tenant_session, data.sku)


ROUTES = [
    add_location,
    read_locations,
    read_location,
    change_location,
    read_inventory,
    add_adjustment,
    read_adjustments,
    put_safety_stock,
]
