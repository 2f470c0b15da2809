"""Stock held for an order at one location: checking it, taking it, moving it elsewhere.

Placement and edits reserve through `inventory.reservations` and release from the
last-chosen location first; fulfillment works on one named location, so it reads and
changes that location's reservation rows itself and moves the `reserved` totals with
`reservations.move_reserved`. The caller has locked the order and then the SKUs' stock
rows (`reservations.lock_stock`), in that order (ADR 0006).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.ids import uuid7
from ordersmith.tenants.fulfillment.errors import NotReservedError, QuantityExceedsReservedError
from ordersmith.tenants.inventory.models import Location, Reservation, StockLevel
from ordersmith.tenants.inventory.reservations import Demand, Plan, StockRow, move_reserved, plan_reservations
from ordersmith.tenants.orders.errors import OrderChangedError
from ordersmith.tenants.orders.models import OrderLine


async def held_here(
    session: AsyncSession, line_ids: Sequence[uuid.UUID], location_id: uuid.UUID
) -> dict[uuid.UUID, int]:
    """Units each line holds at this location, its reservation rows locked."""
    rows = await session.execute(
        select(Reservation.line_id, Reservation.quantity)
        .where(
            Reservation.line_id.in_(line_ids),
            Reservation.location_id == location_id,
            Reservation.quantity > 0,
        )
        .order_by(Reservation.id)
        .with_for_update()
    )
    held: dict[uuid.UUID, int] = {}
    for line_id, quantity in rows:
        held[line_id] = held.get(line_id, 0) + quantity
    return held


def check_held(
    wanted: Sequence[tuple[OrderLine, int]], held: dict[uuid.UUID, int], location_code: str, action: str
) -> None:
    """409 unless this location holds every unit asked for, naming each line that falls short."""
    short = [
        (line, quantity, held.get(line.id, 0)) for line, quantity in wanted if quantity > held.get(line.id, 0)
    ]
    if not short:
        return
    details = [
        {
            "line_id": str(line.id),
            "line_number": line.line_number,
            "sku": line.sku_code,
            "requested": quantity,
            "reserved": here,
            "location": location_code,
            "quantity_cancelled": line.quantity_cancelled,
            "quantity_shipped": line.quantity_shipped,
        }
        for line, quantity, here in short
    ]
    described = "; ".join(
        f"line {line.line_number} ({line.sku_code}): {quantity} asked, {here} reserved at {location_code}"
        f" ({line.quantity_shipped} shipped, {line.quantity_cancelled} cancelled)"
        for line, quantity, here in short
    )
    if any(here == 0 for _, _, here in short):
        raise NotReservedError(
            f"cannot {action} units this location does not hold: {described}; "
            "ship only what the fulfillment order lists",
            extensions={"lines": details},
        )
    raise QuantityExceedsReservedError(
        f"cannot {action} more than this location holds: {described}; lower the quantities",
        extensions={"lines": details},
    )


async def take_here(session: AsyncSession, line: OrderLine, location_id: uuid.UUID, quantity: int) -> None:
    """Give up `quantity` units of a line's reservation at this location (the rows are locked)."""
    rows = await session.execute(
        select(Reservation.id, Reservation.quantity)
        .where(
            Reservation.line_id == line.id,
            Reservation.location_id == location_id,
            Reservation.quantity > 0,
        )
        .order_by(Reservation.id)
    )
    left = quantity
    for reservation_id, held in rows:
        take = min(held, left)
        left -= take
        await session.execute(
            update(Reservation)
            .where(Reservation.id == reservation_id)
            .values(quantity=Reservation.quantity - take, updated_at=func.now())
        )
        if left == 0:
            break
    if left:
        raise ValueError(f"line {line.id} holds fewer than {quantity} units at {location_id}")
    await move_reserved(session, [(line.variant_id, location_id, -quantity)])


async def plan_elsewhere(
    session: AsyncSession, line: OrderLine, avoid: uuid.UUID | None, quantity: int
) -> Plan:
    """Where `quantity` units of the line can come from, not at `avoid`, by priority; the rest backordered."""
    return await _plan(session, line, quantity, *([Location.id != avoid] if avoid is not None else []))


async def plan_at(session: AsyncSession, line: OrderLine, location_id: uuid.UUID, quantity: int) -> Plan:
    """How many of `quantity` units of the line this one location has free; the rest backordered."""
    return await _plan(session, line, quantity, Location.id == location_id)


async def _plan(session: AsyncSession, line: OrderLine, quantity: int, *where: ColumnElement[bool]) -> Plan:
    """Plan `quantity` units of the line over the active locations that meet `where`."""
    rows = await session.execute(
        select(
            StockLevel.variant_id,
            StockLevel.location_id,
            Location.code,
            Location.priority,
            # In bigint, as when locking stock (inventory/reservations.py).
            StockLevel.on_hand.cast(BigInteger) - StockLevel.reserved - StockLevel.safety_stock,
        )
        .join(Location, Location.id == StockLevel.location_id)
        .where(StockLevel.variant_id == line.variant_id, Location.is_active, *where)
        .order_by(StockLevel.variant_id, StockLevel.location_id)
    )
    stock = [StockRow(*row) for row in rows]
    # Backorder allowed here: what no other location has stays with the line as backordered.
    return plan_reservations([Demand(line.variant_id, line.sku_code, quantity, allow_backorder=True)], stock)


async def reserve_plan(session: AsyncSession, line: OrderLine, plan: Plan, why: str) -> list[dict[str, Any]]:
    """Reserve the plan's allocations for the line, each with `why` before its reason; what went where.

    Returns one {location, quantity, reason} per allocation, for the timeline.
    """
    placed = []
    for allocation in plan.allocations:
        await reserve_at(
            session, line, allocation.location_id, allocation.quantity, f"{why}: {allocation.reason}"
        )
        placed.append(
            {
                "location": allocation.location_code,
                "quantity": allocation.quantity,
                "reason": allocation.reason,
            }
        )
    return placed


async def reserve_at(
    session: AsyncSession, line: OrderLine, location_id: uuid.UUID, quantity: int, reason: str
) -> None:
    """Hold `quantity` more units of the line at this location, on its reservation row there."""
    await move_reserved(session, [(line.variant_id, location_id, quantity)])
    existing = await session.scalar(
        select(Reservation.id)
        .where(Reservation.line_id == line.id, Reservation.location_id == location_id)
        .order_by(Reservation.id)
        .limit(1)
    )
    if existing is not None:
        await session.execute(
            update(Reservation)
            .where(Reservation.id == existing)
            .values(quantity=Reservation.quantity + quantity, reason=reason, updated_at=func.now())
        )
        return
    await session.execute(
        insert(Reservation).values(
            id=uuid7(),
            order_id=line.order_id,
            line_id=line.id,
            variant_id=line.variant_id,
            location_id=location_id,
            quantity=quantity,
            reason=reason,
        )
    )


async def backorder(session: AsyncSession, line: OrderLine, quantity: int) -> None:
    """Move `quantity` of a line's allocated units to backordered: no location holds them now."""
    await _shift_to_backordered(session, line, quantity)


async def allocate_backordered(session: AsyncSession, line: OrderLine, quantity: int) -> None:
    """Move `quantity` of a line's backordered units to allocated: a location holds them now."""
    await _shift_to_backordered(session, line, -quantity)


async def _shift_to_backordered(session: AsyncSession, line: OrderLine, quantity: int) -> None:
    """Move units from allocated to backordered (negative: back); 409 if the line has not got them."""
    moved = await session.execute(
        update(OrderLine)
        .where(
            OrderLine.id == line.id,
            OrderLine.quantity_allocated >= quantity,
            OrderLine.quantity_backordered >= -quantity,
        )
        .values(
            quantity_allocated=OrderLine.quantity_allocated - quantity,
            quantity_backordered=OrderLine.quantity_backordered + quantity,
            updated_at=dt.datetime.now(dt.UTC),
        )
        .returning(OrderLine.id)
        .execution_options(synchronize_session=False)
    )
    if moved.one_or_none() is None:
        raise OrderChangedError("the order changed while the line's stock was being moved; read it and retry")
