"""A location turning down units it was asked to ship (damaged, not found), and re-routing them.

In one transaction, order first and then stock (ADR 0006): the units' reservation at the
rejecting location is given back, the planner (`reservations.plan_reservations`) looks
for them at every other active location by priority, and what it finds is reserved
there and added to that location's live fulfillment order (opened if needed). What no
other location has moves to the line's backordered units and the order gets a `stock`
hold with the reason. The reason is on the order's timeline either way.

The rejection may also write the units off (`write_off`: a `damage` for broken units, a
`correction` for units that are not there): they leave the location's on_hand in the same
transaction, as an adjustment by whoever rejected. The location's count is then right, so
what no other location has comes from its own other free units before anything waits,
and a hold for what still waits is the system's, released by itself once the units are
reserved again (`shortfall.hold_for_stock`). Without it the
location still counts units it could not ship, so the hold is whoever rejected: a person
counts the location and then releases the hold; if the units are gone, cancels them and
releases the hold too, since cancelling leaves it open (the backorder filler may reserve
them again meanwhile, but leaves this hold alone).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.fulfillment.errors import OrderNotReleasableError
from ordersmith.tenants.fulfillment.models import FulfillmentOrderLine
from ordersmith.tenants.fulfillment.release import assign, assigned_details, created_payloads, sync_statuses
from ordersmith.tenants.fulfillment.rules import RejectRequest, check_reject, rejected_line
from ordersmith.tenants.fulfillment.shortfall import hold_for_stock
from ordersmith.tenants.fulfillment.stock import (
    backorder,
    check_held,
    held_here,
    plan_at,
    plan_elsewhere,
    reserve_plan,
    take_here,
)
from ordersmith.tenants.fulfillment.views import (
    FulfillmentOrderView,
    fulfillment_orders_of,
    lock_live,
)
from ordersmith.tenants.inventory.models import Location
from ordersmith.tenants.inventory.reservations import lock_stock
from ordersmith.tenants.inventory.service import write_off
from ordersmith.tenants.orders import derived, holds, timeline
from ordersmith.tenants.orders import lifecycle as order_lifecycle
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.rules import HoldRequest
from ordersmith.tenants.orders.timeline import Entry, change

FULFILLMENT_LINE_REJECTED = "fulfillment_order.line_rejected"


@dataclass(frozen=True)
class Rejection:
    """What became of rejected units: where they went, what is backordered, and the order's fulfillment."""

    rerouted: list[dict[str, Any]]
    backordered: int
    written_off: int
    hold_id: uuid.UUID | None
    fulfillment_orders: list[FulfillmentOrderView]


async def reject_line(
    tenant: TenantContext,
    session: AsyncSession,
    fulfillment_order_id: uuid.UUID,
    request: RejectRequest,
    *,
    actor: Actor,
) -> Rejection:
    """Turn down units at this location: re-route them to another one, or backorder and hold."""
    check_reject(request)
    view, fulfillment_order = await lock_live(
        session, fulfillment_order_id, when_closed="it holds nothing to reject"
    )
    order_id = view.order.id
    order = view.order
    if order.status != order_lifecycle.CONFIRMED:
        raise OrderNotReleasableError(
            f"an order that is {order.status} has nothing in fulfillment to reject",
            extensions={"current_status": order.status},
        )
    number = order.number
    lines = {line.id: line for line in view.lines}
    line = lines[rejected_line(request, set(lines))]
    quantity = request.quantity
    location_id = fulfillment_order.location_id
    code = await session.scalar(select(Location.code).where(Location.id == location_id))
    assert code is not None
    reason = request.reason.strip()

    await lock_stock(session, [line.variant_id])
    held = await held_here(session, [line.id], location_id)
    check_held([(line, quantity)], held, code, "reject")
    await take_here(session, line, location_id, quantity)
    written_off = await _write_off(
        tenant,
        session,
        request,
        line,
        location_id,
        reason=f"rejected at {code} for order {number}: {reason[:400]}",
        reference=f"fulfillment_order:{fulfillment_order_id}",
        actor=actor,
    )
    now = dt.datetime.now(dt.UTC)
    await session.execute(
        pg_insert(FulfillmentOrderLine)
        .values(
            id=uuid7(),
            fulfillment_order_id=fulfillment_order_id,
            order_line_id=line.id,
            quantity_rejected=quantity,
        )
        .on_conflict_do_update(
            index_elements=["fulfillment_order_id", "order_line_id"],
            set_={"quantity_rejected": FulfillmentOrderLine.quantity_rejected + quantity, "updated_at": now},
        )
    )
    plan = await plan_elsewhere(session, line, location_id, quantity)
    rerouted = await reserve_plan(session, line, plan, f"re-routed from {code} ({reason})")
    places = {allocation.location_id for allocation in plan.allocations}
    backordered = plan.backordered.get(line.variant_id, 0)
    if backordered and written_off is not None:
        # The write-off put this location's count right, and it refused those units, not its
        # other stock: what no other location has comes from its free units before anything
        # waits (a unit left free here while the order waited would wake nobody).
        here = await plan_at(session, line, location_id, backordered)
        rerouted += await reserve_plan(
            session,
            line,
            here,
            f"taken from {code}'s other free units, the ones rejected there ({reason[:200]}) written off",
        )
        places.update(allocation.location_id for allocation in here.allocations)
        backordered = here.backordered.get(line.variant_id, 0)
    if backordered:
        await backorder(session, line, backordered)
    assigned = await assign(session, order_id, create=True, only=places)
    await session.execute(
        update(Order).where(Order.id == order_id).values(version=Order.version + 1, updated_at=now)
    )
    details: dict[str, Any] = {
        "fulfillment_order_id": str(fulfillment_order_id),
        "location": code,
        "line_id": str(line.id),
        "line_number": line.line_number,
        "sku": line.sku_code,
        "quantity": quantity,
        "reason": reason,
        "rerouted": rerouted,
        "backordered": backordered,
    }
    if written_off is not None:
        details["written_off"] = written_off
    if assigned:
        details["fulfillment_orders"] = assigned_details(assigned)
    # The rejecting location left with nothing for the order has its fulfillment order cancelled.
    if moves := await sync_statuses(session, order_id):
        details["status_changes"] = moves
    if backordered:
        details["quantity_backordered"] = change(
            line.quantity_backordered, line.quantity_backordered + backordered
        )
    await timeline.record(session, order_id, [Entry("fulfillment_line_rejected", details)], actor)
    await record_event(
        session,
        tenant,
        FULFILLMENT_LINE_REJECTED,
        {
            "order_id": str(order_id),
            "number": number,
            "fulfillment_order_id": str(fulfillment_order_id),
            "line_id": str(line.id),
            "sku": line.sku_code,
            "quantity": quantity,
            "reason": reason,
            "rerouted": [{"location": item["location"], "quantity": item["quantity"]} for item in rerouted],
            "backordered": backordered,
            "written_off": written_off,
        },
    )
    for topic, payload in created_payloads(order, assigned):
        await record_event(session, tenant, topic, payload)
    hold_id = None
    if backordered and request.write_off is not None:
        # The count is right again, so stock arriving anywhere is real: the hold releases itself.
        hold_id = await hold_for_stock(
            tenant,
            session,
            order_id,
            line.variant_id,
            f"{line.sku_code}: {backordered} unit(s) rejected at {code} ({reason[:400]}) and written off",
        )
    elif backordered:
        # Held by whoever rejected, for a person to release: the rejecting location still counts
        # the units it could not ship, so stock "arriving" there may be the same missing units.
        hold = await holds.place_hold(
            tenant,
            session,
            order_id,
            HoldRequest(
                "stock",
                f"{line.sku_code}: {backordered} unit(s) rejected at {code} ({reason[:500]}) and no other "
                f"location has them; they are backordered. Count {code} to put its stock right, then "
                "release this hold; if the units are gone, cancel them and release this hold.",
            ),
            actor=actor,
        )
        hold_id = hold.hold.id
    await derived.refresh(session, order_id)
    units_written_off = 0 if written_off is None else written_off["quantity"]
    return Rejection(
        rerouted, backordered, units_written_off, hold_id, await fulfillment_orders_of(session, order_id)
    )


async def _write_off(
    tenant: TenantContext,
    session: AsyncSession,
    request: RejectRequest,
    line: OrderLine,
    location_id: uuid.UUID,
    *,
    reason: str,
    reference: str,
    actor: Actor,
) -> dict[str, Any] | None:
    """Take the rejected units off the location's count when the rejection asks; what was written.

    Their reservation there is already given back, so what other orders hold at the
    location stays covered: the write-off takes only the units this order was to ship.
    """
    if request.write_off is None:
        return None
    adjustment = await write_off(
        tenant,
        session,
        variant_id=line.variant_id,
        location_id=location_id,
        kind=request.write_off,
        quantity=request.quantity,
        reason=reason,
        actor=actor,
        reference=reference,
    )
    if adjustment is None:
        return {"kind": request.write_off, "quantity": 0, "adjustment_id": None}
    return {"kind": request.write_off, "quantity": -adjustment.quantity, "adjustment_id": str(adjustment.id)}
