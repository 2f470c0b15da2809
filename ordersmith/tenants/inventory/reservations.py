"""Promising stock to order lines without ever promising it twice.

Every placement or edit that needs stock calls `reserve` with its demand summed per
SKU. `reserve` locks the stock rows of those SKUs in one statement, in (variant,
location) order, so two orders wanting the same SKUs always queue in the same order
and cannot deadlock; the runtime connection's lock timeout bounds the wait. Under that
lock it decides where each unit comes from, then moves the `reserved` totals.

Where the stock comes from, in order of preference:
1. the highest-priority location that can serve every SKU of the request (one parcel);
2. otherwise per SKU, the highest-priority location that can serve all of it;
3. otherwise per SKU, split across locations by priority;
4. what is still missing is backordered when the SKU allows backorders, else the whole
   request fails with `insufficient_stock` naming every short SKU.
Each allocation carries the reason in words, for the order's timeline.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import BigInteger, Integer, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.tenants.inventory.errors import InsufficientStockError, Shortfall
from ordersmith.tenants.inventory.models import Location, Reservation, StockLevel


@dataclass(frozen=True)
class Demand:
    """How many units of one SKU a request needs in total."""

    variant_id: uuid.UUID
    sku: str
    quantity: int
    allow_backorder: bool = False


@dataclass(frozen=True)
class Allocation:
    """Units of one SKU reserved at one location, and why there."""

    variant_id: uuid.UUID
    location_id: uuid.UUID
    location_code: str
    quantity: int
    reason: str


@dataclass
class Plan:
    """Where a request's units come from, and what is backordered per SKU."""

    allocations: list[Allocation] = field(default_factory=list)
    backordered: dict[uuid.UUID, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StockRow:
    """A locked stock row as the planner sees it: where, how preferred, how much is free."""

    variant_id: uuid.UUID
    location_id: uuid.UUID
    code: str
    priority: int
    available: int


# The one order of locations, wherever stock is chosen, released or listed: priority
# (lower first), then code. Codes are ASCII letters, digits, '.', '_' and '-', unique
# ignoring case; in SQL they compare in the "C" collation, by code point as Python's
# strings do, whatever the database's locale.
LOCATION_ORDER = (Location.priority, Location.code.collate("C"))


def location_rank(priority: int, code: str) -> tuple[int, str]:
    """A location's place in `LOCATION_ORDER`, for sorting in Python."""
    return (priority, code)


def _by_priority(stock: list[StockRow]) -> list[StockRow]:
    return sorted(stock, key=lambda item: location_rank(item.priority, item.code))


async def lock_stock(session: AsyncSession, variant_ids: Iterable[uuid.UUID]) -> None:
    """Lock every stock row of these SKUs in (variant, location) order: the one lock order.

    A transaction that gives units back or moves them between lines (cancellation,
    edits) calls this, after locking its order, before touching any stock row: taking
    the rows one line at a time could deadlock with a placement locking them in order.
    """
    ordered = sorted(set(variant_ids))
    if ordered:
        await session.execute(
            select(StockLevel.variant_id)
            .where(StockLevel.variant_id.in_(ordered))
            .order_by(StockLevel.variant_id, StockLevel.location_id)
            .with_for_update()
        )


async def _lock_stock(session: AsyncSession, variant_ids: Sequence[uuid.UUID]) -> list[StockRow]:
    """Lock the stock rows of these SKUs at active locations, in a fixed order."""
    rows = await session.execute(
        select(
            StockLevel.variant_id,
            StockLevel.location_id,
            Location.code,
            Location.priority,
            # In bigint: the columns are integer, and little on hand with much reserved and
            # a large safety stock (up to 2*10^9 and 10^9) goes below -2^31.
            StockLevel.on_hand.cast(BigInteger) - StockLevel.reserved - StockLevel.safety_stock,
        )
        .join(Location, Location.id == StockLevel.location_id)
        .where(StockLevel.variant_id.in_(variant_ids), Location.is_active)
        .order_by(StockLevel.variant_id, StockLevel.location_id)
        .with_for_update(of=StockLevel)
    )
    return [StockRow(*row) for row in rows]


# An order's lines, or the units an edit adds: the same words fit both.
_ONE_PARCEL = "is the first location with all the units asked for, so they ship together"


def _one_parcel(demands: Sequence[Demand], stock: list[StockRow]) -> Plan | None:
    """Everything from one location, the highest-priority one that has it all."""
    if len(demands) < 2:
        return None
    by_location: dict[uuid.UUID, dict[uuid.UUID, StockRow]] = {}
    for item in stock:
        by_location.setdefault(item.location_id, {})[item.variant_id] = item
    candidates = [
        items
        for items in by_location.values()
        if all(d.variant_id in items and items[d.variant_id].available >= d.quantity for d in demands)
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda items: min(location_rank(i.priority, i.code) for i in items.values()))
    first = next(iter(best.values()))
    reason = f"{first.code} (priority {first.priority}) {_ONE_PARCEL}"
    return Plan(
        [Allocation(d.variant_id, first.location_id, first.code, d.quantity, reason) for d in demands]
    )


def _plan_sku(demand: Demand, stock: list[StockRow], plan: Plan, short: list[Shortfall]) -> None:
    ranked = [item for item in _by_priority(stock) if item.available > 0]
    whole = next((item for item in ranked if item.available >= demand.quantity), None)
    if whole is not None:
        reason = f"{whole.code} (priority {whole.priority}) is the first location with all {demand.quantity}"
        plan.allocations.append(
            Allocation(demand.variant_id, whole.location_id, whole.code, demand.quantity, reason)
        )
        return
    total = sum(item.available for item in ranked)
    if total < demand.quantity and not demand.allow_backorder:
        short.append(Shortfall(demand.sku, demand.quantity, total))
        return
    missing = demand.quantity
    for item in ranked:
        take = min(item.available, missing)
        missing -= take
        reason = (
            f"no location has all {demand.quantity}; {item.code} (priority {item.priority}) "
            f"gives the {take} it has"
        )
        plan.allocations.append(Allocation(demand.variant_id, item.location_id, item.code, take, reason))
        if missing == 0:
            break
    if missing:
        plan.backordered[demand.variant_id] = missing


def plan_reservations(demands: Sequence[Demand], stock: list[StockRow]) -> Plan:
    """Decide where each unit comes from (pure: the caller holds the locks)."""
    parcel = _one_parcel(demands, stock)
    if parcel is not None:
        return parcel
    plan, short = Plan(), list[Shortfall]()
    for demand in demands:
        _plan_sku(demand, [item for item in stock if item.variant_id == demand.variant_id], plan, short)
    if short:
        raise InsufficientStockError(short)
    return plan


_STOCK = cast(Table, StockLevel.__table__)
# Core (not ORM) UPDATE, so that a list of parameter sets runs as one executemany.
_MOVE_RESERVED = (
    update(_STOCK)
    .where(_STOCK.c.variant_id == bindparam("v_id"), _STOCK.c.location_id == bindparam("l_id"))
    .values(reserved=_STOCK.c.reserved + bindparam("qty", type_=Integer), updated_at=func.now())
)


async def move_reserved(session: AsyncSession, changes: Sequence[tuple[uuid.UUID, uuid.UUID, int]]) -> None:
    """Add (or, negative, release) reserved units per (variant, location), in lock order."""
    if changes:
        ordered = sorted(changes, key=lambda change: (change[0], change[1]))
        await session.execute(_MOVE_RESERVED, [{"v_id": v, "l_id": loc, "qty": q} for v, loc, q in ordered])


async def reserve(session: AsyncSession, demands: Sequence[Demand]) -> Plan:
    """Reserve stock for these demands (one per SKU) or raise `InsufficientStockError`."""
    ordered = sorted(demands, key=lambda demand: demand.variant_id)
    stock = await _lock_stock(session, [demand.variant_id for demand in ordered])
    plan = plan_reservations(ordered, stock)
    await move_reserved(
        session, [(item.variant_id, item.location_id, item.quantity) for item in plan.allocations]
    )
    return plan


@dataclass(frozen=True)
class Released:
    """Units of a line given back at one location."""

    line_id: uuid.UUID
    location_id: uuid.UUID
    quantity: int


async def release(session: AsyncSession, line_id: uuid.UUID, quantity: int) -> list[Released]:
    """Give back `quantity` reserved units of one line, last-chosen location first.

    The caller holds the order's lock; the stock rows are updated in lock order. Raises
    ValueError when the line holds fewer units: that is a bug in the caller, not input.
    """
    if quantity <= 0:
        return []
    rows = list(
        await session.execute(
            select(Reservation.id, Reservation.location_id, Reservation.variant_id, Reservation.quantity)
            .join(Location, Location.id == Reservation.location_id)
            .where(Reservation.line_id == line_id, Reservation.quantity > 0)
            .order_by(*(column.desc() for column in LOCATION_ORDER))
            .with_for_update(of=Reservation)
        )
    )
    if sum(row.quantity for row in rows) < quantity:
        raise ValueError(f"line {line_id} holds fewer than {quantity} reserved units")
    released: list[Released] = []
    moves: list[tuple[uuid.UUID, uuid.UUID, int]] = []
    left = quantity
    for row in rows:
        take = min(row.quantity, left)
        left -= take
        await session.execute(
            update(Reservation)
            .where(Reservation.id == row.id)
            .values(quantity=Reservation.quantity - take, updated_at=func.now())
        )
        released.append(Released(line_id, row.location_id, take))
        moves.append((row.variant_id, row.location_id, -take))
        if left == 0:
            break
    await move_reserved(session, moves)
    return released
