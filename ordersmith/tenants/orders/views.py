"""What reading an order returns: the order with its lines, reservations and holds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.tenants.inventory.models import Location, Reservation
from ordersmith.tenants.inventory.reservations import LOCATION_ORDER
from ordersmith.tenants.orders.errors import OrderNotFoundError
from ordersmith.tenants.orders.models import Order, OrderHold, OrderLine


@dataclass(frozen=True)
class ReservationView:
    """Units of a line held at a location, and why that location."""

    line_id: uuid.UUID
    location_id: uuid.UUID
    location_code: str
    quantity: int
    reason: str


@dataclass(frozen=True)
class OrderView:
    order: Order
    lines: list[OrderLine]
    reservations: list[ReservationView]
    holds: list[OrderHold]

    @property
    def open_holds(self) -> list[OrderHold]:
        return [hold for hold in self.holds if hold.released_at is None]


def cancellable(line: OrderLine) -> int:
    """Units of a line that can still be cancelled: all but the shipped ones."""
    return line.quantity_pending + line.quantity_allocated + line.quantity_backordered


def order_missing() -> OrderNotFoundError:
    return OrderNotFoundError("no such order in this store; check the id or list /api/v1/orders")


def order_id_of(text: str) -> uuid.UUID:
    """The order id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise order_missing() from None


async def order_row(session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False) -> Order:
    """The order, locked for the rest of the transaction when it is about to change."""
    query = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    row = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise order_missing()
    return row


async def reservation_views(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> list[ReservationView]:
    rows = await session.execute(
        select(
            Reservation.line_id,
            Reservation.location_id,
            Location.code,
            Reservation.quantity,
            Reservation.reason,
        )
        .join(Location, Location.id == Reservation.location_id)
        .join(OrderLine, OrderLine.id == Reservation.line_id)
        .where(Reservation.order_id.in_(order_ids), Reservation.quantity > 0)
        # The order placement lists them in: by line, then by where stock is taken first.
        .order_by(OrderLine.line_number, *LOCATION_ORDER)
    )
    return [ReservationView(*row) for row in rows]


async def load_order(session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False) -> OrderView:
    """The whole order as it stands in this transaction."""
    order = await order_row(session, order_id, lock=lock)
    lines = await session.scalars(
        select(OrderLine)
        .where(OrderLine.order_id == order_id)
        .order_by(OrderLine.line_number)
        .execution_options(populate_existing=True)
    )
    holds = await session.scalars(
        select(OrderHold)
        .where(OrderHold.order_id == order_id)
        .order_by(OrderHold.created_at, OrderHold.id)
        .execution_options(populate_existing=True)
    )
    return OrderView(order, list(lines), await reservation_views(session, [order_id]), list(holds))
