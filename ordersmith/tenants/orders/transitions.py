"""Status changes a person or an integration asks for: completing and archiving an order.

Placing and confirming happen on their own (placement, and the release of the last
hold); cancelling is a quantity change (`cancellation.py`). Each move here goes through
`lifecycle.check_transition`, so an illegal one is 409 `invalid_transition` naming the
current status and what may follow it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders import derived, lifecycle, timeline
from ordersmith.tenants.orders.errors import OrderNotFulfilledError, OrderOnHoldError
from ordersmith.tenants.orders.models import Order
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, cancellable, load_order

ORDER_COMPLETED = "order.completed"
ORDER_ARCHIVED = "order.archived"


async def move(
    tenant: TenantContext, session: AsyncSession, view: OrderView, wanted: str, topic: str, *, actor: Actor
) -> OrderView:
    """Write a checked move to completed or archived: status, its timestamp, version, timeline, event."""
    order = view.order
    current, number = order.status, order.number
    now = dt.datetime.now(dt.UTC)
    stamp = {lifecycle.COMPLETED: "completed_at", lifecycle.ARCHIVED: "archived_at"}[wanted]
    # The timeline first: a person completing the order touches it, and that touch is
    # one of those it completed with.
    await timeline.record(session, order.id, [Entry(wanted, {"status": change(current, wanted)})], actor)
    values = {"status": wanted, stamp: now, "version": Order.version + 1, "updated_at": now}
    if wanted == lifecycle.COMPLETED:
        values["touches_at_completion"] = Order.touch_count
    await session.execute(update(Order).where(Order.id == order.id).values(values))
    await record_events(session, tenant, [(topic, {"order_id": str(order.id), "number": number})])
    return await load_order(session, order.id)


async def complete_order(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, *, actor: Actor
) -> OrderView:
    """Close a confirmed order once everything live on it has shipped and no hold is open."""
    view = await load_order(session, order_id, lock=True)
    order = view.order
    lifecycle.check_transition(order.status, lifecycle.COMPLETED)
    if order.open_hold_count:
        raise OrderOnHoldError(
            f"the order has {order.open_hold_count} open hold(s); release them before completing it",
            extensions={"open_hold_count": order.open_hold_count},
        )
    _, fulfillment = await derived.refresh(session, order_id)
    unshipped = [line for line in view.lines if cancellable(line)]
    if unshipped or fulfillment != "fulfilled":
        raise OrderNotFulfilledError(
            "everything live must ship before the order is completed; still to ship: "
            + ", ".join(
                f"line {line.line_number} ({line.sku_code}) {cancellable(line)}" for line in unshipped
            )
            + "; ship or cancel them first",
            extensions={
                "fulfillment_status": fulfillment,
                "unshipped": [
                    {"line_id": str(line.id), "sku": line.sku_code, "quantity": cancellable(line)}
                    for line in unshipped
                ],
            },
        )
    return await move(tenant, session, view, lifecycle.COMPLETED, ORDER_COMPLETED, actor=actor)


async def archive_order(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, *, actor: Actor
) -> OrderView:
    """File a completed or cancelled order away for good; it stays readable."""
    view = await load_order(session, order_id, lock=True)
    lifecycle.check_transition(view.order.status, lifecycle.ARCHIVED)
    return await move(tenant, session, view, lifecycle.ARCHIVED, ORDER_ARCHIVED, actor=actor)
