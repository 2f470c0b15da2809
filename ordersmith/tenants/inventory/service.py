"""Inventory services: locations, the adjustment ledger, safety stock, and availability.

on_hand changes only through `adjust_stock`, which appends to the ledger and moves the
running total in the same transaction; reservations live in `reservations.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.entitlement_usage import count_active_locations, lock_locations
from ordersmith.platform.entitlements import Entitlements, enforce_limit
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.platform.plans import Limit
from ordersmith.tenants.catalog.models import Product, Variant
from ordersmith.tenants.inventory.errors import (
    LocationCodeTakenError,
    LocationNotFoundError,
    SkuNotStockedError,
    StockWouldGoNegativeError,
)
from ordersmith.tenants.inventory.models import InventoryAdjustment, Location, StockLevel
from ordersmith.tenants.inventory.reservations import LOCATION_ORDER
from ordersmith.tenants.inventory.rules import (
    MAX_ON_HAND,
    WRITE_OFF_KINDS,
    body_location_id,
    check_adjustment,
    check_location,
    check_safety_stock,
    cleaned_location,
)

LOCATION_CREATED = "location.created"
LOCATION_UPDATED = "location.updated"
STOCK_ADJUSTED = "inventory.adjusted"
SAFETY_STOCK_SET = "inventory.safety_stock_set"
# Ledger kinds written by fulfillment (units leaving) and returns (units put back), never by hand.
SYSTEM_KINDS = ("shipment", "return")


@dataclass(frozen=True)
class LocationStock:
    """One SKU at one location, with what can still be promised there."""

    location: Location
    on_hand: int
    reserved: int
    safety_stock: int
    # Whether the SKU and its product are both active: orders refuse a SKU that is not.
    is_sellable: bool

    @property
    def available(self) -> int:
        """What a new order could take here: nothing of a SKU not for sale, or at an inactive location."""
        if not (self.is_sellable and self.location.is_active):
            return 0
        return max(self.on_hand - self.reserved - self.safety_stock, 0)


@dataclass(frozen=True)
class Availability:
    """Available-to-promise for one SKU, per location and in total."""

    variant: Variant
    is_sellable: bool
    locations: list[LocationStock]

    @property
    def on_hand(self) -> int:
        return sum(item.on_hand for item in self.locations)

    @property
    def reserved(self) -> int:
        return sum(item.reserved for item in self.locations)

    @property
    def available(self) -> int:
        return sum(item.available for item in self.locations)


def _location_missing() -> LocationNotFoundError:
    return LocationNotFoundError("no such location in this store; check the id or list /api/v1/locations")


def _sku_missing(sku: str) -> SkuNotStockedError:
    return SkuNotStockedError(f"no SKU {sku!r} in this store; check the code or search /api/v1/skus")


def location_id_of(text: str) -> uuid.UUID:
    """The location id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _location_missing() from None


def _location_code_taken(code: str) -> LocationCodeTakenError:
    return LocationCodeTakenError(
        f"location code {code!r} is already used in this store (codes ignore case); choose another"
    )


async def _write_location(session: AsyncSession, code: str | None, statement: Any) -> Location:
    try:
        async with session.begin_nested():
            row: Location | None = (await session.scalars(statement)).one_or_none()
    except IntegrityError as error:
        if "uq_locations_code_lower" in str(error.orig):
            raise _location_code_taken(code or "") from None
        raise
    if row is None:
        raise _location_missing()
    return row


async def _check_locations_limit(
    tenant: TenantContext, session: AsyncSession, entitlements: Entitlements | None
) -> None:
    """402 `limit_reached` if one more active location is more than the plan allows."""
    if entitlements is None:
        return
    # One location change at a time per store, so two at once cannot both take the last one.
    await lock_locations(session, tenant.tenant_id)
    await enforce_limit(
        session, tenant, entitlements, Limit.LOCATIONS, current=await count_active_locations(session)
    )


async def create_location(
    tenant: TenantContext,
    session: AsyncSession,
    values: Mapping[str, Any],
    *,
    entitlements: Entitlements | None = None,
) -> Location:
    """Add a warehouse or store; `priority` orders where stock is reserved first (lower first).

    With the store's `entitlements`, an active location past the plan's limit is refused
    (402 `limit_reached`); requests always pass them, set-up scripts and tests may not.
    """
    errors: list[FieldError] = []
    check_location(values, errors, creating=True)
    if errors:
        raise ValidationFailedError("some location fields are invalid; see errors", errors=errors)
    values = cleaned_location(values)
    if values.get("is_active", True):
        await _check_locations_limit(tenant, session, entitlements)
    statement = insert(Location).values(id=uuid7(), **values).returning(Location)
    row = await _write_location(session, values["code"], statement)
    await record_event(session, tenant, LOCATION_CREATED, {"location_id": str(row.id), "code": row.code})
    return row


async def update_location(
    tenant: TenantContext,
    session: AsyncSession,
    location_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    entitlements: Entitlements | None = None,
) -> Location:
    """Change name, code, kind, priority, address or active flag; others stay as they are.

    Reactivating a location counts against the plan's limit as adding one does.
    """
    errors: list[FieldError] = []
    check_location(changes, errors, creating=False)
    if errors:
        raise ValidationFailedError("some location fields are invalid; see errors", errors=errors)
    changes = cleaned_location(changes)
    if changes.get("is_active") is True:
        was_active = await session.scalar(select(Location.is_active).where(Location.id == location_id))
        if was_active is False:
            await _check_locations_limit(tenant, session, entitlements)
    statement = (
        update(Location)
        .where(Location.id == location_id)
        .values(**changes, updated_at=func.now())
        .returning(Location)
    )
    row = await _write_location(session, changes.get("code"), statement)
    await record_event(
        session, tenant, LOCATION_UPDATED, {"location_id": str(row.id), "changed": sorted(changes)}
    )
    return row


async def get_location(tenant: TenantContext, session: AsyncSession, location_id: uuid.UUID) -> Location:
    row = (await session.scalars(select(Location).where(Location.id == location_id))).one_or_none()
    if row is None:
        raise _location_missing()
    return row


async def list_locations(tenant: TenantContext, session: AsyncSession) -> list[Location]:
    """Every location, in the order stock is reserved from: priority, then code.

    A store has a handful of locations (the plan's limit is far below a page), so the
    list is whole.
    """
    return list(await session.scalars(select(Location).order_by(*LOCATION_ORDER)))


async def variant_by_sku(session: AsyncSession, sku: str) -> Variant:
    """The variant whose code is `sku`, ignoring case."""
    row = (
        await session.scalars(select(Variant).where(func.lower(Variant.sku_code) == sku.strip().lower()))
    ).one_or_none()
    if row is None:
        raise _sku_missing(sku)
    return row


async def _locked_stock(session: AsyncSession, variant_id: uuid.UUID, location_id: uuid.UUID) -> StockLevel:
    """The stock row of a SKU at a location, created empty on first use, locked."""
    await session.execute(
        pg_insert(StockLevel)
        .values(variant_id=variant_id, location_id=location_id)
        .on_conflict_do_nothing(index_elements=["variant_id", "location_id"])
    )
    return (
        await session.scalars(
            select(StockLevel)
            .where(StockLevel.variant_id == variant_id, StockLevel.location_id == location_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()


async def adjust_stock(
    tenant: TenantContext,
    session: AsyncSession,
    *,
    sku: str,
    location_id: uuid.UUID | str,
    kind: str,
    quantity: int,
    reason: str,
    actor: Actor,
    reference: str | None = None,
) -> InventoryAdjustment:
    """Append one adjustment to the ledger and move on_hand by it.

    For `count`, `quantity` is what was counted and the ledger records the difference.
    on_hand can never go below zero: such an adjustment is refused whole. A `location_id`
    given as text comes from a request body: one that is no id at all is a field error.
    """
    errors: list[FieldError] = []
    location = body_location_id(location_id, errors)
    check_adjustment(kind, quantity, reason, errors)
    if errors or location is None:
        raise ValidationFailedError("the adjustment is invalid; see errors", errors=errors)
    variant = await variant_by_sku(session, sku)
    await get_location(tenant, session, location)
    stock = await _locked_stock(session, variant.id, location)
    delta = quantity - stock.on_hand if kind == "count" else quantity
    return await _append(
        tenant,
        session,
        variant,
        stock,
        kind=kind,
        delta=delta,
        reason=reason,
        actor=actor,
        reference=reference,
    )


async def record_movement(
    tenant: TenantContext,
    session: AsyncSession,
    *,
    variant_id: uuid.UUID,
    location_id: uuid.UUID,
    kind: str,
    quantity: int,
    reason: str,
    actor: Actor,
    reference: str,
) -> InventoryAdjustment:
    """Move on_hand by a shipment (negative) or a returned unit put back (positive), through the ledger.

    Fulfillment and returns call this inside their own transaction, having locked the
    order and then the stock rows (ADR 0006); a person's adjustments use `adjust_stock`.
    """
    if kind not in SYSTEM_KINDS or quantity == 0:
        raise ValueError(f"a {kind!r} movement of {quantity} is not one the ledger takes from a service")
    stock = await _locked_stock(session, variant_id, location_id)
    return await _append_by_service(tenant, session, stock, kind, quantity, reason, actor, reference)


async def write_off(
    tenant: TenantContext,
    session: AsyncSession,
    *,
    variant_id: uuid.UUID,
    location_id: uuid.UUID,
    kind: str,
    quantity: int,
    reason: str,
    actor: Actor,
    reference: str,
) -> InventoryAdjustment | None:
    """Take units a location turned down off its on_hand, as a `damage` or `correction` by whoever rejected.

    At most what is on hand: units an earlier adjustment already took are not taken twice.
    None when nothing is left to take. The caller has locked the order, then the stock rows.
    """
    if kind not in WRITE_OFF_KINDS or quantity <= 0:
        raise ValueError(f"a {kind!r} write-off of {quantity} is not one the ledger takes")
    stock = await _locked_stock(session, variant_id, location_id)
    taken = min(quantity, stock.on_hand)
    if taken == 0:
        return None
    return await _append_by_service(tenant, session, stock, kind, -taken, reason, actor, reference)


async def _append_by_service(
    tenant: TenantContext,
    session: AsyncSession,
    stock: StockLevel,
    kind: str,
    delta: int,
    reason: str,
    actor: Actor,
    reference: str,
) -> InventoryAdjustment:
    """`_append` for another context's movement of a locked stock row."""
    variant = (await session.scalars(select(Variant).where(Variant.id == stock.variant_id))).one()
    return await _append(
        tenant,
        session,
        variant,
        stock,
        kind=kind,
        delta=delta,
        reason=reason,
        actor=actor,
        reference=reference,
    )


async def _append(
    tenant: TenantContext,
    session: AsyncSession,
    variant: Variant,
    stock: StockLevel,
    *,
    kind: str,
    delta: int,
    reason: str,
    actor: Actor,
    reference: str | None,
) -> InventoryAdjustment:
    """Write one ledger row and move the running total with it; never below zero."""
    location_id = stock.location_id
    after = stock.on_hand + delta
    if after < 0:
        raise StockWouldGoNegativeError(
            f"{variant.sku_code} has {stock.on_hand} on hand at this location; an adjustment of {delta} "
            "would go below zero. Count the stock (kind 'count') to set the real figure."
        )
    if after > MAX_ON_HAND:
        raise ValidationFailedError(
            "the adjustment is invalid; see errors",
            errors=[
                FieldError(
                    "quantity",
                    f"{variant.sku_code} has {stock.on_hand} on hand at this location; {delta} more "
                    f"would pass the most a location can hold ({MAX_ON_HAND:,}). "
                    "Check the quantity, or count the stock.",
                )
            ],
        )
    await session.execute(
        update(StockLevel)
        .where(StockLevel.variant_id == variant.id, StockLevel.location_id == location_id)
        .values(on_hand=after, updated_at=func.now())
    )
    row = (
        await session.scalars(
            insert(InventoryAdjustment)
            .values(
                id=uuid7(),
                variant_id=variant.id,
                location_id=location_id,
                kind=kind,
                quantity=delta,
                on_hand_after=after,
                reason=reason.strip(),
                reference=reference,
                actor_type=actor.type,
                actor_id=actor.id,
            )
            .returning(InventoryAdjustment)
        )
    ).one()
    await record_event(
        session,
        tenant,
        STOCK_ADJUSTED,
        {
            "variant_id": str(variant.id),
            "sku": variant.sku_code,
            "location_id": str(location_id),
            "kind": kind,
            "quantity": delta,
            "on_hand": after,
            "adjustment_id": str(row.id),
            "reason": row.reason,
            # Units orders hold here that this adjustment leaves without stock (fulfillment/shortfall.py):
            # a count states the real figure, so all of them; another kind, at most what it took.
            "shortfall": max(
                0, stock.reserved - after if kind == "count" else min(-delta, stock.reserved - after)
            ),
        },
    )
    return row


async def set_safety_stock(
    tenant: TenantContext,
    session: AsyncSession,
    *,
    sku: str,
    location_id: uuid.UUID | str,
    safety_stock: int,
) -> None:
    """Keep `safety_stock` units at a location out of what orders can take.

    A `location_id` given as text comes from a request body: one that is no id at all is
    a field error, reported with a bad `safety_stock`.
    """
    errors: list[FieldError] = []
    location = body_location_id(location_id, errors)
    check_safety_stock(safety_stock, errors)
    if errors or location is None:
        raise ValidationFailedError("the safety stock is invalid; see errors", errors=errors)
    variant = await variant_by_sku(session, sku)
    await get_location(tenant, session, location)
    stock = await _locked_stock(session, variant.id, location)
    previous = stock.safety_stock
    await session.execute(
        update(StockLevel)
        .where(StockLevel.variant_id == variant.id, StockLevel.location_id == location)
        .values(safety_stock=safety_stock, updated_at=func.now())
    )
    if safety_stock != previous:
        # Lowered, it frees stock that backordered orders may be waiting for (fulfillment/backorders.py).
        await record_event(
            session,
            tenant,
            SAFETY_STOCK_SET,
            {
                "variant_id": str(variant.id),
                "sku": variant.sku_code,
                "location_id": str(location),
                "safety_stock": safety_stock,
                "previous": previous,
            },
        )


async def availability(tenant: TenantContext, session: AsyncSession, sku: str) -> Availability:
    """On hand, reserved, safety stock and available-to-promise per location for one SKU.

    Locations come in the order stock is reserved from. Nothing is available of a SKU
    or product switched off, since orders refuse it; its figures still show the shelf.
    """
    variant = await variant_by_sku(session, sku)
    product_is_active = await session.scalar(
        select(Product.is_active).where(Product.id == variant.product_id)
    )
    is_sellable = variant.is_active and bool(product_is_active)
    rows = await session.execute(
        select(Location, StockLevel.on_hand, StockLevel.reserved, StockLevel.safety_stock)
        .join(StockLevel, StockLevel.location_id == Location.id)
        .where(StockLevel.variant_id == variant.id)
        .order_by(*LOCATION_ORDER)
    )
    return Availability(
        variant,
        is_sellable,
        [
            LocationStock(location, on_hand, reserved, safety, is_sellable)
            for location, on_hand, reserved, safety in rows
        ],
    )


async def ledger(
    tenant: TenantContext, session: AsyncSession, *, sku: str, page: PageRequest
) -> Page[InventoryAdjustment]:
    """A SKU's adjustments at every location, newest first."""
    variant = await variant_by_sku(session, sku)
    query = page.apply(
        select(InventoryAdjustment).where(InventoryAdjustment.variant_id == variant.id),
        InventoryAdjustment.created_at,
        InventoryAdjustment.id,
        newest_first=True,
    )
    rows = list(await session.scalars(query))
    return page.cut(rows, lambda row: (row.created_at, row.id))
