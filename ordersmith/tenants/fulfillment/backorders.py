"""Backordered units filled when stock comes free: a receipt or return, a cancellation, an edit.

A line's backordered units wait for stock no location had. This consumer runs after
whatever may have freed stock of a SKU (`inventory.adjusted` with units added, safety
stock lowered, a location switched back on, `order.cancelled`, `order.lines_cancelled`,
`order.edited`) and gives the waiting orders what is now available, oldest placed
first: each unit is reserved by the placement planner's rules (priority order), the
line's units move from backordered to allocated, and a released order's new locations
get fulfillment orders. An order left with nothing backordered has the `stock` holds
the shortfall consumer placed released (a person's hold stays theirs to release). The
timeline and the outbox say what was filled where.

Locks in ADR 0006 order: the orders chosen (by id), then the SKUs' stock rows. New
orders placed meanwhile may take the stock first: filling runs after the change that
freed it, not inside it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import Event, consumers, record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.fulfillment.release import ever_released, record_moved_stock
from ordersmith.tenants.fulfillment.shortfall import release_settled_holds
from ordersmith.tenants.fulfillment.stock import allocate_backordered, plan_elsewhere, reserve_plan
from ordersmith.tenants.inventory.models import Location, StockLevel
from ordersmith.tenants.inventory.reservations import lock_stock
from ordersmith.tenants.inventory.service import LOCATION_UPDATED, SAFETY_STOCK_SET, STOCK_ADJUSTED
from ordersmith.tenants.orders import derived, lifecycle
from ordersmith.tenants.orders.cancellation import ORDER_CANCELLED, ORDER_LINES_CANCELLED
from ordersmith.tenants.orders.edits import ORDER_EDITED
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import load_order

CONSUMER_NAME = "fulfillment.backorder-filler"
ORDER_BACKORDER_FILLED = "order.backorder_filled"
FILLER = Actor("system", "backorder-filler")
# An internal topic: more orders wait than one transaction fills; the next delivery goes on.
BACKORDERS_WAITING = "fulfillment.backorders_waiting"
BATCH = 50
STOCK_ARRIVED_NOTE = "stock arrived: every backordered unit is reserved"
UNITS_GONE_NOTE = "nothing is backordered any more: the units waiting for stock were cancelled or edited away"
_OPEN = (lifecycle.PLACED, lifecycle.CONFIRMED)
_ORDER_TOPICS = (ORDER_CANCELLED, ORDER_LINES_CANCELLED, ORDER_EDITED)


async def _freed_skus(session: AsyncSession, event: Event) -> set[uuid.UUID]:
    """The SKUs whose stock the event may have freed: the adjusted one, the location's, or the lines'."""
    payload = event.payload
    if event.topic == STOCK_ADJUSTED:
        return {uuid.UUID(payload["variant_id"])} if payload["quantity"] > 0 else set()
    if event.topic == SAFETY_STOCK_SET:
        return {uuid.UUID(payload["variant_id"])} if payload["safety_stock"] < payload["previous"] else set()
    if event.topic == BACKORDERS_WAITING:
        return {uuid.UUID(item) for item in payload["variant_ids"]}
    if event.topic == LOCATION_UPDATED:
        return (
            await _waited_for_at(session, uuid.UUID(payload["location_id"]))
            if "is_active" in payload["changed"]
            else set()
        )
    line_ids = [uuid.UUID(item["line_id"]) for item in payload["lines"]]
    return set(await session.scalars(select(OrderLine.variant_id).where(OrderLine.id.in_(line_ids))))


async def _waited_for_at(session: AsyncSession, location_id: uuid.UUID) -> set[uuid.UUID]:
    """The SKUs an active location has free units of while orders wait for them (none if it is off)."""
    rows = await session.scalars(
        select(StockLevel.variant_id)
        .join(Location, Location.id == StockLevel.location_id)
        .where(
            Location.id == location_id,
            Location.is_active,
            StockLevel.on_hand.cast(BigInteger) - StockLevel.reserved - StockLevel.safety_stock > 0,
            select(OrderLine.id)
            .where(OrderLine.variant_id == StockLevel.variant_id, OrderLine.quantity_backordered > 0)
            .exists(),
        )
    )
    return set(rows)


async def _oldest_waiting(session: AsyncSession, variant_ids: set[uuid.UUID]) -> list[uuid.UUID]:
    """Open orders waiting for these SKUs, oldest placed first, as many as what is free could serve."""
    free = {
        variant_id: int(units)
        for variant_id, units in await session.execute(
            select(
                StockLevel.variant_id,
                func.sum(
                    func.greatest(
                        StockLevel.on_hand.cast(BigInteger) - StockLevel.reserved - StockLevel.safety_stock, 0
                    )
                ),
            )
            .join(Location, Location.id == StockLevel.location_id)
            .where(StockLevel.variant_id.in_(variant_ids), Location.is_active)
            .group_by(StockLevel.variant_id)
        )
    }
    if not any(free.values()):
        return []
    rows = await session.execute(
        select(OrderLine.order_id, OrderLine.variant_id, OrderLine.quantity_backordered)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            OrderLine.variant_id.in_(variant_ids),
            OrderLine.quantity_backordered > 0,
            Order.status.in_(_OPEN),
        )
        .order_by(Order.placed_at, Order.id, OrderLine.line_number)
    )
    chosen: list[uuid.UUID] = []
    for order_id, variant_id, waiting in rows:
        if free.get(variant_id, 0) <= 0:
            continue
        free[variant_id] -= waiting
        if order_id not in chosen:
            chosen.append(order_id)
    return chosen


@consumers.consumer(
    CONSUMER_NAME,
    BACKORDERS_WAITING,
    STOCK_ADJUSTED,
    SAFETY_STOCK_SET,
    LOCATION_UPDATED,
    ORDER_CANCELLED,
    ORDER_LINES_CANCELLED,
    ORDER_EDITED,
)
async def fill_backorders(tenant: TenantContext, session: AsyncSession, event: Event) -> None:
    """Give orders waiting for a SKU the stock the event freed, oldest placed first.

    At most `BATCH` orders a transaction: if more wait, an event of its own brings the
    rest to the next delivery. A cancellation or an edit may have taken away what the
    order itself waited for, so its own shortfall holds are looked at too.
    """
    variant_ids = await _freed_skus(session, event)
    changed = uuid.UUID(event.payload["order_id"]) if event.topic in _ORDER_TOPICS else None
    waiting = await _oldest_waiting(session, variant_ids) if variant_ids else []
    chosen = waiting[:BATCH]
    locked = set(chosen) | ({changed} if changed else set())
    if not locked:
        return
    await session.execute(select(Order.id).where(Order.id.in_(locked)).order_by(Order.id).with_for_update())
    await lock_stock(session, variant_ids)
    for order_id in chosen:
        await _fill_order(tenant, session, order_id, variant_ids)
    # The rest goes on even if a race left this batch nothing: the next delivery chooses afresh,
    # and ends once nothing is free for anyone waiting.
    if len(waiting) > BATCH:
        await record_event(
            session, tenant, BACKORDERS_WAITING, {"variant_ids": sorted(str(item) for item in variant_ids)}
        )
    if changed is not None:
        await release_settled_holds(tenant, session, changed, FILLER, UNITS_GONE_NOTE)


async def _fill_order(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, variant_ids: set[uuid.UUID]
) -> None:
    """Reserve what is free now for this locked order's backordered lines of these SKUs."""
    view = await load_order(session, order_id)
    order = view.order
    if order.status not in _OPEN:
        return
    was_released = await ever_released(session, order_id)
    entries: list[Entry] = []
    events: list[tuple[str, dict[str, Any]]] = []
    new_places: set[uuid.UUID] = set()
    for line in view.lines:
        if line.variant_id not in variant_ids or line.quantity_backordered == 0:
            continue
        plan = await plan_elsewhere(session, line, None, line.quantity_backordered)
        if not plan.allocations:
            continue
        reserved = await reserve_plan(session, line, plan, "backorder filled")
        new_places.update(allocation.location_id for allocation in plan.allocations)
        take = sum(allocation.quantity for allocation in plan.allocations)
        await allocate_backordered(session, line, take)
        entries.append(
            Entry(
                "backorder_filled",
                {
                    "line_id": str(line.id),
                    "line_number": line.line_number,
                    "sku": line.sku_code,
                    "quantity": take,
                    "reservations": reserved,
                    "quantity_backordered": change(
                        line.quantity_backordered, line.quantity_backordered - take
                    ),
                    "quantity_allocated": change(line.quantity_allocated, line.quantity_allocated + take),
                },
            )
        )
        events.append(
            (
                ORDER_BACKORDER_FILLED,
                {
                    "order_id": str(order_id),
                    "number": order.number,
                    "line_id": str(line.id),
                    "sku": line.sku_code,
                    "quantity": take,
                    "reservations": [
                        {"location": item["location"], "quantity": item["quantity"]} for item in reserved
                    ],
                    "backordered": line.quantity_backordered - take,
                },
            )
        )
    # Released first, so that the fulfillment orders the move opens or touches are not put on hold.
    await release_settled_holds(tenant, session, order_id, FILLER, STOCK_ARRIVED_NOTE)
    if not entries:
        return
    await record_moved_stock(
        tenant, session, order, entries, events, FILLER, was_released=was_released, new_places=new_places
    )
    await derived.refresh(session, order_id)
