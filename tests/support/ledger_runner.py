"""Running the stock ledger property tests' steps: what each must do, the call that does it, the checks.

`run_steps` predicts each step from the store as it stands, runs it in a tenant transaction
of its own (as a request would), reads the store back and checks the step did exactly
that, and the invariants. A `Settle` step hands the store's events to the stock consumers
instead, and checks what must hold once the workers caught up.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from hypothesis import event
from sqlalchemy import cast, func, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.errors import OrdersmithError, ValidationFailedError
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.tenants.fulfillment import backorders, shortfall
from ordersmith.tenants.inventory.errors import InsufficientStockError, Shortfall, StockWouldGoNegativeError
from ordersmith.tenants.inventory.service import adjust_stock, set_safety_stock
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.cancellation import CancelRequest, LineCancel, cancel_order
from ordersmith.tenants.orders.edit_requests import AddLine, EditRequest, RemoveLine, SetQuantity
from ordersmith.tenants.orders.edits import edit_order
from ordersmith.tenants.orders.models import Order, OrderHold, OrderLine
from ordersmith.tenants.orders.placement import place_order
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest
from tests.support.ledger_model import (
    REASON,
    Adjust,
    Cancel,
    Change,
    EditAddLine,
    EditQuantity,
    EditRemoveLine,
    Line,
    LineKey,
    Operation,
    Place,
    SafetyStock,
    Settle,
    Shop,
    Snapshot,
    StockKey,
    snapshot,
)
from tests.support.orders import ADDRESS
from tests.support.webhook_receiver import consumer_named, deliver_outbox


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
