"""The shop the stock ledger property tests drive: the steps Hypothesis draws, and what the store holds.

The tests draw steps on one store: stock adjustments, safety stock, placements of random
lines over three SKUs (the third allows backorders) at two locations, cancellations,
edits, and `Settle` (the workers catch up). Each example gets fresh SKUs, locations and a
customer in the test's store (`open_shop`); `snapshot` reads back their stock rows, order
lines and live reservations. Running and checking the steps is `ledger_runner.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.tenants.catalog.service import create_product
from ordersmith.tenants.customers.service import create_customer
from ordersmith.tenants.inventory.models import InventoryAdjustment, Reservation, StockLevel
from ordersmith.tenants.inventory.service import adjust_stock, create_location
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.models import Order, OrderLine

SKUS = 3
BACKORDER_SKU = 2
LOCATIONS = 2
REASON = "property test"

StockKey = tuple[uuid.UUID, uuid.UUID]  # (variant, location)
LineKey = tuple[int, int]  # (order number, line number)


# Operations. Which order or line one acts on is a number taken modulo the candidates at
# that step, so that Hypothesis can shrink sequences freely.
@dataclass(frozen=True)
class Adjust:
    sku: int
    location: int
    kind: str
    quantity: int


@dataclass(frozen=True)
class SafetyStock:
    sku: int
    location: int
    units: int


@dataclass(frozen=True)
class Place:
    lines: tuple[tuple[int, int], ...]  # (sku, quantity)


@dataclass(frozen=True)
class Cancel:
    order: int
    line: int | None  # None: the whole order
    quantity: int


@dataclass(frozen=True)
class EditQuantity:
    order: int
    line: int
    quantity: int


@dataclass(frozen=True)
class EditAddLine:
    order: int
    sku: int
    quantity: int


@dataclass(frozen=True)
class EditRemoveLine:
    order: int
    line: int


@dataclass(frozen=True)
class Settle:
    """The workers catch up: the shortfall and backorder consumers handle every event so far."""


Change = Adjust | SafetyStock | Place | Cancel | EditQuantity | EditAddLine | EditRemoveLine
Operation = Change | Settle

# The step strategies both property tests draw from; each test mixes them with its own.
sku = st.integers(0, SKUS - 1)
location = st.integers(0, LOCATIONS - 1)
pick = st.integers(0, 50)
place = st.builds(Place, st.lists(st.tuples(sku, st.integers(1, 4)), min_size=1, max_size=3).map(tuple))
cancel = st.builds(Cancel, pick, st.none() | pick, pick)
edit_quantity = st.builds(EditQuantity, pick, pick, st.integers(1, 5))
count = st.builds(Adjust, sku, location, st.just("count"), st.integers(0, 6))
safety = st.builds(SafetyStock, sku, location, st.integers(0, 2))
settle_step = st.just(Settle())


@dataclass(frozen=True)
class Stock:
    on_hand: int
    reserved: int
    safety_stock: int
    ledger: int  # sum of the adjustments
    held: int  # sum of the live reservations


@dataclass(frozen=True)
class Line:
    variant_id: uuid.UUID
    ordered: int
    cancelled: int
    allocated: int
    backordered: int
    shipped: int

    @property
    def live(self) -> int:
        return self.ordered - self.cancelled

    @property
    def cancellable(self) -> int:
        return self.allocated + self.backordered


@dataclass(frozen=True)
class Snapshot:
    """What the store holds for this example's SKUs."""

    stock: dict[StockKey, Stock]
    lines: dict[LineKey, Line]
    line_ids: dict[LineKey, uuid.UUID]
    held: dict[tuple[LineKey, uuid.UUID], int]  # live units per line and location
    orders: dict[int, tuple[uuid.UUID, str]]  # number -> (id, status)

    def reserved(self, variant_id: uuid.UUID) -> int:
        return sum(row.reserved for (v, _), row in self.stock.items() if v == variant_id)

    def available(self, variant_id: uuid.UUID) -> int:
        return sum(
            max(row.on_hand - row.reserved - row.safety_stock, 0)
            for (v, _), row in self.stock.items()
            if v == variant_id
        )

    def open_orders(self) -> list[int]:
        return sorted(number for number, (_, status) in self.orders.items() if status in lifecycle.OPEN)

    def lines_of(self, number: int) -> list[LineKey]:
        return sorted(key for key in self.lines if key[0] == number)


@dataclass
class Shop:
    """One example's SKUs, locations and customer, and the on_hand/safety stock it expects."""

    tenant: TenantContext
    customer_id: uuid.UUID
    codes: list[str]
    variant_ids: list[uuid.UUID]
    locations: list[uuid.UUID]
    # Release order: the last-chosen location (highest priority number, then code) first.
    release_rank: dict[uuid.UUID, tuple[int, str]]
    on_hand: dict[StockKey, int]
    safety: dict[StockKey, int]

    def key(self, sku: int, location: int) -> StockKey:
        return self.variant_ids[sku], self.locations[location]

    def allows_backorder(self, variant_id: uuid.UUID) -> bool:
        return variant_id == self.variant_ids[BACKORDER_SKU]

    def code(self, variant_id: uuid.UUID) -> str:
        return self.codes[self.variant_ids.index(variant_id)]


async def open_shop(
    database: Database, tenant: TenantContext, priorities: tuple[int, int], initial: list[int]
) -> Shop:
    """Fresh SKUs, locations and a customer; `initial` units of each SKU at each location."""
    token = uuid.uuid4().hex[:10].upper()
    codes = [f"P{index}-{token}" for index in range(SKUS)]
    async with database.tenant_session(tenant) as session:
        product = await create_product(
            tenant,
            session,
            {"name": "Property"},
            [
                {
                    "sku_code": code,
                    "name": code,
                    "price_amount": 100,
                    "currency": "EUR",
                    "allow_backorder": index == BACKORDER_SKU,
                }
                for index, code in enumerate(codes)
            ],
        )
        by_code = {variant.sku_code: variant.id for variant in product.variants}
        locations: list[uuid.UUID] = []
        rank: dict[uuid.UUID, tuple[int, str]] = {}
        for index, priority in enumerate(priorities):
            code = f"L{index}-{token}"
            row = await create_location(
                tenant, session, {"code": code, "name": code, "kind": "warehouse", "priority": priority}
            )
            locations.append(row.id)
            rank[row.id] = (priority, code)
        customer = await create_customer(tenant, session, {"full_name": "Pat Property"}, author=SYSTEM)
        shop = Shop(
            tenant, customer.customer.id, codes, [by_code[code] for code in codes], locations, rank, {}, {}
        )
        for index, quantity in enumerate(initial):
            sku, place = divmod(index, LOCATIONS)
            if quantity:
                await adjust_stock(
                    tenant,
                    session,
                    sku=codes[sku],
                    location_id=locations[place],
                    kind="receive",
                    quantity=quantity,
                    reason=REASON,
                    actor=SYSTEM,
                )
                shop.on_hand[shop.key(sku, place)] = quantity
    return shop


async def snapshot(session: AsyncSession, shop: Shop) -> Snapshot:
    """Stock rows, order lines and live reservations of the shop's SKUs, as stored."""
    variants = shop.variant_ids
    ledger = (
        select(func.coalesce(func.sum(InventoryAdjustment.quantity), 0))
        .where(
            InventoryAdjustment.variant_id == StockLevel.variant_id,
            InventoryAdjustment.location_id == StockLevel.location_id,
        )
        .scalar_subquery()
    )
    stock_held = (
        select(func.coalesce(func.sum(Reservation.quantity), 0))
        .where(
            Reservation.variant_id == StockLevel.variant_id, Reservation.location_id == StockLevel.location_id
        )
        .scalar_subquery()
    )
    stock = {
        (variant_id, location_id): Stock(*figures)
        for variant_id, location_id, *figures in await session.execute(
            select(
                StockLevel.variant_id,
                StockLevel.location_id,
                StockLevel.on_hand,
                StockLevel.reserved,
                StockLevel.safety_stock,
                ledger,
                stock_held,
            ).where(StockLevel.variant_id.in_(variants))
        )
    }
    lines: dict[LineKey, Line] = {}
    line_ids: dict[LineKey, uuid.UUID] = {}
    keys: dict[uuid.UUID, LineKey] = {}
    orders: dict[int, tuple[uuid.UUID, str]] = {}
    for row in await session.execute(
        select(
            Order.number,
            Order.id,
            Order.status,
            OrderLine.line_number,
            OrderLine.id,
            OrderLine.variant_id,
            OrderLine.quantity_ordered,
            OrderLine.quantity_cancelled,
            OrderLine.quantity_allocated,
            OrderLine.quantity_backordered,
            OrderLine.quantity_shipped,
        )
        .join(Order, Order.id == OrderLine.order_id)
        .where(OrderLine.variant_id.in_(variants))
    ):
        number, order_id, status, line_number, line_id, *buckets = row
        key = (number, line_number)
        lines[key] = Line(*buckets)
        line_ids[key] = line_id
        orders[number] = (order_id, status)
        keys[line_id] = key
    held = {
        (keys[line_id], location_id): quantity
        for line_id, location_id, quantity in await session.execute(
            select(Reservation.line_id, Reservation.location_id, func.sum(Reservation.quantity))
            .where(Reservation.variant_id.in_(variants), Reservation.quantity > 0)
            .group_by(Reservation.line_id, Reservation.location_id)
        )
    }
    return Snapshot(stock, lines, line_ids, held, orders)
