"""Draft orders: an order written down before it is placed, promising no stock.

A draft's units sit in its lines' `pending` bucket: nothing is reserved or backordered,
so it holds back nothing another order could have. While it is a draft, its content is
replaced whole (customer, lines, address); placing it reserves stock exactly as a new
order would (the same planner, the same reasons, the same 409 `insufficient_stock`),
moves the units out of `pending`, and confirms it unless a hold stops it: one placed on
the draft, or the store's review rules' (`review.py`). Prices are the draft's: the
quote the customer was given.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.customers.service import live_customer_id
from ordersmith.tenants.inventory.models import Reservation
from ordersmith.tenants.inventory.reservations import Demand, reserve
from ordersmith.tenants.orders import lifecycle, review, timeline
from ordersmith.tenants.orders.errors import OrderChangedError, OrderNotDraftError
from ordersmith.tenants.orders.holds import ORDER_CONFIRMED, place_hold
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.placement import Sku, priced_lines, skus_by_code, skus_by_id
from ordersmith.tenants.orders.placement_write import (
    ORDER_PLACED,
    placed_entry,
    reservation_rows,
    spread,
)
from ordersmith.tenants.orders.rules import OrderRequest, check_order, check_total, clean_tags, raise_if
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, load_order

ORDER_DRAFTED = "order.drafted"
ORDER_DRAFT_CHANGED = "order.draft_changed"


async def _content(
    session: AsyncSession, request: OrderRequest
) -> tuple[uuid.UUID, str, int, list[tuple[Sku, int, int]]]:
    """The checked customer, currency, subtotal and priced lines of a draft, or 422."""
    check_order(request)
    errors: list[FieldError] = []
    if request.hold is not None:
        errors.append(
            FieldError(
                "hold", "a draft takes no hold at creation; hold it with POST /api/v1/orders/{id}/hold"
            )
        )
    skus = await skus_by_code(session, [line.sku for line in request.lines])
    customer_id = await live_customer_id(session, request.customer_id)
    if customer_id is None:
        errors.append(FieldError("customer_id", "no such customer in this store; create it first"))
    known = [skus[line.sku.lower()] for line in request.lines if line.sku.lower() in skus]
    currency = request.currency or (known[0].currency if known else "")
    priced = priced_lines(request, skus, currency, errors)
    subtotal = sum(price * quantity for _, quantity, price in priced)
    check_total("lines", subtotal, errors)
    raise_if(errors)
    assert customer_id is not None
    return customer_id, currency, subtotal, priced


def _line_rows(order_id: uuid.UUID, priced: list[tuple[Sku, int, int]]) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid7(),
            "order_id": order_id,
            "line_number": number,
            "variant_id": sku.id,
            "sku_code": sku.code,
            "name": sku.name,
            "unit_price_amount": price,
            "quantity_ordered": quantity,
            "quantity_pending": quantity,
        }
        for number, (sku, quantity, price) in enumerate(priced, start=1)
    ]


def _summary(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "sku": line["sku_code"],
            "quantity": line["quantity_ordered"],
            "unit_price_amount": line["unit_price_amount"],
        }
        for line in lines
    ]


async def create_draft(
    tenant: TenantContext, session: AsyncSession, request: OrderRequest, *, actor: Actor
) -> OrderView:
    """Write an order down as a draft: priced, not placed, holding no stock."""
    customer_id, currency, subtotal, priced = await _content(session, request)
    order_id = uuid7()
    number = await session.scalar(
        insert(Order)
        .values(
            id=order_id,
            status=lifecycle.DRAFT,
            customer_id=customer_id,
            currency=currency,
            subtotal_amount=subtotal,
            total_amount=subtotal,
            shipping_address=dict(request.shipping_address),
            channel=request.channel,
            external_reference=request.external_reference,
            tags=clean_tags(request.tags),
        )
        .returning(Order.number)
    )
    lines = _line_rows(order_id, priced)
    await session.execute(insert(OrderLine), lines)
    await timeline.record(
        session,
        order_id,
        [Entry("drafted", {"status": change(None, lifecycle.DRAFT), "lines": _summary(lines)})],
        actor,
    )
    await record_events(
        session,
        tenant,
        [
            (
                ORDER_DRAFTED,
                {"order_id": str(order_id), "number": number, "currency": currency, "total_amount": subtotal},
            )
        ],
    )
    return await load_order(session, order_id)


async def replace_draft(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    request: OrderRequest,
    *,
    expected_version: int | None,
    actor: Actor,
) -> OrderView:
    """Replace a draft's customer, lines and address whole; it still holds no stock."""
    view = await load_order(session, order_id, lock=True)
    order = view.order
    if order.status != lifecycle.DRAFT:
        raise OrderNotDraftError(order.status)
    if expected_version is not None and expected_version != order.version:
        raise OrderChangedError(
            f"the draft is at version {order.version}, not {expected_version}; read it again",
            extensions={"current_version": order.version, "expected_version": expected_version},
        )
    customer_id, currency, subtotal, priced = await _content(session, request)
    old_total, old_version = order.total_amount, order.version
    # Every field the replacement may change, as the timeline shows it: what differs is recorded.
    fields = {
        "customer_id": str(customer_id),
        "currency": currency,
        "shipping_address": dict(request.shipping_address),
        "channel": request.channel,
        "external_reference": request.external_reference,
        "tags": clean_tags(request.tags),
    }
    before = {name: getattr(order, name) for name in fields} | {"customer_id": str(order.customer_id)}
    old_lines = [
        {
            "sku_code": line.sku_code,
            "quantity_ordered": line.quantity_ordered,
            "unit_price_amount": line.unit_price_amount,
        }
        for line in view.lines
        if line.quantity_pending
    ]
    # A draft's lines hold nothing anywhere: no reservation, shipment or payment points at them.
    await session.execute(delete(OrderLine).where(OrderLine.order_id == order_id))
    lines = _line_rows(order_id, priced)
    await session.execute(insert(OrderLine), lines)
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(
            customer_id=customer_id,
            currency=currency,
            subtotal_amount=subtotal,
            total_amount=subtotal,
            shipping_address=dict(request.shipping_address),
            channel=request.channel,
            external_reference=request.external_reference,
            tags=clean_tags(request.tags),
            version=Order.version + 1,
            updated_at=dt.datetime.now(dt.UTC),
        )
    )
    changes = {
        "version": change(old_version, old_version + 1),
        "total_amount": change(old_total, subtotal),
        "lines": change(_summary(old_lines), _summary(lines)),
        **{name: change(before[name], value) for name, value in fields.items() if before[name] != value},
    }
    await timeline.record(session, order_id, [Entry("draft_changed", changes)], actor)
    await record_events(
        session,
        tenant,
        [
            (
                ORDER_DRAFT_CHANGED,
                {
                    "order_id": str(order_id),
                    "number": order.number,
                    "version": old_version + 1,
                    "total_amount": subtotal,
                },
            )
        ],
    )
    return await load_order(session, order_id)


async def place_draft(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, *, actor: Actor
) -> OrderView:
    """Place a draft: reserve its stock like a new order, or raise and change nothing."""
    view = await load_order(session, order_id, lock=True)
    order = view.order
    lifecycle.check_transition(order.status, lifecycle.PLACED)
    # By the lines' variants, not their codes: a SKU's code may have changed since.
    by_id = await skus_by_id(session, [line.variant_id for line in view.lines])
    errors: list[FieldError] = []
    totals: dict[uuid.UUID, int] = defaultdict(int)
    for index, line in enumerate(view.lines):
        sku = by_id.get(line.variant_id)
        if sku is None or not sku.is_active:
            errors.append(FieldError(f"lines[{index}].sku", f"{line.sku_code} is no longer for sale"))
        totals[line.variant_id] += line.quantity_pending
    raise_if(errors)
    demands = [
        Demand(variant_id, by_id[variant_id].code, quantity, by_id[variant_id].allow_backorder)
        for variant_id, quantity in sorted(totals.items())
        if quantity
    ]
    # The order is locked first, then its stock rows in the one lock order (ADR 0006).
    plan = await reserve(session, demands)
    rows = [
        {"id": line.id, "variant_id": line.variant_id, "quantity_ordered": line.quantity_pending}
        for line in view.lines
    ]
    rows, held = spread(order_id, rows, plan)
    # Read before the updates below: they are copied onto the loaded lines.
    placed_lines = [{"sku": line.sku_code, "quantity": line.quantity_pending} for line in view.lines]
    now = dt.datetime.now(dt.UTC)
    for line, row in zip(view.lines, rows, strict=True):
        await session.execute(
            update(OrderLine)
            .where(OrderLine.id == line.id)
            .values(
                quantity_pending=0,
                quantity_allocated=row["quantity_allocated"],
                quantity_backordered=row["quantity_backordered"],
                updated_at=now,
            )
        )
    reservations = reservation_rows(order_id, held)
    if reservations:
        await session.execute(insert(Reservation), reservations)
    # The store's review rules hold a draft as a new order, beside any hold of its own (review.py).
    rule_hold = None
    if not review.is_under_review(hold.type for hold in view.open_holds):
        rule = await review.read_rule(session)
        # Read before this draft is marked placed below, so it does not count itself.
        customer_id = await live_customer_id(session, order.customer_id) or order.customer_id
        first = rule.first_orders and await review.is_first_order(session, customer_id)
        rule_hold = rule.hold_for(order.currency, order.total_amount, is_first_order=first)
    confirmed = order.open_hold_count == 0 and rule_hold is None
    status = lifecycle.CONFIRMED if confirmed else lifecycle.PLACED
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(
            status=status,
            placed_at=now,
            confirmed_at=now if confirmed else None,
            version=Order.version + 1,
            updated_at=now,
        )
    )
    entries = [placed_entry(lifecycle.DRAFT, held, rows)]
    events: list[tuple[str, dict[str, Any]]] = [
        (
            ORDER_PLACED,
            {
                "order_id": str(order_id),
                "number": order.number,
                "customer_id": str(order.customer_id),
                "currency": order.currency,
                "total_amount": order.total_amount,
                "channel": order.channel,
                "lines": placed_lines,
            },
        )
    ]
    if confirmed:
        entries.append(Entry("confirmed", {"status": change(lifecycle.PLACED, lifecycle.CONFIRMED)}))
        events.append((ORDER_CONFIRMED, {"order_id": str(order_id), "number": order.number}))
    await timeline.record(session, order_id, entries, actor)
    await record_events(session, tenant, events)
    if rule_hold is not None:
        await place_hold(tenant, session, order_id, rule_hold, actor=rule_hold.actor, rules=rule_hold.rules)
    return await load_order(session, order_id)
