"""Statuses an order derives from its ledgers, never set by hand.

`fulfillment_status` follows the lines' shipped quantities. `payment_status` follows the
payments ledger, which the payments context registers with `derive_payment_status`;
until a store has payments, an order is `unpaid`.

What follows an order's reservations is registered the same way: the fulfillment
context keeps the order's fulfillment orders in step (`follow_reservations`) when a
cancellation, an edit or a hold changes them, in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.tenants.orders.models import Order, OrderLine

PaymentStatusSource = Callable[[AsyncSession, uuid.UUID], Awaitable[str]]
_PAYMENT_STATUS: list[PaymentStatusSource] = []


def derive_payment_status(source: PaymentStatusSource) -> PaymentStatusSource:
    """Register where an order's payment status comes from (the payments ledger)."""
    _PAYMENT_STATUS[:] = [source]
    return source


# Moves stored elsewhere for a locked order whose reservations changed; returns them as
# timeline details (fulfillment: [{fulfillment_order_id, location, status, lines?}]).
ReservationFollower = Callable[[TenantContext, AsyncSession, uuid.UUID], Awaitable[list[dict[str, Any]]]]
_RESERVATION_FOLLOWERS: list[ReservationFollower] = []


def follow_reservations(follower: ReservationFollower) -> ReservationFollower:
    """Register what must follow an order's reservations (the fulfillment orders)."""
    _RESERVATION_FOLLOWERS[:] = [follower]
    return follower


async def reservations_moved(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Bring what follows a locked order's reservations into step; what moved, for its timeline."""
    moves: list[dict[str, Any]] = []
    for follower in _RESERVATION_FOLLOWERS:
        moves += await follower(tenant, session, order_id)
    return moves


def fulfillment_status_of(live_units: int, shipped_units: int) -> str:
    if shipped_units == 0:
        return "unfulfilled"
    return "fulfilled" if shipped_units >= live_units else "partially_fulfilled"


async def refresh(session: AsyncSession, order_id: uuid.UUID) -> tuple[str, str]:
    """Recompute both derived statuses from the ledgers and store them; return them."""
    live, shipped = (
        await session.execute(
            select(
                func.coalesce(func.sum(OrderLine.quantity_ordered - OrderLine.quantity_cancelled), 0),
                func.coalesce(func.sum(OrderLine.quantity_shipped), 0),
            ).where(OrderLine.order_id == order_id)
        )
    ).one()
    fulfillment = fulfillment_status_of(int(live), int(shipped))
    payment = await _PAYMENT_STATUS[0](session, order_id) if _PAYMENT_STATUS else "unpaid"
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(fulfillment_status=fulfillment, payment_status=payment)
    )
    return payment, fulfillment
