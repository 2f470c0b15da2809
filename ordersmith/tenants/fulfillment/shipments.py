"""Shipping: units leave a location, their reservations become stock decrements, all at once.

One transaction, in the lock order every order change uses (ADR 0006): the order row,
then the fulfillment order, then the SKUs' stock rows. Under those locks a shipment:
1. checks the location still holds every unit asked for (409 `not_reserved` or
   `quantity_exceeds_reserved` naming each line; a cancelled line holds nothing);
2. per line, gives up the reservation there (`reserved` down), takes the units off
   `on_hand` through a `shipment` row of the inventory ledger, and moves the line's
   units from allocated to shipped (compare and set: an edit or cancellation that got
   in first turns this into 409 `order_changed`, and everything rolls back);
3. writes the shipment, its lines and packages, refreshes the order's derived statuses
   and its fulfillment orders' statuses, the timeline and the `shipment.created` event;
4. asks payments to capture what shipped when the store captures at shipment.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.fulfillment.errors import ShipmentAlreadyDeliveredError
from ordersmith.tenants.fulfillment.models import (
    FulfillmentOrderLine,
    Shipment,
    ShipmentLine,
    ShipmentPackage,
)
from ordersmith.tenants.fulfillment.release import check_releasable, sync
from ordersmith.tenants.fulfillment.rules import (
    ShipmentRequest,
    check_shipment,
    line_ids,
    past_time_errors,
)
from ordersmith.tenants.fulfillment.stock import check_held, held_here, take_here
from ordersmith.tenants.fulfillment.views import (
    ShipmentView,
    lock_live,
    shipment_row,
    shipment_view,
)
from ordersmith.tenants.inventory.models import Location
from ordersmith.tenants.inventory.reservations import lock_stock
from ordersmith.tenants.inventory.service import record_movement
from ordersmith.tenants.orders import completion, derived, timeline
from ordersmith.tenants.orders.errors import OrderChangedError
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.payments.service import capture_for_shipment

SHIPMENT_CREATED = "shipment.created"
SHIPMENT_DELIVERED = "shipment.delivered"
SHIPMENT_FLOW = "shipped"


def _changed() -> OrderChangedError:
    return OrderChangedError(
        "the order changed while it was being shipped (an edit or a cancellation?); read it and retry"
    )


async def _ship_line(session: AsyncSession, line: OrderLine, quantity: int, now: dt.datetime) -> None:
    """Move the units from allocated to shipped, only if the line still has them allocated."""
    moved = await session.execute(
        update(OrderLine)
        .where(OrderLine.id == line.id, OrderLine.quantity_allocated >= quantity)
        .values(
            quantity_allocated=OrderLine.quantity_allocated - quantity,
            quantity_shipped=OrderLine.quantity_shipped + quantity,
            updated_at=now,
        )
        .returning(OrderLine.id)
        .execution_options(synchronize_session=False)
    )
    if moved.one_or_none() is None:
        raise _changed()


async def create_shipment(
    tenant: TenantContext,
    session: AsyncSession,
    fulfillment_order_id: uuid.UUID,
    request: ShipmentRequest,
    *,
    actor: Actor,
) -> ShipmentView:
    """Ship some or all of what a fulfillment order holds, with tracking and packages."""
    check_shipment(request)
    view, fulfillment_order = await lock_live(
        session,
        fulfillment_order_id,
        when_closed="it has nothing left to ship; read the order's fulfillment orders to find the live one",
    )
    order_id = view.order.id
    check_releasable(view, "ship")
    order = view.order
    number, old_fulfillment = order.number, order.fulfillment_status
    lines = {line.id: line for line in view.lines}
    wanted = [(lines[key], quantity) for key, quantity in line_ids(request.lines, set(lines))]
    location_id = fulfillment_order.location_id
    code = await session.scalar(select(Location.code).where(Location.id == location_id))
    assert code is not None
    await lock_stock(session, [line.variant_id for line, _ in wanted])
    held = await held_here(session, [line.id for line, _ in wanted], location_id)
    check_held(wanted, held, code, "ship")

    now = dt.datetime.now(dt.UTC)
    shipment_id = uuid7()
    reference = f"shipment:{shipment_id}"
    line_changes: list[dict[str, Any]] = []
    for line, quantity in wanted:
        before = line.quantity_shipped
        await _ship_line(session, line, quantity, now)
        await take_here(session, line, location_id, quantity)
        await record_movement(
            tenant,
            session,
            variant_id=line.variant_id,
            location_id=location_id,
            kind="shipment",
            quantity=-quantity,
            reason=f"order {number} shipped",
            actor=actor,
            reference=reference,
        )
        await session.execute(
            pg_insert(FulfillmentOrderLine)
            .values(
                id=uuid7(),
                fulfillment_order_id=fulfillment_order_id,
                order_line_id=line.id,
                quantity_shipped=quantity,
            )
            .on_conflict_do_update(
                index_elements=["fulfillment_order_id", "order_line_id"],
                set_={
                    "quantity_shipped": FulfillmentOrderLine.quantity_shipped + quantity,
                    "updated_at": now,
                },
            )
        )
        line_changes.append(
            {
                "line_id": str(line.id),
                "line_number": line.line_number,
                "sku": line.sku_code,
                "quantity": quantity,
                "quantity_shipped": change(before, before + quantity),
            }
        )
    await session.execute(
        insert(Shipment).values(
            id=shipment_id,
            order_id=order_id,
            fulfillment_order_id=fulfillment_order_id,
            location_id=location_id,
            status=SHIPMENT_FLOW,
            carrier=request.carrier.strip(),
            service=(request.service or "").strip() or None,
            tracking_number=(request.tracking_number or "").strip() or None,
            tracking_url=request.tracking_url,
            shipped_at=request.shipped_at or now,
            created_by_type=actor.type,
            created_by_id=actor.id,
        )
    )
    await session.execute(
        insert(ShipmentLine),
        [
            {"id": uuid7(), "shipment_id": shipment_id, "order_line_id": line.id, "quantity": quantity}
            for line, quantity in wanted
        ],
    )
    await session.execute(
        insert(ShipmentPackage),
        [
            {
                "id": uuid7(),
                "shipment_id": shipment_id,
                "position": position,
                "weight_grams": package.weight_grams,
                "length_mm": package.length_mm,
                "width_mm": package.width_mm,
                "height_mm": package.height_mm,
            }
            for position, package in enumerate(request.packages, start=1)
        ],
    )
    await session.execute(
        update(Order).where(Order.id == order_id).values(version=Order.version + 1, updated_at=now)
    )
    shipped_amount = sum(line.unit_price_amount * quantity for line, quantity in wanted)
    moves = await sync(session, order_id)
    _, fulfillment = await derived.refresh(session, order_id)

    details: dict[str, Any] = {
        "shipment_id": str(shipment_id),
        "fulfillment_order_id": str(fulfillment_order_id),
        "location": code,
        "carrier": request.carrier.strip(),
        "service": (request.service or "").strip() or None,
        "tracking_number": (request.tracking_number or "").strip() or None,
        "tracking_url": request.tracking_url,
        "packages": len(request.packages),
        "lines": line_changes,
        "amount": shipped_amount,
    }
    if fulfillment != old_fulfillment:
        details["fulfillment_status"] = change(old_fulfillment, fulfillment)
    if moves:
        details["status_changes"] = moves
    await timeline.record(session, order_id, [Entry("shipment_created", details)], actor)
    await record_event(
        session,
        tenant,
        SHIPMENT_CREATED,
        {
            "order_id": str(order_id),
            "number": number,
            "shipment_id": str(shipment_id),
            "fulfillment_order_id": str(fulfillment_order_id),
            "location_id": str(location_id),
            "carrier": details["carrier"],
            "tracking_number": details["tracking_number"],
            "tracking_url": details["tracking_url"],
            "lines": [
                {"line_id": item["line_id"], "sku": item["sku"], "quantity": item["quantity"]}
                for item in line_changes
            ],
            "amount": shipped_amount,
            "currency": order.currency,
        },
    )
    # After the shipment is on the timeline: the capture it triggers reads as its consequence.
    # A failed capture holds the order (payments records why); the shipment stands.
    await capture_for_shipment(tenant, session, order_id, shipped_amount, actor=actor)
    await completion.settle(tenant, session, order_id)
    return await shipment_view(session, shipment_id)


async def mark_delivered(
    tenant: TenantContext,
    session: AsyncSession,
    shipment_id: uuid.UUID,
    *,
    delivered_at: dt.datetime | None,
    actor: Actor,
) -> ShipmentView:
    """Record that the carrier delivered a shipment; saying it twice changes nothing."""
    now = dt.datetime.now(dt.UTC)
    if errors := past_time_errors("delivered_at", delivered_at, now, "the time the carrier delivered it"):
        raise ValidationFailedError("the delivery time is invalid; see errors", errors=errors)
    order_id = (await shipment_row(session, shipment_id)).order_id
    order = await order_row(session, order_id, lock=True)
    shipment = await shipment_row(session, shipment_id)
    if delivered_at is not None and delivered_at < shipment.shipped_at:
        shipped = shipment.shipped_at.isoformat()
        raise ValidationFailedError(
            "the delivery time is invalid; see errors",
            errors=[
                FieldError(
                    "delivered_at",
                    f"must not be earlier than the shipment's shipped_at ({shipped}); "
                    "give the time the carrier delivered it",
                )
            ],
        )
    if shipment.status == "delivered":
        if delivered_at is not None and delivered_at != shipment.delivered_at:
            recorded = shipment.delivered_at.isoformat() if shipment.delivered_at else "another time"
            raise ShipmentAlreadyDeliveredError(
                f"this shipment was already recorded delivered at {recorded}; nothing more to do",
                extensions={"delivered_at": recorded},
            )
        return await shipment_view(session, shipment_id)
    # Undated, it was delivered now; but a shipment dated a little ahead (clock skew, or one
    # stored before future dates were refused) was not delivered before it left.
    when = delivered_at or max(now, shipment.shipped_at)
    await session.execute(
        update(Shipment)
        .where(Shipment.id == shipment_id)
        .values(status="delivered", delivered_at=when, updated_at=now)
    )
    await timeline.record(
        session,
        order_id,
        [
            Entry(
                "shipment_delivered",
                {
                    "shipment_id": str(shipment_id),
                    "tracking_number": shipment.tracking_number,
                    "status": change("shipped", "delivered"),
                    "delivered_at": when.isoformat(),
                },
            )
        ],
        actor,
    )
    await record_event(
        session,
        tenant,
        SHIPMENT_DELIVERED,
        {
            "order_id": str(order_id),
            "number": order.number,
            "shipment_id": str(shipment_id),
            "delivered_at": when.isoformat(),
        },
    )
    return await shipment_view(session, shipment_id)
