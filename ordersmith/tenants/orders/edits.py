"""Editing an order after placement: preview what an edit does, then commit exactly that.

An edit is a list of line changes (add a SKU, set a line's quantity, remove a line, set
a line's unit price) and optionally a new shipping address, on a placed or confirmed
order (the request and outcome types are in `edit_requests.py`). How it behaves, and why:

- **Preview equals commit by construction.** `preview_edit` runs the very same `_apply`
  as `edit_order`, inside a SAVEPOINT that it then rolls back. The preview takes the same
  locks and runs placement's planner (`inventory.reservations.reserve`) on the same
  locked stock, so it reports what committing would do at that moment and leaves
  nothing behind (the savepoint's row locks go with it). One thing differs: an added
  line's id is drawn when the line is written, so the preview's and the commit's differ;
  match added lines by `line_number`, which both give alike.
- **A line's quantity is its live quantity**, ordered - cancelled. Setting it moves
  `quantity_ordered`, so earlier cancellations stay cancellations; removing a line
  cancels what is left of it (`quantity_cancelled`); rows are never deleted. Added
  lines get the next line numbers.
- **An edit keeps at least one unit on the order;** dropping every line is a
  cancellation, which records why.
- **Shipped units are untouchable.** A quantity cannot go below the shipped quantity, a
  line with shipped units can be neither removed nor repriced, and a line whose units
  have all shipped cannot change at all: 409 `line_shipped`.
- **Stock moves with the edit, in the same transaction.** Fewer units give back
  backordered units first, then reserved ones (`reservations.release`); more units,
  summed per SKU with the added lines, are reserved by `reservations.reserve`, or the
  whole edit fails with 409 `insufficient_stock`. Releases run first, so units one line
  gives back can serve another line of the same SKU.
- **Lock order:** the order row, then every stock row the edit touches, in (variant,
  location) order, before any release or reserve: the same order placement locks in,
  so edits and placements of different orders never wait on each other in a cycle.
- **Versions:** every edit bumps `orders.version`; a commit given the
  `expected_version` its preview was computed on refuses with 409 `order_changed` if
  anything changed the order since.
- **Balance due or refund owed** compare the new total with what is settled. Until
  payments exist, the order's total before the edit counts as settled
  (`settled_basis = "order_total"`), so the difference of totals is what is due or
  owed; the payments context registers the amount actually paid with
  `count_paid_amount`, and from then on both follow the payments ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import func, insert, update
from sqlalchemy import inspect as mapper_of
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.platform.tenant_tables import TenantBase
from ordersmith.tenants.inventory.reservations import lock_stock
from ordersmith.tenants.orders import completion, derived, lifecycle, review, timeline
from ordersmith.tenants.orders.edit_requests import (
    AddLine,
    EditOutcome,
    EditRequest,
    LineChange,
    LineEdit,
    RemoveLine,
    SetPrice,
    SetQuantity,
    check_edit,
)
from ordersmith.tenants.orders.edit_stock import (
    EditedLine,
    LineBefore,
    StockEffect,
    move_stock,
    stock_effects,
    write_reservations,
)
from ordersmith.tenants.orders.errors import LineShippedError, OrderChangedError, OrderNotEditableError
from ordersmith.tenants.orders.holds import place_hold
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.placement import skus_by_code, skus_by_id
from ordersmith.tenants.orders.rules import MAX_LINES, check_total, raise_if
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, load_order

ORDER_EDITED = "order.edited"
EDITABLE = frozenset({lifecycle.PLACED, lifecycle.CONFIRMED})

PaidAmountSource = Callable[[AsyncSession, uuid.UUID], Awaitable[int]]
_PAID_AMOUNT: list[PaidAmountSource] = []


def count_paid_amount(source: PaidAmountSource) -> PaidAmountSource:
    """Register where an order's net paid amount comes from (the payments ledger)."""
    _PAID_AMOUNT[:] = [source]
    return source


async def _settled(session: AsyncSession, order: Order) -> tuple[int, str]:
    if _PAID_AMOUNT:
        return await _PAID_AMOUNT[0](session, order.id), "payments"
    return order.total_amount, "order_total"


def _as_edit(line: EditedLine) -> LineEdit:
    was = line.was
    return LineEdit(
        line.line_id,
        line.line_number,
        line.sku,
        line.action,
        None if was is None else line.old_quantity,
        line.new_quantity,
        None if was is None else was.unit_price_amount,
        line.new_price,
    )


def _line_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _shipped_refusal(index: int, item: LineChange, row: OrderLine) -> LineShippedError | None:
    """The 409 to answer when a change would touch units that already shipped."""
    shipped, live = row.quantity_shipped, row.quantity_ordered - row.quantity_cancelled
    if shipped == 0 or (isinstance(item, SetQuantity) and item.quantity >= shipped and shipped < live):
        return None
    if shipped >= live:
        detail = f"line {row.line_number} has shipped all its {shipped} units; it cannot change any more"
    elif isinstance(item, SetQuantity):
        detail = f"line {row.line_number} has {shipped} units shipped; its quantity cannot go below {shipped}"
    elif isinstance(item, RemoveLine):
        detail = (
            f"line {row.line_number} has {shipped} units shipped, so it cannot be removed; "
            f"set its quantity to {shipped} to drop the rest"
        )
    else:
        detail = f"line {row.line_number} has {shipped} units shipped at its price; the price cannot change"
    return LineShippedError(
        detail,
        extensions={
            "field": f"changes[{index}]",
            "line_id": str(row.id),
            "line_number": row.line_number,
            "quantity_shipped": shipped,
        },
    )


def _fields(item: LineChange) -> tuple[str, ...]:
    """What of a line a change sets: a line takes at most one change per field."""
    if isinstance(item, SetQuantity):
        return ("quantity",)
    if isinstance(item, SetPrice):
        return ("price",)
    return ("quantity", "price")


async def _existing_lines(
    session: AsyncSession,
    view: OrderView,
    changes: Sequence[LineChange],
    errors: list[FieldError],
    refusals: list[LineShippedError],
) -> dict[uuid.UUID, EditedLine]:
    """The order's lines the changes touch, with their new quantity and price."""
    by_id = {line.id: line for line in view.lines}
    claimed: dict[tuple[uuid.UUID, str], int] = {}
    worked: dict[uuid.UUID, EditedLine] = {}
    quantity_set_by: dict[uuid.UUID, int] = {}
    for index, item in enumerate(changes):
        if isinstance(item, AddLine):
            continue
        name = f"changes[{index}].line_id"
        line_id = _line_id(item.line_id)
        row = by_id.get(line_id) if line_id is not None else None
        if row is None:
            errors.append(FieldError(name, f"no line {item.line_id!r} on this order; see the order's lines"))
            continue
        if row.quantity_ordered == row.quantity_cancelled:
            errors.append(
                FieldError(name, f"line {row.line_number} is cancelled; add the SKU as a new line instead")
            )
            continue
        fields = _fields(item)
        earlier = next((claimed[row.id, f] for f in fields if (row.id, f) in claimed), None)
        if earlier is not None:
            errors.append(
                FieldError(
                    name,
                    f"line {row.line_number} is already changed by changes[{earlier}]; "
                    "give one change per line and field",
                )
            )
            continue
        claimed.update({(row.id, f): index for f in fields})
        refusal = _shipped_refusal(index, item, row)
        if refusal is not None:
            refusals.append(refusal)
            continue
        line = worked.setdefault(
            row.id,
            EditedLine(
                row.id,
                row.line_number,
                row.variant_id,
                row.sku_code,
                row.name,
                False,
                row.quantity_ordered - row.quantity_cancelled,
                row.unit_price_amount,
                LineBefore.of(row),
            ),
        )
        if isinstance(item, SetQuantity):
            line.new_quantity = item.quantity
            quantity_set_by[row.id] = index
            check_total(f"changes[{index}].quantity", item.quantity * line.new_price, errors)
        elif isinstance(item, SetPrice):
            line.new_price = item.unit_price_amount
            check_total(
                f"changes[{index}].unit_price_amount", item.unit_price_amount * line.new_quantity, errors
            )
        else:
            line.new_quantity, line.is_removed = 0, True
    skus = await skus_by_id(session, [line.variant_id for line in worked.values()])
    for line in worked.values():
        sku = skus[line.variant_id]
        line.allow_backorder = sku.allow_backorder
        if not sku.is_active and line.new_quantity > line.old_quantity:
            # Fewer units, or none, may still be asked of a SKU taken off sale; more may not.
            errors.append(
                FieldError(
                    f"changes[{quantity_set_by[line.line_id]}].quantity",
                    f"{sku.code} is not for sale (inactive); lower or remove the line, "
                    "or put the SKU back on sale first",
                )
            )
    return worked


async def _added_lines(
    session: AsyncSession, view: OrderView, changes: Sequence[LineChange], errors: list[FieldError]
) -> list[EditedLine]:
    """New lines from the catalog, numbered after the order's last line."""
    adds = [(index, item) for index, item in enumerate(changes) if isinstance(item, AddLine)]
    if not adds:
        return []
    if len(view.lines) + len(adds) > MAX_LINES:
        errors.append(FieldError("changes", f"an order has at most {MAX_LINES} lines"))
    skus = await skus_by_code(session, [item.sku for _, item in adds])
    currency = view.order.currency
    number = max((line.line_number for line in view.lines), default=0)
    added = []
    for index, item in adds:
        name = f"changes[{index}].sku"
        sku = skus.get(item.sku.lower())
        if sku is None:
            errors.append(FieldError(name, f"no SKU {item.sku!r} in this store"))
            continue
        if not sku.is_active:
            errors.append(FieldError(name, f"{sku.code} is not for sale (inactive)"))
            continue
        if item.unit_price_amount is None and sku.currency != currency:
            errors.append(
                FieldError(
                    name,
                    f"{sku.code} is priced in {sku.currency} but the order is in {currency}; "
                    f"give unit_price_amount in {currency}",
                )
            )
            continue
        price = sku.price_amount if item.unit_price_amount is None else item.unit_price_amount
        check_total(f"changes[{index}].unit_price_amount", price * item.quantity, errors)
        number += 1
        added.append(
            EditedLine(uuid7(), number, sku.id, sku.code, sku.name, sku.allow_backorder, item.quantity, price)
        )
    return added


async def _write_lines(session: AsyncSession, order_id: uuid.UUID, lines: list[EditedLine]) -> None:
    added = []
    for line in lines:
        was = line.was
        if was is None:
            added.append(
                {
                    "id": line.line_id,
                    "order_id": order_id,
                    "line_number": line.line_number,
                    "variant_id": line.variant_id,
                    "sku_code": line.sku,
                    "name": line.name,
                    "unit_price_amount": line.new_price,
                    "quantity_ordered": line.new_quantity,
                    "quantity_allocated": line.allocated,
                    "quantity_backordered": line.backordered,
                }
            )
            continue
        cancelled = was.cancelled + (line.old_quantity if line.is_removed else 0)
        # Only if the line is still as the edit read it: every writer locks the order
        # first, so this refuses only one that did not (compare-and-set, as cancelling does).
        written = await session.execute(
            update(OrderLine)
            .where(
                OrderLine.id == line.line_id,
                OrderLine.quantity_ordered == was.ordered,
                OrderLine.quantity_cancelled == was.cancelled,
                OrderLine.quantity_allocated == was.allocated,
                OrderLine.quantity_backordered == was.backordered,
                OrderLine.quantity_shipped == was.shipped,
            )
            .values(
                quantity_ordered=was.ordered if line.is_removed else cancelled + line.new_quantity,
                quantity_cancelled=cancelled,
                quantity_allocated=line.allocated,
                quantity_backordered=line.backordered,
                unit_price_amount=line.new_price,
                updated_at=func.now(),
            )
            .returning(OrderLine.id)
        )
        if written.one_or_none() is None:
            raise OrderChangedError(
                "the order changed while it was being edited (a shipment?); "
                "read it and preview the edit again"
            )
    if added:
        await session.execute(insert(OrderLine), added)


def _timeline_changes(
    lines: list[LineEdit], stock: list[StockEffect], old: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any]:
    """The "edited" entry: each line's and each order field's old and new values, and the stock moved."""
    changes: dict[str, Any] = {
        "lines": [
            {
                "line_id": str(line.line_id),
                "line_number": line.line_number,
                "sku": line.sku,
                "action": line.action,
                "quantity": change(line.old_quantity, line.new_quantity),
                "unit_price_amount": change(line.old_unit_price_amount, line.new_unit_price_amount),
            }
            for line in lines
        ],
        "stock": [
            {
                "sku": effect.sku,
                "reserved": effect.reserved,
                "released": effect.released,
                "backordered_change": effect.backordered_change,
                "locations": [
                    {
                        "location": item.location_code,
                        "reserved": item.reserved,
                        "released": item.released,
                        "reason": item.reason,
                    }
                    for item in effect.locations
                ],
            }
            for effect in stock
        ],
    }
    changes.update({name: change(old[name], new[name]) for name in old if old[name] != new[name]})
    return changes


async def _apply(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, request: EditRequest, actor: Actor
) -> EditOutcome:
    check_edit(request)
    before = await load_order(session, order_id, lock=True)
    order = before.order
    if request.expected_version is not None and request.expected_version != order.version:
        raise OrderChangedError(
            f"the order is at version {order.version}, not {request.expected_version}; "
            "preview the edit again",
            extensions={"current_version": order.version, "expected_version": request.expected_version},
        )
    if order.status not in EDITABLE:
        raise OrderNotEditableError(order.status, EDITABLE)
    old: dict[str, Any] = {
        "version": order.version,
        "subtotal_amount": order.subtotal_amount,
        "total_amount": order.total_amount,
        "shipping_address": dict(order.shipping_address),
        "fulfillment_status": order.fulfillment_status,
        "payment_status": order.payment_status,
    }
    settled_amount, settled_basis = await _settled(session, order)

    errors: list[FieldError] = []
    refusals: list[LineShippedError] = []
    existing = await _existing_lines(session, before, request.changes, errors, refusals)
    added = await _added_lines(session, before, request.changes, errors)
    lines = sorted(
        (line for line in [*existing.values(), *added] if line.is_changed), key=lambda line: line.line_number
    )
    address = old["shipping_address"] if request.shipping_address is None else dict(request.shipping_address)
    live = {row.id: row.quantity_ordered - row.quantity_cancelled for row in before.lines}
    subtotal = sum(
        existing[row.id].new_price * existing[row.id].new_quantity
        if row.id in existing
        else row.unit_price_amount * live[row.id]
        for row in before.lines
    ) + sum(line.new_price * line.new_quantity for line in added)
    check_total("changes", subtotal, errors)
    units = sum(line.new_quantity for line in [*existing.values(), *added]) + sum(
        quantity for line_id, quantity in live.items() if line_id not in existing
    )
    if units == 0 and not refusals:
        # An empty confirmed order would never ship nor complete; cancelling records why.
        errors.append(
            FieldError(
                "changes",
                "an edit cannot remove every line; to drop them all, cancel the order with a reason "
                "(POST /api/v1/orders/{id}/cancel)",
            )
        )
    if not errors and not refusals and not lines and address == old["shipping_address"]:
        errors.append(FieldError("changes", "this edit changes nothing on the order"))
    raise_if(errors)
    if refusals:
        raise refusals[0]

    await lock_stock(session, {line.variant_id for line in lines if line.new_quantity != line.old_quantity})
    moves = await move_stock(session, lines)
    await _write_lines(session, order_id, lines)
    await write_reservations(session, order_id, moves)
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(
            subtotal_amount=subtotal,
            # No shipping or tax yet: the total is the lines' sum, as at placement.
            total_amount=subtotal,
            shipping_address=address,
            version=Order.version + 1,
            updated_at=func.now(),
        )
    )
    fulfillment_moves = await derived.reservations_moved(tenant, session, order_id)
    payment, fulfillment = await derived.refresh(session, order_id)
    stock = await stock_effects(session, lines, moves)
    edits = [_as_edit(line) for line in lines]
    new: dict[str, Any] = {
        "version": old["version"] + 1,
        "subtotal_amount": subtotal,
        "total_amount": subtotal,
        "shipping_address": address,
        "fulfillment_status": fulfillment,
        "payment_status": payment,
    }
    changes = _timeline_changes(edits, stock, old, new)
    if fulfillment_moves:
        changes["fulfillment_orders"] = fulfillment_moves
    await timeline.record(session, order_id, [Entry("edited", changes)], actor)
    await record_event(
        session,
        tenant,
        ORDER_EDITED,
        {
            "order_id": str(order_id),
            "number": order.number,
            "version": new["version"],
            "currency": order.currency,
            "old_total_amount": old["total_amount"],
            "total_amount": subtotal,
            "shipping_address_changed": address != old["shipping_address"],
            "lines": [
                {
                    "line_id": str(line.line_id),
                    "sku": line.sku,
                    "action": line.action,
                    "quantity": line.new_quantity,
                    "unit_price_amount": line.new_unit_price_amount,
                }
                for line in edits
            ],
        },
    )
    await _review_if_grown(tenant, session, before, old["total_amount"], subtotal)
    # Removing the last unshipped units of a paid order leaves nothing to wait for.
    await completion.settle(tenant, session, order_id)
    return EditOutcome(
        await load_order(session, order_id),
        old["version"],
        old["subtotal_amount"],
        old["total_amount"],
        settled_amount,
        settled_basis,
        edits,
        address != old["shipping_address"],
        stock,
    )


async def _review_if_grown(
    tenant: TenantContext, session: AsyncSession, before: OrderView, old_total: int, new_total: int
) -> None:
    """The store's review rule, as at placement, for an order an edit took over its threshold.

    An order confirmed under the threshold and edited over it would otherwise skip the
    review the rule exists for. It gets the rule's hold (by the system), unless a
    fraud review is already open on it; a confirmed order stays confirmed, and the hold
    stops its fulfillment until someone releases it. An order that was over the
    threshold already (reviewed when placed, or placed before the rule) is not held again.
    """
    # `before.order` already holds the edit's totals (the session copies updates onto it).
    if new_total <= old_total:
        return
    rule = await review.read_rule(session)
    currency = before.order.currency
    rule_hold = rule.hold_for(currency, new_total)
    if rule_hold is None or rule.hold_for(currency, old_total) is not None:
        return
    if any(hold.type == review.HOLD_TYPE for hold in before.open_holds):
        return
    await place_hold(
        tenant, session, before.order.id, rule_hold, actor=rule_hold.actor, rules=rule_hold.rules
    )


_Row = TypeVar("_Row", bound=TenantBase)


def _copy(row: _Row) -> _Row:
    """A copy outside the session, which a savepoint rollback cannot expire."""
    return type(row)(**{column.key: getattr(row, column.key) for column in mapper_of(type(row)).column_attrs})


def _detached(outcome: EditOutcome) -> EditOutcome:
    view = outcome.view
    copied = OrderView(
        _copy(view.order),
        [_copy(line) for line in view.lines],
        list(view.reservations),
        [_copy(hold) for hold in view.holds],
    )
    return replace(outcome, view=copied)


async def preview_edit(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, request: EditRequest, *, actor: Actor
) -> EditOutcome:
    """What committing this edit would do now: the same work, rolled back to a savepoint."""
    savepoint = await session.begin_nested()
    try:
        return _detached(await _apply(tenant, session, order_id, request, actor))
    finally:
        await savepoint.rollback()


async def edit_order(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, request: EditRequest, *, actor: Actor
) -> EditOutcome:
    """Apply the edit in the caller's transaction (lines, stock, totals, timeline), or raise."""
    return await _apply(tenant, session, order_id, request, actor)
