"""How an order edit moves stock: what each line gives back, what it needs more of, and where.

`edits.py` works out each line's new quantity and price; this module moves the
reservations to match, inside the edit's transaction:
1. `reservations.lock_stock` locks every stock row of the SKUs whose quantities change, in
   (variant, location) order, the order placement locks in, before anything moves;
2. `move_stock` gives back what lines give up (backordered units first, then reserved
   ones, through `reservations.release`) and then reserves what lines need more of,
   summed per SKU, through `reservations.reserve` (placement's planner), sharing each
   SKU's allocations among its lines in line order;
3. `write_reservations` records the new reservations;
4. `stock_effects` says per SKU and location what was reserved and released, and why.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.ids import uuid7
from ordersmith.tenants.inventory.models import Location, Reservation
from ordersmith.tenants.inventory.reservations import Demand, Plan, Released, release, reserve
from ordersmith.tenants.orders.models import OrderLine

ADDED = "added"
CHANGED = "changed"
REMOVED = "removed"


@dataclass(frozen=True)
class LocationEffect:
    """Units of one SKU newly reserved at, or given back to, one location."""

    location_id: uuid.UUID
    location_code: str
    reserved: int
    released: int
    # Why units were reserved here (the planner's words); None when only released.
    reason: str | None


@dataclass(frozen=True)
class StockEffect:
    """What the edit does to one SKU's stock: reserved, released, backordered."""

    variant_id: uuid.UUID
    sku: str
    reserved: int
    released: int
    backordered_change: int
    locations: list[LocationEffect]


@dataclass(frozen=True)
class LineBefore:
    """A line's buckets and price before the edit (the ORM row changes under the writes)."""

    ordered: int
    cancelled: int
    allocated: int
    backordered: int
    unit_price_amount: int
    shipped: int

    @classmethod
    def of(cls, row: OrderLine) -> LineBefore:
        return cls(
            row.quantity_ordered,
            row.quantity_cancelled,
            row.quantity_allocated,
            row.quantity_backordered,
            row.unit_price_amount,
            row.quantity_shipped,
        )


@dataclass
class EditedLine:
    """One line the edit adds or changes, as it is worked out."""

    line_id: uuid.UUID
    line_number: int
    variant_id: uuid.UUID
    sku: str
    name: str
    allow_backorder: bool
    new_quantity: int
    new_price: int
    # None for a line the edit adds.
    was: LineBefore | None = None
    is_removed: bool = False
    allocated: int = 0
    backordered: int = 0

    @property
    def old_quantity(self) -> int:
        return 0 if self.was is None else self.was.ordered - self.was.cancelled

    @property
    def action(self) -> str:
        return ADDED if self.was is None else REMOVED if self.is_removed else CHANGED

    @property
    def is_changed(self) -> bool:
        return (
            self.was is None
            or self.new_quantity != self.old_quantity
            or self.new_price != self.was.unit_price_amount
        )


@dataclass
class StockMoves:
    """What `move_stock` did: units given back, the planner's allocations, and who got them."""

    released: list[tuple[uuid.UUID, Released]] = field(default_factory=list)
    plan: Plan = field(default_factory=Plan)
    # (line, variant, location, quantity, reason) for each new reservation.
    held: list[tuple[EditedLine, uuid.UUID, uuid.UUID, int, str]] = field(default_factory=list)


async def move_stock(session: AsyncSession, lines: list[EditedLine]) -> StockMoves:
    """Release what lines give up, then reserve what they need more of, summed per SKU."""
    moves = StockMoves()
    for line in lines:
        line.allocated = 0 if line.was is None else line.was.allocated
        line.backordered = 0 if line.was is None else line.was.backordered
        fewer = line.old_quantity - line.new_quantity
        if fewer > 0:
            # Backordered units were never held: dropping them first keeps real stock promised.
            from_backorder = min(fewer, line.backordered)
            line.backordered -= from_backorder
            line.allocated -= fewer - from_backorder
            given = await release(session, line.line_id, fewer - from_backorder)
            moves.released.extend((line.variant_id, item) for item in given)
    growing = [line for line in lines if line.new_quantity > line.old_quantity]
    needed: dict[uuid.UUID, int] = defaultdict(int)
    first: dict[uuid.UUID, EditedLine] = {}
    for line in growing:
        needed[line.variant_id] += line.new_quantity - line.old_quantity
        first.setdefault(line.variant_id, line)
    if needed:
        moves.plan = await reserve(
            session,
            [
                Demand(variant_id, first[variant_id].sku, quantity, first[variant_id].allow_backorder)
                for variant_id, quantity in needed.items()
            ],
        )
    # Each growing line takes its share of its SKU's allocations in line order, as placement does.
    pools: dict[uuid.UUID, list[list[Any]]] = defaultdict(list)
    for allocation in moves.plan.allocations:
        pools[allocation.variant_id].append([allocation, allocation.quantity])
    for line in growing:
        wanted = line.new_quantity - line.old_quantity
        for pool in pools[line.variant_id]:
            take = min(pool[1], wanted)
            if take:
                pool[1] -= take
                wanted -= take
                line.allocated += take
                moves.held.append((line, line.variant_id, pool[0].location_id, take, pool[0].reason))
        line.backordered += wanted
    return moves


async def write_reservations(session: AsyncSession, order_id: uuid.UUID, moves: StockMoves) -> None:
    """Write the new reservations, adding to a line's row at a location when it has one."""
    if not moves.held:
        return
    rows = await session.execute(
        select(Reservation.id, Reservation.line_id, Reservation.location_id, Reservation.quantity).where(
            Reservation.line_id.in_(sorted({line.line_id for line, *_ in moves.held}))
        )
    )
    existing = {(line_id, location_id): (row_id, quantity) for row_id, line_id, location_id, quantity in rows}
    new_rows = []
    for line, variant_id, location_id, quantity, reason in moves.held:
        found = existing.get((line.line_id, location_id))
        if found is None:
            new_rows.append(
                {
                    "id": uuid7(),
                    "order_id": order_id,
                    "line_id": line.line_id,
                    "variant_id": variant_id,
                    "location_id": location_id,
                    "quantity": quantity,
                    "reason": reason,
                }
            )
            continue
        row_id, held = found
        # The row's reason says why it holds what it holds now: the edit's units came for
        # the edit's reason, on top of what was held before.
        values: dict[str, Any] = {
            "quantity": Reservation.quantity + quantity,
            "reason": reason if held == 0 else f"{held} held here before; {quantity} more: {reason}",
            "updated_at": func.now(),
        }
        await session.execute(update(Reservation).where(Reservation.id == row_id).values(**values))
    if new_rows:
        await session.execute(insert(Reservation), new_rows)


async def stock_effects(
    session: AsyncSession, lines: list[EditedLine], moves: StockMoves
) -> list[StockEffect]:
    """Per SKU the edit changed: units reserved and released per location, and backorders."""
    reserved: dict[tuple[uuid.UUID, uuid.UUID], int] = defaultdict(int)
    released: dict[tuple[uuid.UUID, uuid.UUID], int] = defaultdict(int)
    reasons: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
    for allocation in moves.plan.allocations:
        key = (allocation.variant_id, allocation.location_id)
        reserved[key] += allocation.quantity
        reasons.setdefault(key, allocation.reason)
    for variant_id, item in moves.released:
        released[variant_id, item.location_id] += item.quantity
    location_ids = {location_id for _, location_id in [*reserved, *released]}
    places = {
        location_id: (code, priority)
        for location_id, code, priority in await session.execute(
            select(Location.id, Location.code, Location.priority).where(Location.id.in_(sorted(location_ids)))
        )
    }
    backordered: dict[uuid.UUID, int] = defaultdict(int)
    skus: dict[uuid.UUID, str] = {}
    for line in lines:
        if line.new_quantity != line.old_quantity:
            before = 0 if line.was is None else line.was.backordered
            backordered[line.variant_id] += line.backordered - before
            skus.setdefault(line.variant_id, line.sku)
    effects = []
    for variant_id, sku in skus.items():
        keys = sorted(
            {key for key in [*reserved, *released] if key[0] == variant_id},
            key=lambda key: (places[key[1]][1], places[key[1]][0]),
        )
        locations = [
            LocationEffect(key[1], places[key[1]][0], reserved[key], released[key], reasons.get(key))
            for key in keys
        ]
        effects.append(
            StockEffect(
                variant_id,
                sku,
                sum(item.reserved for item in locations),
                sum(item.released for item in locations),
                backordered[variant_id],
                locations,
            )
        )
    return effects
