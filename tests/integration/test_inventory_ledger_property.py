"""The stock ledger's invariants hold after any sequence of stock, order, edit, cancel and worker steps.

Hypothesis draws a sequence of operations on one store: stock adjustments (receive,
damage, count, correction), safety stock, placements of random lines over three SKUs
(the third allows backorders) at two locations, whole and partial cancellations, and
edits (set a line's quantity, add a line, remove a line). Each runs in its own tenant
transaction, as a request would. After every step the test reads the store back and
asserts:

- per SKU and location: `on_hand` equals the sum of its adjustments (and the figure the
  test expects); `reserved` equals the sum of its live reservations; `reserved >= 0`;
- per line: ordered - cancelled = allocated + backordered + shipped, and `allocated`
  equals the line's live reservations;
- the step did exactly what it should. Asking for more of a SKU without backorders than
  is available (on_hand - reserved - safety_stock, summed over the locations) refuses
  the placement or edit whole, and nothing changes; otherwise exactly the new units are
  reserved per SKU (a backorder SKU reserves what is there and backorders the rest), and
  every stock row whose `reserved` grew satisfies reserved <= on_hand - safety_stock
  right after the step: what was promised was there to promise. A cancellation or a
  shrinking edit takes backordered units first, then releases exactly the allocated
  units it cancels, from the last-chosen location first.

`available` is only asserted at the moment of reserving: a damage or count recorded
after stock was promised may leave on_hand below reserved, which is the physical truth.
A `Settle` step lets the workers catch up (the shortfall and backorder consumers handle
every event so far); after it no location holds more reserved than on hand, and no SKU
has a free unit while an open order waits for it. Each example gets fresh SKUs,
locations and a customer in the test's store.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import cast, func, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.errors import OrdersmithError, ValidationFailedError
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.catalog.service import create_product
from ordersmith.tenants.customers.service import create_customer
from ordersmith.tenants.fulfillment import backorders, shortfall
from ordersmith.tenants.inventory.errors import InsufficientStockError, Shortfall, StockWouldGoNegativeError
from ordersmith.tenants.inventory.models import InventoryAdjustment, Reservation, StockLevel
from ordersmith.tenants.inventory.service import adjust_stock, create_location, set_safety_stock
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.cancellation import CancelRequest, LineCancel, cancel_order
from ordersmith.tenants.orders.edit_requests import AddLine, EditRequest, RemoveLine, SetQuantity
from ordersmith.tenants.orders.edits import edit_order
from ordersmith.tenants.orders.models import Order, OrderHold, OrderLine
from ordersmith.tenants.orders.placement import place_order
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest
from tests.support.orders import ADDRESS
from tests.support.webhook_receiver import consumer_named, deliver_outbox

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

_sku = st.integers(0, SKUS - 1)
_location = st.integers(0, LOCATIONS - 1)
_pick = st.integers(0, 50)
_receive = st.builds(Adjust, _sku, _location, st.just("receive"), st.integers(1, 6))
_place = st.builds(Place, st.lists(st.tuples(_sku, st.integers(1, 4)), min_size=1, max_size=3).map(tuple))
_cancel = st.builds(Cancel, _pick, st.none() | _pick, _pick)
_edit_quantity = st.builds(EditQuantity, _pick, _pick, st.integers(1, 5))
_edit_add_line = st.builds(EditAddLine, _pick, _sku, st.integers(1, 4))
_edit_remove_line = st.builds(EditRemoveLine, _pick, _pick)
_damage = st.builds(Adjust, _sku, _location, st.just("damage"), st.integers(-4, -1))
_count = st.builds(Adjust, _sku, _location, st.just("count"), st.integers(0, 6))
_correction = st.builds(
    Adjust, _sku, _location, st.just("correction"), st.sampled_from([-3, -2, -1, 1, 2, 3])
)
_safety = st.builds(SafetyStock, _sku, _location, st.integers(0, 2))
_settle = st.just(Settle())
# How often each kind of step is drawn: mostly placements, cancellations and edits.
_MIX: list[st.SearchStrategy[Operation]] = [
    *[_place] * 4,
    *[_cancel] * 2,
    *[_edit_quantity] * 2,
    _edit_add_line,
    _edit_remove_line,
    *[_receive] * 2,
    _damage,
    _count,
    _correction,
    _safety,
    *[_settle] * 2,
]
operations = st.sampled_from(_MIX).flatmap(lambda strategy: strategy)


# For the workers' steps: orders on little stock, some waiting for it (the backorder SKU);
# stock lost or added under them, and the workers catching up right after or later.
def _alone(step: Operation) -> tuple[Operation, ...]:
    return (step,)


_wait_for_stock = st.builds(Place, st.tuples(st.tuples(st.just(BACKORDER_SKU), st.integers(2, 5)))).map(
    _alone
)
_lose_then_settle = st.builds(
    lambda kind, sku, location, units: (Adjust(sku, location, kind, -units), Settle()),
    st.sampled_from(["damage", "correction"]),
    _sku,
    _location,
    st.integers(1, 3),
)
_arrive_then_settle = st.builds(
    lambda sku, location, units: (Adjust(sku, location, "receive", units), Settle()),
    st.sampled_from([BACKORDER_SKU, BACKORDER_SKU, 0, 1]),
    _location,
    st.integers(1, 3),
)
_WORKER_MIX: list[st.SearchStrategy[tuple[Operation, ...]]] = [
    *[_place.map(_alone)] * 3,
    *[_wait_for_stock] * 2,
    *[_lose_then_settle] * 2,
    *[_arrive_then_settle] * 2,
    _count.map(_alone),
    st.tuples(_cancel, _settle),
    _edit_quantity.map(_alone),
    _safety.map(_alone),
    _settle.map(_alone),
]
worker_operations = st.sampled_from(_WORKER_MIX).flatmap(lambda strategy: strategy)


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


def check_invariants(shop: Shop, state: Snapshot) -> None:
    """What must hold after every step, whatever the step was."""
    assert set(state.stock) == set(shop.on_hand)
    for key, row in state.stock.items():
        assert row.on_hand == row.ledger == shop.on_hand[key], (key, row)
        assert row.reserved == row.held >= 0, (key, row)
        assert row.safety_stock == shop.safety.get(key, 0), (key, row)
    allocated: dict[uuid.UUID, int] = defaultdict(int)
    for line_key, line in state.lines.items():
        assert line.live == line.allocated + line.backordered + line.shipped, (line_key, line)
        assert min(line.cancelled, line.allocated, line.backordered, line.shipped) >= 0, (line_key, line)
        line_held = sum(units for (held_key, _), units in state.held.items() if held_key == line_key)
        assert line.allocated == line_held, (line_key, line, line_held)
        allocated[line.variant_id] += line.allocated
    for variant_id in shop.variant_ids:
        assert state.reserved(variant_id) == allocated[variant_id]


def check_promises(before: Snapshot, after: Snapshot) -> None:
    """Every stock row whose reserved grew could afford it: reserved <= on_hand - safety_stock."""
    for key, row in after.stock.items():
        old = before.stock.get(key)
        if row.reserved > (old.reserved if old else 0):
            assert row.reserved <= row.on_hand - row.safety_stock, (key, old, row)


def check_released(shop: Shop, before: Snapshot, after: Snapshot, key: LineKey, units: int) -> None:
    """The line gave back exactly `units`, emptying its last-chosen locations first."""
    places = sorted(
        (location for line_key, location in before.held if line_key == key),
        key=lambda location: shop.release_rank[location],
        reverse=True,
    )
    given = [before.held[(key, place)] - after.held.get((key, place), 0) for place in places]
    assert sum(given) == units
    still_held = [after.held.get((key, place), 0) for place in places]
    for index, kept in enumerate(still_held):
        if kept:
            assert not any(given[index + 1 :]), (places, given, still_held)


def reserve_outcome(
    shop: Shop, before: Snapshot, demands: dict[uuid.UUID, int]
) -> tuple[list[Shortfall], dict[uuid.UUID, int]]:
    """The shortfalls if the demands cannot be met, else the units reserved per SKU."""
    short, reserved = [], {}
    for variant_id, wanted in demands.items():
        available = before.available(variant_id)
        if available < wanted and not shop.allows_backorder(variant_id):
            short.append(Shortfall(shop.code(variant_id), wanted, available))
        reserved[variant_id] = min(wanted, available)
    return sorted(short, key=lambda item: item.sku), reserved


def spread(
    reserved: dict[uuid.UUID, int], lines: list[tuple[uuid.UUID, int]]
) -> list[tuple[uuid.UUID, int, int]]:
    """(variant, allocated, backordered) per line: earlier lines get the reserved units first."""
    pool = dict(reserved)
    spread_lines = []
    for variant_id, quantity in lines:
        take = min(quantity, pool.get(variant_id, 0))
        pool[variant_id] = pool.get(variant_id, 0) - take
        spread_lines.append((variant_id, take, quantity - take))
    return spread_lines


def cut(line: Line, quantity: int) -> tuple[Line, int]:
    """The line after cancelling `quantity` units (backordered first), and the units released."""
    from_backordered = min(quantity, line.backordered)
    from_allocated = quantity - from_backordered
    return (
        replace(
            line,
            cancelled=line.cancelled + quantity,
            backordered=line.backordered - from_backordered,
            allocated=line.allocated - from_allocated,
        ),
        from_allocated,
    )


@dataclass
class Expected:
    """What a step must leave behind, in the terms the test can predict."""

    lines: dict[LineKey, Line]
    statuses: dict[int, str]
    reserved_change: dict[uuid.UUID, int] = field(default_factory=dict)
    # Units each line must give back, checked location by location.
    released: dict[LineKey, int] = field(default_factory=dict)
    # New on_hand and safety stock per stock row, when the step changes them.
    on_hand: dict[StockKey, int] = field(default_factory=dict)
    safety: dict[StockKey, int] = field(default_factory=dict)
    refusal: type[OrdersmithError] | None = None
    shortfalls: list[Shortfall] = field(default_factory=list)
    new_order: bool = False


Action = Callable[[AsyncSession], Awaitable[object]]


def predict(shop: Shop, before: Snapshot, step: Change) -> tuple[Expected, Action | None]:
    """What the step must do, and the service call that does it (None: nothing to act on)."""
    expected = Expected(dict(before.lines), {number: status for number, (_, status) in before.orders.items()})
    if isinstance(step, Adjust):
        return expected, _predict_adjustment(shop, step, expected)
    if isinstance(step, SafetyStock):
        key = shop.key(step.sku, step.location)
        expected.on_hand[key] = shop.on_hand.get(key, 0)
        expected.safety[key] = step.units
        return expected, lambda session: set_safety_stock(
            shop.tenant,
            session,
            sku=shop.codes[step.sku],
            location_id=shop.locations[step.location],
            safety_stock=step.units,
        )
    if isinstance(step, Place):
        return expected, _predict_placement(shop, before, step, expected)
    numbers = before.open_orders()
    if not numbers:
        return expected, None
    number = numbers[step.order % len(numbers)]
    if isinstance(step, Cancel):
        return expected, _predict_cancellation(shop, before, step, number, expected)
    return expected, _predict_edit(shop, before, step, number, expected)


def _predict_adjustment(shop: Shop, step: Adjust, expected: Expected) -> Action:
    key = shop.key(step.sku, step.location)
    on_hand = shop.on_hand.get(key, 0)
    delta = step.quantity - on_hand if step.kind == "count" else step.quantity
    if on_hand + delta < 0:
        expected.refusal = StockWouldGoNegativeError
    else:
        expected.on_hand[key] = on_hand + delta
    return lambda session: adjust_stock(
        shop.tenant,
        session,
        sku=shop.codes[step.sku],
        location_id=shop.locations[step.location],
        kind=step.kind,
        quantity=step.quantity,
        reason=REASON,
        actor=SYSTEM,
    )


def _predict_placement(shop: Shop, before: Snapshot, step: Place, expected: Expected) -> Action:
    wanted = [(shop.variant_ids[sku], quantity) for sku, quantity in step.lines]
    demands: dict[uuid.UUID, int] = defaultdict(int)
    for variant_id, quantity in wanted:
        demands[variant_id] += quantity
    short, reserved = reserve_outcome(shop, before, demands)
    if short:
        expected.refusal, expected.shortfalls = InsufficientStockError, short
    else:
        expected.new_order = True
        expected.reserved_change = reserved
        # The new order's number is only known afterwards: its lines are expected under 0.
        for line_number, (variant_id, allocated, backordered) in enumerate(spread(reserved, wanted), start=1):
            quantity = allocated + backordered
            expected.lines[(0, line_number)] = Line(variant_id, quantity, 0, allocated, backordered, 0)
        expected.statuses[0] = lifecycle.CONFIRMED
    request = OrderRequest(
        shop.customer_id, [LineRequest(shop.codes[sku], quantity) for sku, quantity in step.lines], ADDRESS
    )
    return lambda session: place_order(shop.tenant, session, request, actor=SYSTEM)


def _predict_cancellation(
    shop: Shop, before: Snapshot, step: Cancel, number: int, expected: Expected
) -> Action | None:
    keys = [key for key in before.lines_of(number) if before.lines[key].cancellable]
    if not keys:
        return None
    if step.line is None:
        chosen = {key: before.lines[key].cancellable for key in keys}
        lines = None
    else:
        key = keys[step.line % len(keys)]
        chosen = {key: 1 + step.quantity % before.lines[key].cancellable}
        lines = [LineCancel(str(before.line_ids[key]), chosen[key])]
    for key, quantity in chosen.items():
        expected.lines[key], released = cut(before.lines[key], quantity)
        expected.released[key] = released
        variant_id = before.lines[key].variant_id
        expected.reserved_change[variant_id] = expected.reserved_change.get(variant_id, 0) - released
    if not any(expected.lines[key].cancellable for key in before.lines_of(number)):
        expected.statuses[number] = lifecycle.CANCELLED
    order_id = before.orders[number][0]
    return lambda session: cancel_order(
        shop.tenant, session, order_id, CancelRequest(REASON, lines), actor=SYSTEM
    )


def _predict_edit(
    shop: Shop,
    before: Snapshot,
    step: EditQuantity | EditAddLine | EditRemoveLine,
    number: int,
    expected: Expected,
) -> Action | None:
    change: AddLine | SetQuantity | RemoveLine
    if isinstance(step, EditAddLine):
        variant_id = shop.variant_ids[step.sku]
        short, reserved = reserve_outcome(shop, before, {variant_id: step.quantity})
        if short:
            expected.refusal, expected.shortfalls = InsufficientStockError, short
        else:
            new_key = (number, max(line for _, line in before.lines_of(number)) + 1)
            allocated = reserved[variant_id]
            expected.lines[new_key] = Line(
                variant_id, step.quantity, 0, allocated, step.quantity - allocated, 0
            )
            expected.reserved_change = reserved
        change = AddLine(shop.codes[step.sku], step.quantity)
    else:
        keys = [key for key in before.lines_of(number) if before.lines[key].live]
        if not keys:
            return None
        key = keys[step.line % len(keys)]
        line = before.lines[key]
        target = 0 if isinstance(step, EditRemoveLine) else step.quantity
        others = sum(before.lines[other].live for other in before.lines_of(number) if other != key)
        if target == line.live or target + others == 0:
            # The edit changes nothing, or would leave an empty order (cancel it instead).
            expected.refusal = ValidationFailedError
        elif target < line.live:
            shrunk, released = cut(line, line.live - target)
            if isinstance(step, EditQuantity):
                # Setting a quantity moves `ordered`; removing a line cancels what is left.
                shrunk = replace(shrunk, ordered=target + line.cancelled, cancelled=line.cancelled)
            expected.lines[key] = shrunk
            expected.released[key] = released
            expected.reserved_change = {line.variant_id: -released}
        else:
            more = target - line.live
            short, reserved = reserve_outcome(shop, before, {line.variant_id: more})
            if short:
                expected.refusal, expected.shortfalls = InsufficientStockError, short
            else:
                allocated = reserved[line.variant_id]
                expected.lines[key] = replace(
                    line,
                    ordered=line.ordered + more,
                    allocated=line.allocated + allocated,
                    backordered=line.backordered + more - allocated,
                )
                expected.reserved_change = reserved
        line_id = str(before.line_ids[key])
        change = RemoveLine(line_id) if isinstance(step, EditRemoveLine) else SetQuantity(line_id, target)
    # An edit may move the order's status (nothing live left, say): not predicted here.
    expected.statuses.pop(number)
    order_id = before.orders[number][0]
    return lambda session: edit_order(shop.tenant, session, order_id, EditRequest([change]), actor=SYSTEM)


def check_step(shop: Shop, before: Snapshot, after: Snapshot, expected: Expected) -> None:
    """The step did exactly what was expected, and nothing else."""
    lines, statuses = dict(expected.lines), dict(expected.statuses)
    new_numbers = sorted(set(after.orders) - set(before.orders))
    assert len(new_numbers) == (1 if expected.new_order else 0), new_numbers
    if expected.new_order:
        for key in [key for key in lines if key[0] == 0]:
            lines[(new_numbers[0], key[1])] = lines.pop(key)
        statuses[new_numbers[0]] = statuses.pop(0)
    assert after.lines == lines
    assert set(after.orders) == set(before.orders) | set(new_numbers)
    assert {number: after.orders[number][1] for number in statuses} == statuses
    for variant_id in shop.variant_ids:
        change = expected.reserved_change.get(variant_id, 0)
        assert after.reserved(variant_id) == before.reserved(variant_id) + change, shop.code(variant_id)
    for key, units in expected.released.items():
        check_released(shop, before, after, key, units)
    check_promises(before, after)


async def run_steps(database: Database, shop: Shop, steps: list[Operation]) -> None:
    """Run each step in a transaction of its own; check what it did and the invariants."""
    async with database.tenant_session(shop.tenant) as session:
        state = await snapshot(session, shop)
    for step in steps:
        if isinstance(step, Settle):
            await settle(database, shop)
            async with database.tenant_session(shop.tenant) as session:
                after = await snapshot(session, shop)
            check_invariants(shop, after)
            check_settled(after)
            await check_holds_settled(database, shop)
            event("Settle moved stock" if after.held != state.held else "Settle found nothing to do")
            state = after
            continue
        expected, action = predict(shop, state, step)
        refused: OrdersmithError | None = None
        if action is not None:
            try:
                async with database.tenant_session(shop.tenant) as session:
                    await action(session)
            except OrdersmithError as error:
                refused = error
        async with database.tenant_session(shop.tenant) as session:
            after = await snapshot(session, shop)
        if expected.refusal is None:
            assert refused is None, (step, refused)
            shop.on_hand.update(expected.on_hand)
            shop.safety.update(expected.safety)
            check_step(shop, state, after, expected)
        else:
            assert isinstance(refused, expected.refusal), (step, refused)
            # A refused step is rolled back whole.
            assert after == state, step
            if isinstance(refused, InsufficientStockError):
                assert sorted(refused.shortfalls, key=lambda item: item.sku) == expected.shortfalls
        check_invariants(shop, after)
        outcome = "skipped" if action is None else "refused" if refused else "done"
        event(f"{type(step).__name__} {outcome}")
        state = after


async def settle(database: Database, shop: Shop) -> None:
    """Hand the store's events to the stock consumers, as workers would (each event once)."""
    for name in (shortfall.CONSUMER_NAME, backorders.CONSUMER_NAME):
        await deliver_outbox(database, shop.tenant.tenant_id, consumer_named(name))


def check_settled(state: Snapshot) -> None:
    """Once the consumers caught up: no location promises units it has not got, no free unit is
    left while an open order waits for its SKU."""
    for key, row in state.stock.items():
        assert row.reserved <= row.on_hand, (key, row)
    open_numbers = set(state.open_orders())
    for (number, _), line in state.lines.items():
        if number in open_numbers and line.backordered:
            assert state.available(line.variant_id) == 0, (number, line)


async def check_holds_settled(database: Database, shop: Shop) -> None:
    """Every open hold a loss placed waits for units of its SKU that the order still has backordered."""
    async with database.tenant_session(shop.tenant) as session:
        rows = await session.execute(
            select(OrderHold.placed_by_id, func.sum(OrderLine.quantity_backordered))
            .join(Order, Order.id == OrderHold.order_id)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(
                Order.customer_id == shop.customer_id,
                OrderHold.released_at.is_(None),
                OrderHold.placed_by_id.startswith(shortfall.HOLDER_PREFIX),
                OrderLine.variant_id
                == cast(func.substr(OrderHold.placed_by_id, len(shortfall.HOLDER_PREFIX) + 1), UUID),
            )
            .group_by(OrderHold.id, OrderHold.placed_by_id)
        )
        for placed_by, waiting in rows:
            assert waiting > 0, (placed_by, waiting)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(operations, min_size=5, max_size=25),
    priorities=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    initial=st.lists(st.integers(0, 8), min_size=SKUS * LOCATIONS, max_size=SKUS * LOCATIONS),
)
async def test_on_hand_and_reserved_always_match_the_ledger_and_the_reservations(
    database: Database,
    tenant: TenantRecord,
    steps: list[Operation],
    priorities: tuple[int, int],
    initial: list[int],
) -> None:
    shop = await open_shop(database, tenant.context, priorities, initial)
    await run_steps(database, shop, steps)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    chunks=st.lists(worker_operations, min_size=3, max_size=12),
    priorities=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    initial=st.lists(st.integers(0, 3), min_size=SKUS * LOCATIONS, max_size=SKUS * LOCATIONS),
)
async def test_once_the_workers_catch_up_nothing_is_promised_twice_or_left_waiting(
    database: Database,
    tenant: TenantRecord,
    chunks: list[tuple[Operation, ...]],
    priorities: tuple[int, int],
    initial: list[int],
) -> None:
    shop = await open_shop(database, tenant.context, priorities, initial)
    await run_steps(database, shop, [step for chunk in chunks for step in chunk])
