"""Releasing an order to fulfillment, and keeping its fulfillment orders in step with its stock.

Releasing a confirmed order with no open hold gives each location that holds stock for
it one fulfillment order, listing the lines reserved there. Releasing again creates only
what is missing; when nothing is missing it changes nothing, so a retried release has no
second effect. Stock reserved later on a released order (an edit, re-routing) is sent to
its locations in the transaction that reserves it.

`assign` is shared with re-routing: it opens (or extends) the live fulfillment order of
each location that holds stock for the order. `sync` moves every live fulfillment
order to the status its stock calls for (`lifecycle.derive`), through the one table.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.fulfillment import lifecycle
from ordersmith.tenants.fulfillment.errors import OrderHeldError, OrderNotReleasableError
from ordersmith.tenants.fulfillment.models import FulfillmentOrder, FulfillmentOrderLine
from ordersmith.tenants.fulfillment.views import (
    FulfillmentOrderView,
    fulfillment_orders_of,
    reserved_by_location,
)
from ordersmith.tenants.inventory.models import Location
from ordersmith.tenants.orders import derived, timeline
from ordersmith.tenants.orders import lifecycle as order_lifecycle
from ordersmith.tenants.orders.models import Order, OrderEvent, OrderLine
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, load_order

FULFILLMENT_ORDER_CREATED = "fulfillment_order.created"
# The timeline entry of a release; with no fulfillment orders when every unit waits for stock.
RELEASED_TO_FULFILLMENT = "released_to_fulfillment"


@dataclass
class Assigned:
    """A fulfillment order `assign` opened or gave more lines to."""

    fulfillment_order_id: uuid.UUID
    location_id: uuid.UUID
    location_code: str
    is_new: bool
    lines: list[dict[str, Any]] = field(default_factory=list)


def check_releasable(view: OrderView, action: str) -> None:
    """A confirmed order with no open hold may go to (or on in) the warehouse; else 409."""
    if view.open_holds:
        raise OrderHeldError(action, view.open_holds)
    if view.order.status != order_lifecycle.CONFIRMED:
        raise OrderNotReleasableError(
            f"an order that is {view.order.status} cannot {action}; only a confirmed order can",
            extensions={"current_status": view.order.status},
        )


async def ever_released(session: AsyncSession, order_id: uuid.UUID) -> bool:
    """Whether the order went to fulfillment: it has had a fulfillment order, or a release recorded."""
    found = await session.scalar(
        select(FulfillmentOrder.id).where(FulfillmentOrder.order_id == order_id).limit(1)
    )
    if found is not None:
        return True
    # Released while every unit waited for stock: no fulfillment order yet, only the release's entry.
    recorded = await session.scalar(
        select(OrderEvent.id)
        .where(OrderEvent.order_id == order_id, OrderEvent.kind == RELEASED_TO_FULFILLMENT)
        .limit(1)
    )
    return recorded is not None


async def _live_fulfillment_orders(session: AsyncSession, order_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """{location id: live fulfillment order id} of an order."""
    rows = await session.execute(
        select(FulfillmentOrder.location_id, FulfillmentOrder.id).where(
            FulfillmentOrder.order_id == order_id, FulfillmentOrder.status.in_(lifecycle.LIVE)
        )
    )
    return {key: value for key, value in rows}


async def assign(
    session: AsyncSession, order_id: uuid.UUID, *, create: bool, only: set[uuid.UUID] | None = None
) -> list[Assigned]:
    """Give each live fulfillment order the lines its location now holds stock for.

    With `create`, a location holding stock without a live fulfillment order gets one
    (`only` narrows that to some locations). The caller holds the order's lock.
    """
    reserved = await reserved_by_location(session, order_id)
    live = await _live_fulfillment_orders(session, order_id)
    by_location: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = defaultdict(list)
    for (line_id, location_id), quantity in reserved.items():
        by_location[location_id].append((line_id, quantity))
    if not by_location:
        return []
    codes = {
        key: value
        for key, value in await session.execute(
            select(Location.id, Location.code).where(Location.id.in_(by_location))
        )
    }
    lines = {
        row.id: row for row in await session.scalars(select(OrderLine).where(OrderLine.order_id == order_id))
    }
    assigned: list[Assigned] = []
    # In location code order, so two releases of one order list the same way.
    for location_id in sorted(by_location, key=lambda item: codes[item]):
        fulfillment_order_id = live.get(location_id)
        is_new = fulfillment_order_id is None
        if is_new:
            if not create or (only is not None and location_id not in only):
                continue
            fulfillment_order_id = uuid7()
            await session.execute(
                insert(FulfillmentOrder).values(
                    id=fulfillment_order_id, order_id=order_id, location_id=location_id, status=lifecycle.OPEN
                )
            )
        assert fulfillment_order_id is not None
        added = list(
            await session.scalars(
                pg_insert(FulfillmentOrderLine)
                .values(
                    [
                        {
                            "id": uuid7(),
                            "fulfillment_order_id": fulfillment_order_id,
                            "order_line_id": line_id,
                        }
                        for line_id, _ in by_location[location_id]
                    ]
                )
                .on_conflict_do_nothing(index_elements=["fulfillment_order_id", "order_line_id"])
                .returning(FulfillmentOrderLine.order_line_id)
            )
        )
        if not added:
            continue
        quantities = dict(by_location[location_id])
        item = Assigned(fulfillment_order_id, location_id, codes[location_id], is_new)
        for line_id in sorted(added, key=lambda key: lines[key].line_number):
            line = lines[line_id]
            item.lines.append(
                {
                    "line_id": str(line_id),
                    "line_number": line.line_number,
                    "sku": line.sku_code,
                    "quantity": quantities[line_id],
                }
            )
        assigned.append(item)
    return assigned


async def sync(session: AsyncSession, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Give each live fulfillment order of a locked order its new lines, then its status.

    Returns the status moves made, as timeline details: [{fulfillment_order_id, location, status}].
    """
    await assign(session, order_id, create=False)
    return await sync_statuses(session, order_id)


@derived.follow_reservations
async def follow_reservations(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Keep a locked order's fulfillment orders in step after a cancellation, an edit or a hold.

    An order already released has its new stock sent at once, as re-routing does: a line an
    edit reserves where a fulfillment order is live joins it, and a location without one
    gets a new one (announced with `fulfillment_order.created`), rather than waiting for
    someone to release the order again. Then every live one takes the status its stock
    calls for. Returns the changes for the order's timeline.
    """
    joined: list[dict[str, Any]] = []
    if await ever_released(session, order_id):
        assigned = await assign(session, order_id, create=True)
        if assigned:
            order = (await session.scalars(select(Order).where(Order.id == order_id))).one()
            await record_events(session, tenant, created_payloads(order, assigned))
        joined = assigned_details(assigned)
    return joined + await sync_statuses(session, order_id)


async def sync_statuses(session: AsyncSession, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Move each live fulfillment order of a locked order to the status its stock calls for."""
    held = await session.scalar(select(Order.open_hold_count).where(Order.id == order_id))
    reserved = await reserved_by_location(session, order_id)
    per_location: dict[uuid.UUID, int] = defaultdict(int)
    for (_, location_id), quantity in reserved.items():
        per_location[location_id] += quantity
    rows = await session.execute(
        select(
            FulfillmentOrder.id,
            FulfillmentOrder.location_id,
            Location.code,
            FulfillmentOrder.status,
            func.coalesce(func.sum(FulfillmentOrderLine.quantity_shipped), 0),
        )
        .join(Location, Location.id == FulfillmentOrder.location_id)
        .outerjoin(FulfillmentOrderLine, FulfillmentOrderLine.fulfillment_order_id == FulfillmentOrder.id)
        .where(FulfillmentOrder.order_id == order_id, FulfillmentOrder.status.in_(lifecycle.LIVE))
        .group_by(FulfillmentOrder.id, Location.code)
        .order_by(Location.code)
    )
    moves = []
    now = dt.datetime.now(dt.UTC)
    for fulfillment_order_id, location_id, code, status, shipped in rows:
        wanted = lifecycle.derive(
            status, reserved=per_location[location_id], shipped=int(shipped), is_held=bool(held)
        )
        if wanted == status:
            continue
        lifecycle.check_transition(status, wanted)
        values: dict[str, Any] = {"status": wanted, "updated_at": now}
        if wanted == lifecycle.CLOSED:
            values["closed_at"] = now
        elif wanted == lifecycle.CANCELLED:
            values["cancelled_at"] = now
        await session.execute(
            update(FulfillmentOrder).where(FulfillmentOrder.id == fulfillment_order_id).values(**values)
        )
        moves.append(
            {
                "fulfillment_order_id": str(fulfillment_order_id),
                "location": code,
                "status": change(status, wanted),
            }
        )
    return moves


def created_payloads(order: Order, assigned: list[Assigned]) -> list[tuple[str, dict[str, Any]]]:
    """One `fulfillment_order.created` event per new fulfillment order."""
    return [
        (
            FULFILLMENT_ORDER_CREATED,
            {
                "order_id": str(order.id),
                "number": order.number,
                "fulfillment_order_id": str(item.fulfillment_order_id),
                "location_id": str(item.location_id),
                "location": item.location_code,
                "lines": [
                    {"line_id": line["line_id"], "sku": line["sku"], "quantity": line["quantity"]}
                    for line in item.lines
                ],
            },
        )
        for item in assigned
        if item.is_new
    ]


def assigned_details(assigned: list[Assigned]) -> list[dict[str, Any]]:
    return [
        {
            "fulfillment_order_id": str(item.fulfillment_order_id),
            "location": item.location_code,
            "is_new": item.is_new,
            "lines": [
                {"line_number": line["line_number"], "sku": line["sku"], "quantity": line["quantity"]}
                for line in item.lines
            ],
        }
        for item in assigned
    ]


async def release_to_fulfillment(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, *, actor: Actor
) -> list[FulfillmentOrderView]:
    """Send a confirmed, unheld order to its locations: one fulfillment order per location."""
    view = await load_order(session, order_id, lock=True)
    check_releasable(view, "be released to fulfillment")
    order = view.order
    # Asked before assigning: the fulfillment orders it opens would answer yes.
    was_released = await ever_released(session, order_id)
    assigned = await assign(session, order_id, create=True)
    moves = await sync(session, order_id)
    details: dict[str, Any] = {"fulfillment_orders": assigned_details(assigned)}
    if not assigned:
        if was_released:
            return await fulfillment_orders_of(session, order_id)
        # Every unit waits for stock: the release is recorded all the same, so the backorder
        # filler sends the units to their location when they arrive.
        details["backordered"] = [
            {"line_number": line.line_number, "sku": line.sku_code, "quantity": line.quantity_backordered}
            for line in view.lines
            if line.quantity_backordered
        ]
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(version=Order.version + 1, updated_at=dt.datetime.now(dt.UTC))
    )
    if moves:
        details["status_changes"] = moves
    await timeline.record(session, order_id, [Entry(RELEASED_TO_FULFILLMENT, details)], actor)
    await record_events(session, tenant, created_payloads(order, assigned))
    return await fulfillment_orders_of(session, order_id)


async def record_moved_stock(
    tenant: TenantContext,
    session: AsyncSession,
    order: Order,
    entries: list[Entry],
    events: list[tuple[str, dict[str, Any]]],
    actor: Actor,
    *,
    was_released: bool,
    new_places: set[uuid.UUID],
) -> None:
    """Finish moving a locked order's stock between locations: fulfillment orders, version, timeline, outbox.

    A released order's units reserved at `new_places` join (or open) those locations'
    fulfillment orders at once, and its fulfillment orders take the status their stock
    calls for; both are named on the last entry. An order not yet released gets them on
    release.
    """
    assigned = await assign(session, order.id, create=was_released, only=new_places)
    if assigned:
        entries[-1].changes["fulfillment_orders"] = assigned_details(assigned)
    # A location left with nothing to ship for the order has its fulfillment order cancelled or closed.
    if moves := await sync_statuses(session, order.id):
        entries[-1].changes["status_changes"] = moves
    await session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(version=Order.version + 1, updated_at=dt.datetime.now(dt.UTC))
    )
    await timeline.record(session, order.id, entries, actor)
    await record_events(session, tenant, events + created_payloads(order, assigned))
