"""Returns: requesting one, and moving it through its lifecycle up to receipt and closing.

Every change locks the order first, then the return (and, when units are restocked, the
stock rows), the order every order change follows (ADR 0006). Each step is an entry on
the order's timeline, so returns count as touches when a person works them, and an
outbox event.

What a line can still return is what shipped minus what other returns claim: returns
never exceed shipped quantities. Every return claims its units except a declined one
and an abandoned one: closed without being received and without any outcome (no
refund, store credit or exchange, and no refund ever asked of a provider, since an
attempt whose answer was lost may have given money back). Its units never came back
and nothing was given for them, so the customer may ask them back again. A return
that was received (even with every unit missing) or that gave anything keeps its
claim for good: the same units are never received, refunded, credited or exchanged
twice. So such a return may still be refunded or credited once closed (`keeps_its_units`),
up to what is left of its value (a refund Stripe failed later is given again); one that
gave its units up never is.

On receipt each unit gets a disposition; restocked units go back on a location's shelf
through a `return` row of the inventory ledger, so `on_hand` stays the ledger's sum;
units received (restocked, damaged or held for inspection, not missing) count in the
line's `quantity_returned`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.inventory.models import Location
from ordersmith.tenants.inventory.reservations import lock_stock
from ordersmith.tenants.inventory.service import record_movement
from ordersmith.tenants.orders import timeline
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, load_order, order_row
from ordersmith.tenants.payments.models import PaymentTransaction
from ordersmith.tenants.returns import lifecycle
from ordersmith.tenants.returns.errors import QuantityNotReturnableError
from ordersmith.tenants.returns.models import Return, ReturnDisposition, ReturnLine
from ordersmith.tenants.returns.rules import (
    MAX_NOTE,
    DispositionRequest,
    ReturnRequest,
    check_dispositions,
    check_return,
)
from ordersmith.tenants.returns.views import ReturnView, return_row, return_view

RETURN_REQUESTED = "return.requested"
# Status moves and the (timeline kind, event topic, timestamp column) each writes.
_MOVES: dict[str, tuple[str, str, str]] = {
    lifecycle.APPROVED: ("return_approved", "return.approved", "approved_at"),
    lifecycle.DECLINED: ("return_declined", "return.declined", "declined_at"),
    lifecycle.IN_TRANSIT: ("return_in_transit", "return.in_transit", "in_transit_at"),
    lifecycle.RECEIVED: ("return_received", "return.received", "received_at"),
    lifecycle.CLOSED: ("return_closed", "return.closed", "closed_at"),
}
# Dispositions of units that physically came back (a missing unit did not).
RECEIVED_DISPOSITIONS = ("restock", "damaged", "inspect")


def refund_key_prefix(return_id: uuid.UUID) -> str:
    """What every provider key of the return's refunds holds (payments derive each payment's key from it)."""
    return f"return:{return_id}:refund:"


def _abandoned() -> ColumnElement[bool]:
    """A return closed without the goods and without any outcome, nor a refund ever asked for it."""
    refund_asked = exists().where(
        PaymentTransaction.order_id == Return.order_id,
        PaymentTransaction.kind == "refund",
        # `refund_key_prefix`, spelled in SQL.
        PaymentTransaction.idempotency_key.contains(func.concat("return:", Return.id, ":refund:")),
    )
    return and_(
        Return.status == lifecycle.CLOSED,
        Return.received_at.is_(None),
        Return.refunded_amount == 0,
        Return.store_credit_amount == 0,
        Return.exchange_order_id.is_(None),
        ~refund_asked,
    )


async def claimed_quantities(session: AsyncSession, order_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Units of each order line already on returns that count (all but declined and abandoned ones)."""
    rows = await session.execute(
        select(ReturnLine.order_line_id, func.sum(ReturnLine.quantity))
        .join(Return, Return.id == ReturnLine.return_id)
        .where(Return.order_id == order_id, Return.status.in_(lifecycle.COUNTING), ~_abandoned())
        .group_by(ReturnLine.order_line_id)
    )
    return {line_id: int(quantity) for line_id, quantity in rows}


async def keeps_its_units(session: AsyncSession, return_id: uuid.UUID) -> bool:
    """Whether the return's units count against its lines, as `claimed_quantities` counts them."""
    found = await session.scalar(
        select(Return.id).where(Return.id == return_id, Return.status.in_(lifecycle.COUNTING), ~_abandoned())
    )
    return found is not None


def _line_ids(view: OrderView, request: ReturnRequest) -> list[tuple[OrderLine, int, str, str]]:
    lines = {line.id: line for line in view.lines}
    errors: list[FieldError] = []
    parsed = []
    for index, item in enumerate(request.lines):
        try:
            key: uuid.UUID | None = uuid.UUID(item.line_id)
        except ValueError:
            key = None
        if key is None or key not in lines:
            errors.append(FieldError(f"lines[{index}].line_id", "no such line on this order"))
            continue
        parsed.append((lines[key], item.quantity, item.reason_code, item.note.strip()))
    if errors:
        raise ValidationFailedError("the return is invalid; see errors", errors=errors)
    return parsed


async def request_return(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, request: ReturnRequest, *, actor: Actor
) -> ReturnView:
    """Open a return for shipped units of an order; it waits for approval."""
    check_return(request)
    view = await load_order(session, order_id, lock=True)
    order = view.order
    wanted = _line_ids(view, request)
    claimed = await claimed_quantities(session, order_id)
    too_many = [
        (line, quantity, line.quantity_shipped - claimed.get(line.id, 0))
        for line, quantity, _, _ in wanted
        if quantity > line.quantity_shipped - claimed.get(line.id, 0)
    ]
    if too_many:
        raise QuantityNotReturnableError(
            "; ".join(
                f"line {line.line_number} ({line.sku_code}): {quantity} asked, {returnable} can be returned "
                f"({line.quantity_shipped} shipped, {claimed.get(line.id, 0)} already on returns)"
                for line, quantity, returnable in too_many
            )
            + "; only shipped units come back, once",
            extensions={
                "lines": [
                    {
                        "line_id": str(line.id),
                        "sku": line.sku_code,
                        "requested": quantity,
                        "returnable": returnable,
                        "shipped": line.quantity_shipped,
                        "already_returning": claimed.get(line.id, 0),
                    }
                    for line, quantity, returnable in too_many
                ]
            },
        )
    return_id = uuid7()
    number = await session.scalar(
        insert(Return)
        .values(
            id=return_id,
            order_id=order_id,
            customer_id=order.customer_id,
            status=lifecycle.REQUESTED,
            currency=order.currency,
            note=request.note.strip(),
            requested_by_type=actor.type,
            requested_by_id=actor.id,
        )
        .returning(Return.number)
    )
    await session.execute(
        insert(ReturnLine),
        [
            {
                "id": uuid7(),
                "return_id": return_id,
                "order_line_id": line.id,
                "line_number": line.line_number,
                "quantity": quantity,
                "reason_code": reason_code,
                "note": note,
            }
            for line, quantity, reason_code, note in wanted
        ],
    )
    lines = [
        {
            "line_number": line.line_number,
            "sku": line.sku_code,
            "quantity": quantity,
            "reason_code": reason_code,
        }
        for line, quantity, reason_code, _ in wanted
    ]
    await timeline.record(
        session,
        order_id,
        [Entry("return_requested", {"return_id": str(return_id), "return_number": number, "lines": lines})],
        actor,
    )
    await record_event(
        session,
        tenant,
        RETURN_REQUESTED,
        {"order_id": str(order_id), "number": order.number, "return_id": str(return_id), "lines": lines},
    )
    return await return_view(session, return_id)


async def locked_return(session: AsyncSession, return_id: uuid.UUID) -> tuple[Order, Return]:
    """The return's order and the return, locked in that order."""
    order_id = (await return_row(session, return_id)).order_id
    order = await order_row(session, order_id, lock=True)
    return order, await return_row(session, return_id, lock=True)


async def _move(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    wanted: str,
    *,
    actor: Actor,
    values: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> ReturnView:
    order, row = await locked_return(session, return_id)
    lifecycle.check_transition(row.status, wanted)
    return await write_move(tenant, session, order, row, wanted, actor=actor, values=values, details=details)


async def write_move(
    tenant: TenantContext,
    session: AsyncSession,
    order: Order,
    row: Return,
    wanted: str,
    *,
    actor: Actor,
    values: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> ReturnView:
    """Write a checked status move of a locked return: its row, the timeline and the event."""
    kind, topic, stamp = _MOVES[wanted]
    now = dt.datetime.now(dt.UTC)
    current, number = row.status, row.number
    await session.execute(
        update(Return)
        .where(Return.id == row.id)
        .values({"status": wanted, stamp: now, "updated_at": now, **(values or {})})
    )
    changes = {"return_id": str(row.id), "return_number": number, "status": change(current, wanted)}
    await timeline.record(session, order.id, [Entry(kind, {**changes, **(details or {})})], actor)
    await record_event(
        session,
        tenant,
        topic,
        {"order_id": str(order.id), "number": order.number, "return_id": str(row.id), "status": wanted},
    )
    return await return_view(session, row.id)


async def approve_return(
    tenant: TenantContext, session: AsyncSession, return_id: uuid.UUID, *, actor: Actor
) -> ReturnView:
    """Accept a requested return: the customer may send the units back."""
    return await _move(tenant, session, return_id, lifecycle.APPROVED, actor=actor)


async def decline_return(
    tenant: TenantContext, session: AsyncSession, return_id: uuid.UUID, *, reason: str, actor: Actor
) -> ReturnView:
    """Refuse a requested return, saying why; its units become returnable again."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_NOTE:
        raise ValidationFailedError(
            "the decline is invalid; see errors",
            errors=[FieldError("reason", f"say why, in 1 to {MAX_NOTE} characters")],
        )
    return await _move(
        tenant,
        session,
        return_id,
        lifecycle.DECLINED,
        actor=actor,
        values={"decline_reason": reason},
        details={"reason": reason},
    )


async def mark_in_transit(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    *,
    carrier: str | None,
    tracking_number: str | None,
    tracking_url: str | None,
    actor: Actor,
) -> ReturnView:
    """Record that the customer sent the parcel back, with its tracking when known."""
    errors = []
    for name, value, limit in (("carrier", carrier, 100), ("tracking_number", tracking_number, 100)):
        if value is not None and len(value) > limit:
            errors.append(FieldError(name, f"must be at most {limit} characters"))
    if tracking_url is not None and (
        len(tracking_url) > 2000 or not tracking_url.startswith(("https://", "http://"))
    ):
        errors.append(FieldError("tracking_url", "must be an http(s) address of at most 2000 characters"))
    if errors:
        raise ValidationFailedError("the tracking is invalid; see errors", errors=errors)
    tracking = {"carrier": carrier, "tracking_number": tracking_number, "tracking_url": tracking_url}
    return await _move(
        tenant, session, return_id, lifecycle.IN_TRANSIT, actor=actor, values=tracking, details=tracking
    )


async def return_lines_of(session: AsyncSession, return_id: uuid.UUID) -> dict[uuid.UUID, ReturnLine]:
    """The return's lines by id, as the database has them now."""
    return {
        line.id: line
        for line in await session.scalars(
            select(ReturnLine)
            .where(ReturnLine.return_id == return_id)
            .execution_options(populate_existing=True)
        )
    }


async def write_dispositions(
    tenant: TenantContext,
    session: AsyncSession,
    order: Order,
    row: Return,
    return_lines: dict[uuid.UUID, ReturnLine],
    parsed: list[tuple[uuid.UUID, str, int, uuid.UUID | None]],
    *,
    actor: Actor,
    what: str,
    field: str,
) -> tuple[dict[uuid.UUID, OrderLine], dict[uuid.UUID, str]]:
    """Record checked dispositions of a locked return; restocked units go back on their location's shelf.

    422 on `field` naming the locations this store does not have (`what` names the request). Returns
    the order lines of the return's lines and the codes of the locations named.
    """
    locations = {item for _, _, _, item in parsed if item is not None}
    codes = {
        key: value
        for key, value in await session.execute(
            select(Location.id, Location.code).where(Location.id.in_(locations))
        )
    }
    # Every item of the request was parsed (a bad one is refused before), so indexes match.
    unknown = [
        FieldError(f"{field}[{index}].location_id", f"no such location in this store: {location}")
        for index, (_, _, _, location) in enumerate(parsed)
        if location is not None and location not in codes
    ]
    if unknown:
        raise ValidationFailedError(f"the {what} is invalid; see errors", errors=unknown)
    order_lines = {
        line.id: line
        for line in await session.scalars(
            select(OrderLine)
            .where(OrderLine.id.in_([line.order_line_id for line in return_lines.values()]))
            .execution_options(populate_existing=True)
        )
    }
    restocked = [
        (line_id, quantity, location) for line_id, kind, quantity, location in parsed if kind == "restock"
    ]
    await lock_stock(
        session, [order_lines[return_lines[line_id].order_line_id].variant_id for line_id, _, _ in restocked]
    )
    for line_id, quantity, location in restocked:
        assert location is not None
        order_line = order_lines[return_lines[line_id].order_line_id]
        await record_movement(
            tenant,
            session,
            variant_id=order_line.variant_id,
            location_id=location,
            kind="return",
            quantity=quantity,
            reason=f"return {row.number} of order {order.number} restocked",
            actor=actor,
            reference=f"return:{row.id}",
        )
    await session.execute(
        insert(ReturnDisposition),
        [
            {
                "id": uuid7(),
                "return_id": row.id,
                "return_line_id": line_id,
                "disposition": kind,
                "quantity": quantity,
                "location_id": location,
            }
            for line_id, kind, quantity, location in parsed
        ],
    )
    return order_lines, codes


async def receive_return(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    dispositions: list[DispositionRequest],
    *,
    actor: Actor,
) -> ReturnView:
    """Take the parcel in: give every unit a disposition and put restocked units back on the shelf."""
    order, row = await locked_return(session, return_id)
    lifecycle.check_transition(row.status, lifecycle.RECEIVED)
    return_lines = await return_lines_of(session, return_id)
    parsed = check_dispositions(dispositions, {key: line.quantity for key, line in return_lines.items()})
    order_lines, codes = await write_dispositions(
        tenant, session, order, row, return_lines, parsed, actor=actor, what="receipt", field="dispositions"
    )
    now = dt.datetime.now(dt.UTC)
    came_back: dict[uuid.UUID, int] = defaultdict(int)
    for line_id, kind, quantity, _ in parsed:
        if kind in RECEIVED_DISPOSITIONS:
            came_back[return_lines[line_id].order_line_id] += quantity
    returned_changes = []
    for order_line_id, quantity in sorted(
        came_back.items(), key=lambda item: order_lines[item[0]].line_number
    ):
        line = order_lines[order_line_id]
        await session.execute(
            update(OrderLine)
            .where(OrderLine.id == order_line_id)
            .values(quantity_returned=OrderLine.quantity_returned + quantity, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        returned_changes.append(
            {
                "line_number": line.line_number,
                "sku": line.sku_code,
                "quantity_returned": change(line.quantity_returned, line.quantity_returned + quantity),
            }
        )
    if returned_changes:
        await session.execute(
            update(Order).where(Order.id == order.id).values(version=Order.version + 1, updated_at=now)
        )
    details = {
        "dispositions": [
            {
                "line_number": return_lines[line_id].line_number,
                "disposition": kind,
                "quantity": quantity,
                "location": codes.get(location) if location else None,
            }
            for line_id, kind, quantity, location in parsed
        ],
        "lines": returned_changes,
    }
    return await write_move(tenant, session, order, row, lifecycle.RECEIVED, actor=actor, details=details)


async def close_return(
    tenant: TenantContext, session: AsyncSession, return_id: uuid.UUID, *, actor: Actor
) -> ReturnView:
    """Settle a return: received, or closed without the goods when staff choose.

    Closed without the goods and without any outcome, its units become returnable again.
    """
    return await _move(tenant, session, return_id, lifecycle.CLOSED, actor=actor)
