"""Cancelling an order, whole or by line quantity, and giving its stock back at once.

A cancellation is a quantity change: `quantity_cancelled` grows, taken first from the
backordered units (nothing is held for them) and then from the allocated ones, whose
reservations are released in the same transaction (`inventory.reservations.release`).
Shipped units can never be cancelled.

Without lines, "cancel the order" means cancel everything not shipped yet:
- nothing had shipped: the order becomes `cancelled` (the lifecycle table decides
  whether it may), with its reason, and its open holds are released;
- some units had shipped: what is left is cancelled and the order stays as it is, now
  fully shipped, for someone to complete; a shipped order is never "cancelled".
A partial cancellation that leaves nothing live behind does the same.

Concurrency: the order row is locked first, then each line is changed only if its
buckets are still the ones read under that lock (compare and set), and the DB CHECK
`buckets_add_up` guards the rest; the stock rows are locked last, together, in the
fixed (variant, location) order every reservation uses. A shipment that slipped in meanwhile turns into a
409 `order_changed` and the whole transaction rolls back: nothing is half-applied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.inventory.reservations import lock_stock, release
from ordersmith.tenants.orders import completion, derived, holds, lifecycle, timeline
from ordersmith.tenants.orders.errors import (
    NothingToCancelError,
    OrderChangedError,
    QuantityNotCancellableError,
)
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.rules import MAX_LINE_QUANTITY, MAX_LINES, MAX_REASON
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, cancellable, load_order

ORDER_CANCELLED = "order.cancelled"
ORDER_LINES_CANCELLED = "order.lines_cancelled"
HOLDS_RELEASED_NOTE = "released because the order was cancelled"


@dataclass(frozen=True)
class LineCancel:
    """Cancel this many units of one line of the order."""

    line_id: str
    quantity: int


@dataclass(frozen=True)
class CancelRequest:
    """Why, and which quantities; no lines means everything not shipped yet."""

    reason: str
    lines: Sequence[LineCancel] | None = None


@dataclass(frozen=True)
class _Cut:
    """What one line gives up: a draft's units, then its backorder, then its reserved units."""

    line: OrderLine
    from_pending: int
    from_backordered: int
    from_allocated: int

    @property
    def quantity(self) -> int:
        return self.from_pending + self.from_backordered + self.from_allocated


def _cut(line: OrderLine, quantity: int) -> _Cut:
    from_pending = min(quantity, line.quantity_pending)
    from_backordered = min(quantity - from_pending, line.quantity_backordered)
    return _Cut(line, from_pending, from_backordered, quantity - from_pending - from_backordered)


def _check_request(request: CancelRequest) -> None:
    errors: list[FieldError] = []
    if not request.reason.strip() or len(request.reason) > MAX_REASON:
        errors.append(FieldError("reason", f"say why, in 1 to {MAX_REASON} characters"))
    if request.lines is not None:
        if not request.lines:
            errors.append(
                FieldError("lines", "give at least one line, or leave lines out to cancel everything")
            )
        if len(request.lines) > MAX_LINES:
            errors.append(FieldError("lines", f"at most {MAX_LINES} lines at once"))
        for index, item in enumerate(request.lines):
            quantity = item.quantity
            if isinstance(quantity, bool) or not 1 <= quantity <= MAX_LINE_QUANTITY:
                errors.append(
                    FieldError(
                        f"lines[{index}].quantity", f"must be a whole number from 1 to {MAX_LINE_QUANTITY}"
                    )
                )
    if errors:
        raise ValidationFailedError("the cancellation is invalid; see errors", errors=errors)


def _line_key(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _plan(view: OrderView, request: CancelRequest) -> list[_Cut]:
    """Which units of which lines to cancel; 422 for lines not on the order, 409 for too many."""
    if request.lines is None:
        cuts = [_cut(line, cancellable(line)) for line in view.lines if cancellable(line)]
        if not cuts:
            raise NothingToCancelError(
                "every unit of this order has shipped or was cancelled; complete the order instead"
            )
        return cuts
    by_id = {line.id: line for line in view.lines}
    errors: list[FieldError] = []
    wanted: dict[uuid.UUID, int] = {}
    for index, item in enumerate(request.lines):
        key = _line_key(item.line_id)
        if key is None or key not in by_id:
            errors.append(FieldError(f"lines[{index}].line_id", "no such line on this order"))
        elif key in wanted:
            errors.append(FieldError(f"lines[{index}].line_id", "this line is named twice; name it once"))
        else:
            wanted[key] = item.quantity
    if errors:
        raise ValidationFailedError("the cancellation is invalid; see errors", errors=errors)
    too_many = [
        (by_id[key], quantity) for key, quantity in wanted.items() if quantity > cancellable(by_id[key])
    ]
    if too_many:
        raise QuantityNotCancellableError(
            "; ".join(
                f"line {line.line_number} ({line.sku_code}): {quantity} asked, "
                f"{cancellable(line)} can still be cancelled ({line.quantity_shipped} shipped, "
                f"{line.quantity_cancelled} already cancelled)"
                for line, quantity in too_many
            )
            + "; shipped units are returned, not cancelled",
            extensions={
                "lines": [
                    {
                        "line_id": str(line.id),
                        "sku": line.sku_code,
                        "requested": quantity,
                        "cancellable": cancellable(line),
                        "shipped": line.quantity_shipped,
                        "cancelled": line.quantity_cancelled,
                    }
                    for line, quantity in too_many
                ]
            },
        )
    return [_cut(line, wanted[line.id]) for line in view.lines if line.id in wanted]


def _changed() -> OrderChangedError:
    return OrderChangedError(
        "the order changed while it was being cancelled (a shipment?); read it and retry"
    )


async def _apply(session: AsyncSession, cut: _Cut, now: dt.datetime) -> None:
    """Move the units between buckets, only if the line is still as it was read."""
    line = cut.line
    try:
        changed = await session.execute(
            update(OrderLine)
            .where(
                OrderLine.id == line.id,
                OrderLine.quantity_cancelled == line.quantity_cancelled,
                OrderLine.quantity_pending == line.quantity_pending,
                OrderLine.quantity_allocated == line.quantity_allocated,
                OrderLine.quantity_backordered == line.quantity_backordered,
                OrderLine.quantity_shipped == line.quantity_shipped,
            )
            .values(
                quantity_cancelled=OrderLine.quantity_cancelled + cut.quantity,
                quantity_pending=OrderLine.quantity_pending - cut.from_pending,
                quantity_backordered=OrderLine.quantity_backordered - cut.from_backordered,
                quantity_allocated=OrderLine.quantity_allocated - cut.from_allocated,
                updated_at=now,
            )
            .returning(OrderLine.id)
            .execution_options(synchronize_session=False)
        )
        if changed.one_or_none() is None:
            raise _changed()
    except IntegrityError:
        raise _changed() from None


def _line_change(cut: _Cut, released: list[dict[str, Any]]) -> dict[str, Any]:
    line = cut.line
    return {
        "line_id": str(line.id),
        "line_number": line.line_number,
        "sku": line.sku_code,
        "quantity": cut.quantity,
        "quantity_cancelled": change(line.quantity_cancelled, line.quantity_cancelled + cut.quantity),
        "quantity_backordered": change(
            line.quantity_backordered, line.quantity_backordered - cut.from_backordered
        ),
        "quantity_allocated": change(line.quantity_allocated, line.quantity_allocated - cut.from_allocated),
        "released": released,
    } | (
        # A draft's units, cancelled before anything was reserved for them.
        {"quantity_pending": change(line.quantity_pending, line.quantity_pending - cut.from_pending)}
        if cut.from_pending
        else {}
    )


async def cancel_order(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, request: CancelRequest, *, actor: Actor
) -> OrderView:
    """Cancel the order, or some line quantities of it, and release their stock at once."""
    _check_request(request)
    reason = request.reason.strip()
    view = await load_order(session, order_id, lock=True)
    order = view.order
    # Read before any update: the session copies updates onto the loaded rows.
    status, number, version = order.status, order.number, order.version
    subtotal, total = order.subtotal_amount, order.total_amount
    derived_before = {"payment_status": order.payment_status, "fulfillment_status": order.fulfillment_status}
    # Only an open order has quantities to cancel; any other answers what it may become.
    if status not in lifecycle.OPEN:
        lifecycle.check_transition(status, lifecycle.CANCELLED)
    cuts = _plan(view, request)
    codes = {item.location_id: item.location_code for item in view.reservations}
    now = dt.datetime.now(dt.UTC)

    for cut in cuts:
        await _apply(session, cut, now)
    # All at once, in the one lock order; releasing line by line could deadlock with a placement.
    await lock_stock(session, [cut.line.variant_id for cut in cuts if cut.from_allocated])
    line_changes = []
    for cut in cuts:
        given_back = await release(session, cut.line.id, cut.from_allocated)
        line_changes.append(
            _line_change(
                cut, [{"location": codes[item.location_id], "quantity": item.quantity} for item in given_back]
            )
        )
    cut_amount = sum(cut.line.unit_price_amount * cut.quantity for cut in cuts)
    new_subtotal, new_total = subtotal - cut_amount, total - cut_amount
    left = {cut.line.id: cancellable(cut.line) - cut.quantity for cut in cuts}
    live_left = sum(left.get(line.id, cancellable(line)) for line in view.lines)
    shipped = sum(line.quantity_shipped for line in view.lines)
    becomes_cancelled = live_left == 0 and shipped == 0

    entries = [
        Entry(
            "lines_cancelled",
            {
                "reason": reason,
                "lines": line_changes,
                "subtotal_amount": change(subtotal, new_subtotal),
                "total_amount": change(total, new_total),
                "version": change(version, version + 1),
            },
        )
    ]
    values: dict[str, Any] = {
        "subtotal_amount": new_subtotal,
        "total_amount": new_total,
        "version": Order.version + 1,
        "updated_at": now,
    }
    events: list[tuple[str, dict[str, Any]]] = []
    payload: dict[str, Any] = {
        "order_id": str(order_id),
        "number": number,
        "reason": reason,
        "lines": [
            {"line_id": item["line_id"], "sku": item["sku"], "quantity": item["quantity"]}
            for item in line_changes
        ],
        "subtotal_amount": new_subtotal,
        "total_amount": new_total,
    }
    if becomes_cancelled:
        lifecycle.check_transition(status, lifecycle.CANCELLED)
        values |= {"status": lifecycle.CANCELLED, "cancelled_at": now, "cancel_reason": reason}
        entries.append(Entry("cancelled", {"status": change(status, lifecycle.CANCELLED), "reason": reason}))
        events.append((ORDER_CANCELLED, payload))
        # A cancelled order waits for nothing: its holds leave the team's queue.
        open_holds = view.open_holds
        hold_entries, hold_events = holds.release_entries(order, open_holds, HOLDS_RELEASED_NOTE)
        await holds.release_holds(session, order, open_holds, note=HOLDS_RELEASED_NOTE, actor=actor)
        entries += hold_entries
        events += hold_events
    else:
        events.append((ORDER_LINES_CANCELLED, payload))
    await session.execute(update(Order).where(Order.id == order_id).values(**values))
    # A fulfillment order left with nothing to ship is cancelled or closed now, not later.
    if moves := await derived.reservations_moved(tenant, session, order_id):
        entries[0].changes["fulfillment_orders"] = moves
    payment, fulfillment = await derived.refresh(session, order_id)
    # What the cut changed beyond itself: a paid order now owes a refund, the rest has shipped.
    derived_after = {"payment_status": payment, "fulfillment_status": fulfillment}
    entries[0].changes.update(
        {
            name: change(old, derived_after[name])
            for name, old in derived_before.items()
            if old != derived_after[name]
        }
    )
    await timeline.record(session, order_id, entries, actor)
    await record_events(session, tenant, events)
    # Cancelling the last unshipped units of a paid order leaves nothing to wait for.
    await completion.settle(tenant, session, order_id)
    return await load_order(session, order_id)
