"""Completing an order on its own once it is fully paid and fully shipped.

Payments, shipments, cancellations and returns all end by calling `settle`: it refreshes
the derived statuses from their ledgers and, when a confirmed order has nothing left to
ship, nothing left to collect and no open hold, completes it as the system (not a touch).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.tenants.orders import derived, lifecycle
from ordersmith.tenants.orders.transitions import ORDER_COMPLETED, move
from ordersmith.tenants.orders.views import load_order

# Payment statuses in which nothing is left to collect: a refund after payment in full does
# not reopen the order, and an overpayment is the merchant's to give back. An order never
# paid in full stays `partially_paid` (or `unpaid`) however much is refunded, so it waits.
SETTLED_PAYMENT = frozenset({"paid", "overpaid", "partially_refunded", "refunded"})


def is_due(status: str, payment_status: str, fulfillment_status: str, *, total: int, open_holds: int) -> bool:
    """Whether an order should complete now: confirmed, unheld, everything shipped and paid for."""
    paid = payment_status in SETTLED_PAYMENT or total == 0
    return status == lifecycle.CONFIRMED and open_holds == 0 and fulfillment_status == "fulfilled" and paid


async def settle(tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID) -> str:
    """Refresh an order's derived statuses and complete it if it is done; its status after."""
    view = await load_order(session, order_id, lock=True)
    payment, fulfillment = await derived.refresh(session, order_id)
    order = view.order
    if not is_due(
        order.status, payment, fulfillment, total=order.total_amount, open_holds=order.open_hold_count
    ):
        return order.status
    await move(tenant, session, view, lifecycle.COMPLETED, ORDER_COMPLETED, actor=SYSTEM)
    return lifecycle.COMPLETED
