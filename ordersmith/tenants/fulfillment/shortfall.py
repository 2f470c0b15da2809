"""Stock lost under reservations: moving the orders that held it elsewhere, or holding them.

A damage, a correction or a count can take a location's `on_hand` below what orders
hold there (`reserved`): the units are gone, and the ledger must say so. The adjustment
cannot re-plan those orders itself: it has locked the stock row, and orders are locked
before stock (ADR 0006). So this consumer of `inventory.adjusted` does it afterwards, in
its own transaction and in the lock order: orders still under review give up their
units there first, then confirmed ones the location was not yet asked to ship, then the
rest, the order placed last first within each (first placed, first served), until what
is reserved there fits what is on hand, and at most what this adjustment left uncovered
(a second loss is moved by its own event, under its own name; a count, which states the
real figure, owns everything uncovered). Each one's units are planned at the other active
locations by priority, as a rejection's are (`rejection.py`); what no location has is
backordered under a `stock` hold per order and SKU, which `backorders.py` releases once
nothing of that SKU is backordered in the order. The order's timeline and the outbox
say what moved.

If the orders chosen before locking no longer cover the shortfall once locked (a
shipment took some of their units meanwhile), the transaction is given up and the
broker delivers the event again, to choose afresh.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import Event, consumers, record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.fulfillment import lifecycle as fulfillment_lifecycle
from ordersmith.tenants.fulfillment.models import FulfillmentOrder
from ordersmith.tenants.fulfillment.release import ever_released, record_moved_stock
from ordersmith.tenants.fulfillment.stock import backorder, held_here, plan_elsewhere, reserve_plan, take_here
from ordersmith.tenants.inventory.models import Location, Reservation, StockLevel
from ordersmith.tenants.inventory.reservations import lock_stock
from ordersmith.tenants.inventory.service import STOCK_ADJUSTED, SYSTEM_KINDS
from ordersmith.tenants.orders import derived, holds
from ordersmith.tenants.orders import lifecycle as order_lifecycle
from ordersmith.tenants.orders.lifecycle import OPEN
from ordersmith.tenants.orders.models import Order, OrderHold, OrderLine
from ordersmith.tenants.orders.rules import HoldRequest
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import load_order

CONSUMER_NAME = "fulfillment.stock-shortfall"
# An internal topic: a loss under more orders than one transaction moves; the next delivery goes on.
SHORTFALL_REMAINING = "fulfillment.shortfall_remaining"
BATCH = 50
ORDER_STOCK_LOST = "order.stock_lost"
# Who re-plans: automation, so no touch on the orders it moves.
SHORTFALL = Actor("system", "stock-shortfall")
# The `stock` holds it places name the SKU they wait for: placed by "stock-shortfall:<variant id>".
HOLDER_PREFIX = "stock-shortfall:"


def _holder(variant_id: uuid.UUID) -> Actor:
    """Who places the `stock` hold for one lost SKU of an order: one such hold per order and SKU."""
    return Actor("system", f"{HOLDER_PREFIX}{variant_id}")


class ShortfallChangedError(Exception):
    """The orders chosen no longer hold enough at the location; the broker retries the event."""


async def _shortfall(session: AsyncSession, variant_id: uuid.UUID, location_id: uuid.UUID) -> int:
    """Units reserved at the location beyond what is on hand there (0 when it all fits)."""
    short = await session.scalar(
        select(StockLevel.reserved - StockLevel.on_hand).where(
            StockLevel.variant_id == variant_id, StockLevel.location_id == location_id
        )
    )
    return max(short or 0, 0)


async def _giving_way(
    session: AsyncSession, variant_id: uuid.UUID, location_id: uuid.UUID, short: int
) -> list[uuid.UUID]:
    """The orders that give up units there first, as many as cover `short` units.

    Orders still waiting for confirmation (under review) first, then confirmed orders the
    location has not been asked to ship yet, then those it has (a picker may have their
    units in hand); within each, the order placed last first.
    """
    released_here = (
        select(FulfillmentOrder.id)
        .where(
            FulfillmentOrder.order_id == Reservation.order_id,
            FulfillmentOrder.location_id == location_id,
            FulfillmentOrder.status.in_(fulfillment_lifecycle.LIVE),
        )
        .exists()
    )
    rank = case((Order.status == order_lifecycle.PLACED, 0), (~released_here, 1), else_=2)
    rows = await session.execute(
        select(Reservation.order_id, func.sum(Reservation.quantity), rank)
        .join(Order, Order.id == Reservation.order_id)
        .where(
            Reservation.variant_id == variant_id,
            Reservation.location_id == location_id,
            Reservation.quantity > 0,
        )
        .group_by(Reservation.order_id, Order.placed_at, Order.status)
        .order_by(rank, Order.placed_at.desc(), Reservation.order_id.desc())
    )
    chosen: list[uuid.UUID] = []
    covered = 0
    for order_id, held, _ in rows:
        if covered >= short:
            break
        chosen.append(order_id)
        covered += int(held)
    return chosen


@consumers.consumer(CONSUMER_NAME, STOCK_ADJUSTED, SHORTFALL_REMAINING)
async def reroute_lost_stock(tenant: TenantContext, session: AsyncSession, event: Event) -> None:
    """After a person's adjustment took stock away, move or hold the orders it left without units.

    At most `BATCH` orders a transaction: what they do not cover goes on in an event of
    its own (`SHORTFALL_REMAINING`), delivered next.
    """
    payload = event.payload
    # Each loss moves what it left uncovered, under its own name: a later one's event moves the
    # rest; a count owns everything uncovered when it was made.
    owed = payload.get("shortfall", max(-payload["quantity"], 0))
    if payload["kind"] in SYSTEM_KINDS or owed <= 0:
        return
    variant_id = uuid.UUID(payload["variant_id"])
    location_id = uuid.UUID(payload["location_id"])
    short = min(await _shortfall(session, variant_id, location_id), owed)
    if short == 0:
        return
    candidates = await _giving_way(session, variant_id, location_id, short)
    chosen = candidates[:BATCH]
    # The lock order: the orders (by id), then the SKU's stock rows.
    await session.execute(select(Order.id).where(Order.id.in_(chosen)).order_by(Order.id).with_for_update())
    await lock_stock(session, [variant_id])
    short = min(await _shortfall(session, variant_id, location_id), owed)
    code = await session.scalar(select(Location.code).where(Location.id == location_id))
    assert code is not None
    if payload["kind"] == "count":
        loss = f"count at {code} ({payload['on_hand']} on hand)"
    else:
        loss = f"{payload['kind']} of {payload.get('lost', -payload['quantity'])} at {code}"
    if payload.get("reason"):
        loss += f": {str(payload['reason'])[:300]}"
    for order_id in chosen:
        if short == 0:
            return
        short -= await _move_order(tenant, session, order_id, variant_id, location_id, code, short, loss)
    if short > 0 and len(candidates) > BATCH:
        remaining = {
            **payload,
            "quantity": -short,
            "shortfall": short,
            "lost": payload.get("lost", -payload["quantity"]),
        }
        await record_event(session, tenant, SHORTFALL_REMAINING, remaining)
    elif short > 0:
        raise ShortfallChangedError(
            f"{short} unit(s) reserved at {code} are still not on hand after moving the orders chosen; "
            "they changed meanwhile, so the event is tried again"
        )


async def _move_order(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    variant_id: uuid.UUID,
    location_id: uuid.UUID,
    code: str,
    short: int,
    loss: str,
) -> int:
    """Move up to `short` of this locked order's units away from the location; how many moved."""
    view = await load_order(session, order_id)
    order = view.order
    lines = [line for line in view.lines if line.variant_id == variant_id]
    held = await held_here(session, [line.id for line in lines], location_id)
    was_released = await ever_released(session, order_id)
    entries: list[Entry] = []
    events: list[tuple[str, dict[str, Any]]] = []
    backordered_lines: list[tuple[OrderLine, int]] = []
    new_places: set[uuid.UUID] = set()
    moved_total = 0
    for line in lines:
        take = min(held.get(line.id, 0), short - moved_total)
        if take == 0:
            continue
        moved_total += take
        await take_here(session, line, location_id, take)
        plan = await plan_elsewhere(session, line, location_id, take)
        rerouted = await reserve_plan(session, line, plan, f"re-routed from {code} (stock lost: {loss})")
        new_places.update(allocation.location_id for allocation in plan.allocations)
        backordered = plan.backordered.get(variant_id, 0)
        details: dict[str, Any] = {
            "location": code,
            "line_id": str(line.id),
            "line_number": line.line_number,
            "sku": line.sku_code,
            "quantity": take,
            "loss": loss,
            "rerouted": rerouted,
            "backordered": backordered,
        }
        if backordered:
            await backorder(session, line, backordered)
            backordered_lines.append((line, backordered))
            details["quantity_allocated"] = change(
                line.quantity_allocated, line.quantity_allocated - backordered
            )
            details["quantity_backordered"] = change(
                line.quantity_backordered, line.quantity_backordered + backordered
            )
        entries.append(Entry("stock_lost", details))
        events.append(
            (
                ORDER_STOCK_LOST,
                {
                    "order_id": str(order_id),
                    "number": order.number,
                    "location": code,
                    "line_id": str(line.id),
                    "sku": line.sku_code,
                    "quantity": take,
                    "rerouted": [
                        {"location": item["location"], "quantity": item["quantity"]} for item in rerouted
                    ],
                    "backordered": backordered,
                },
            )
        )
    if moved_total == 0:
        return 0
    await record_moved_stock(
        tenant, session, order, entries, events, SHORTFALL, was_released=was_released, new_places=new_places
    )
    if backordered_lines:
        units = sum(backordered for _, backordered in backordered_lines)
        await hold_for_stock(
            tenant,
            session,
            order_id,
            variant_id,
            f"{backordered_lines[0][0].sku_code}: {units} unit(s) this order held at {code} were lost "
            f"({loss[:400]})",
        )
    await derived.refresh(session, order_id)
    return moved_total


async def hold_for_stock(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, variant_id: uuid.UUID, what: str
) -> uuid.UUID:
    """Hold a locked order until a SKU's backordered units are reserved again; the hold's id.

    One such hold per order and SKU: an open one is kept as it is. `what` says what
    happened to the units; `backorders.py` releases the hold once nothing of the SKU is
    backordered in the order.
    """
    actor = _holder(variant_id)
    existing = await session.scalar(
        select(OrderHold.id).where(
            OrderHold.order_id == order_id,
            OrderHold.released_at.is_(None),
            OrderHold.placed_by_type == actor.type,
            OrderHold.placed_by_id == actor.id,
        )
    )
    if existing is not None:
        return existing
    placed = await holds.place_hold(
        tenant,
        session,
        order_id,
        HoldRequest(
            "stock",
            f"{what[:700]}, and no other location has them, so they are backordered. The hold is released "
            "by itself once stock arrives and they are reserved again; or cancel those units.",
        ),
        actor=actor,
    )
    return placed.hold.id


def _waits_for(hold: OrderHold) -> uuid.UUID | None:
    """The SKU a `stock` hold of this consumer waits for; None for any other hold."""
    placed_by = hold.placed_by_id or ""
    if hold.type != "stock" or hold.placed_by_type != "system" or not placed_by.startswith(HOLDER_PREFIX):
        return None
    return uuid.UUID(placed_by.removeprefix(HOLDER_PREFIX))


async def release_settled_holds(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, actor: Actor, note: str
) -> None:
    """Release the `stock` holds of a locked, open order whose SKU has nothing backordered in it any more."""
    view = await load_order(session, order_id)
    waiting = {
        variant_id: int(units)
        for variant_id, units in await session.execute(
            select(OrderLine.variant_id, func.sum(OrderLine.quantity_backordered))
            .where(OrderLine.order_id == order_id)
            .group_by(OrderLine.variant_id)
        )
    }
    settled = [
        hold
        for hold in view.open_holds
        if (variant_id := _waits_for(hold)) is not None and not waiting.get(variant_id, 0)
    ]
    if settled and view.order.status in OPEN:
        await holds.release_and_confirm(tenant, session, view.order, settled, note=note, actor=actor)
