"""Customer follow-ups in one place: where is it, and what is coming back, per order or customer.

"Where is my order?" is answered from the shipments and their tracking; changing and
cancelling reuse the order edit and cancellation services, returning the returns
services. When an agent answers a customer, `log_follow_up` writes it on the order's
timeline, so the contact counts as a touch like any other change a person makes.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.customers.service import customer_ids_for_history
from ordersmith.tenants.fulfillment.views import ShipmentView, shipments_of
from ordersmith.tenants.orders import timeline
from ordersmith.tenants.orders.models import Order
from ordersmith.tenants.orders.timeline import Entry
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.returns import lifecycle as return_lifecycle
from ordersmith.tenants.returns.views import ReturnView, returns_of

ORDER_FOLLOWED_UP = "order.followed_up"
# What the customer asked about.
TOPICS = ("where_is_it", "change", "cancel", "return", "other")
MAX_NOTE = 1_000


@dataclass(frozen=True)
class FollowUp:
    """One order as customer service sees it: its state, every shipment, its returns."""

    order: Order
    shipments: list[ShipmentView]
    returns: list[ReturnView]


async def _follow_ups(
    session: AsyncSession, orders: list[Order], *, statuses: frozenset[str] | None
) -> list[FollowUp]:
    ids = [order.id for order in orders]
    shipments: dict[uuid.UUID, list[ShipmentView]] = defaultdict(list)
    for shipment in await shipments_of(session, ids):
        shipments[shipment.row.order_id].append(shipment)
    returns: dict[uuid.UUID, list[ReturnView]] = defaultdict(list)
    for item in await returns_of(session, ids, statuses=statuses):
        returns[item.row.order_id].append(item)
    return [FollowUp(order, shipments[order.id], returns[order.id]) for order in orders]


async def order_follow_up(tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID) -> FollowUp:
    """An order with all its shipments (tracking included) and all its returns."""
    order = await order_row(session, order_id)
    [follow_up] = await _follow_ups(session, [order], statuses=None)
    return follow_up


async def customer_follow_ups(
    tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID, page: PageRequest
) -> Page[FollowUp]:
    """A customer's orders, newest first, each with its shipments and its open returns."""
    ids = await customer_ids_for_history(tenant, session, customer_id)
    query = page.apply(
        select(Order).where(Order.customer_id.in_(ids)), Order.created_at, Order.id, newest_first=True
    )
    cut = page.cut(list(await session.scalars(query)), lambda row: (row.created_at, row.id))
    return Page(await _follow_ups(session, cut.items, statuses=return_lifecycle.OPEN), cut.next_cursor)


async def log_follow_up(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, *, topic: str, note: str, actor: Actor
) -> FollowUp:
    """Write a customer contact on the order's timeline (a touch when a person answers it)."""
    errors = []
    if topic not in TOPICS:
        errors.append(FieldError("topic", f"must be one of {', '.join(TOPICS)}"))
    if not note.strip() or len(note) > MAX_NOTE:
        errors.append(FieldError("note", f"say what was asked and answered, in 1 to {MAX_NOTE} characters"))
    if errors:
        raise ValidationFailedError("the follow-up is invalid; see errors", errors=errors)
    order = await order_row(session, order_id, lock=True)
    number = order.number
    await timeline.record(
        session, order_id, [Entry("follow_up", {"topic": topic, "note": note.strip()})], actor
    )
    await record_event(
        session, tenant, ORDER_FOLLOWED_UP, {"order_id": str(order_id), "number": number, "topic": topic}
    )
    return await order_follow_up(tenant, session, order_id)
