"""Placing an order: one transaction that reserves stock and writes the order, or fails whole.

The steps, all in the caller's tenant transaction:
1. check the request (422 naming each bad field);
2. look up the SKUs and the customer;
3. sum the demand per SKU (two lines of one SKU count together) and reserve it
   (`inventory.reservations.reserve`: fixed lock order, lock timeout, never oversells);
4. write the order, its lines, where each line's units are held and why, the timeline
   and the outbox events.
Confirmation is automatic unless the order arrives with a hold.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.catalog.models import Variant
from ordersmith.tenants.customers.models import Customer
from ordersmith.tenants.inventory.models import Reservation
from ordersmith.tenants.inventory.reservations import Allocation, Demand, Plan, reserve
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.models import Order, OrderEvent, OrderHold, OrderLine
from ordersmith.tenants.orders.rules import OrderRequest, check_order, check_total, clean_tags, raise_if
from ordersmith.tenants.orders.timeline import Entry, change, entry_rows, is_touch
from ordersmith.tenants.orders.views import OrderView, ReservationView

ORDER_PLACED = "order.placed"
ORDER_CONFIRMED = "order.confirmed"


@dataclass(frozen=True)
class Sku:
    """A catalog SKU as an order line needs it (placement and edits)."""

    id: uuid.UUID
    code: str
    name: str
    price_amount: int
    currency: str
    is_active: bool
    allow_backorder: bool


async def skus_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, Sku]:
    """The SKUs with these codes, matched case-insensitively, keyed by lower-case code."""
    lowered = sorted({code.lower() for code in codes})
    rows = await session.execute(
        select(
            Variant.id,
            Variant.sku_code,
            Variant.name,
            Variant.price_amount,
            Variant.currency,
            Variant.is_active,
            Variant.allow_backorder,
        ).where(func.lower(Variant.sku_code).in_(lowered))
    )
    return {row.sku_code.lower(): Sku(*row) for row in rows}


async def _live_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID | None:
    """The customer's id, or the one it was merged into; None when there is no such customer."""
    row = (
        await session.execute(select(Customer.id, Customer.merged_into_id).where(Customer.id == customer_id))
    ).one_or_none()
    return None if row is None else (row.merged_into_id or row.id)


def _priced_lines(
    request: OrderRequest, skus: dict[str, Sku], currency: str, errors: list[FieldError]
) -> list[tuple[Sku, int, int]]:
    """(sku, quantity, unit price) per line, with 422s for unknown, inactive or mispriced SKUs."""
    priced = []
    for index, line in enumerate(request.lines):
        sku = skus.get(line.sku.lower())
        if sku is None:
            errors.append(FieldError(f"lines[{index}].sku", f"no SKU {line.sku!r} in this store"))
            continue
        if not sku.is_active:
            errors.append(FieldError(f"lines[{index}].sku", f"{sku.code} is not for sale (inactive)"))
            continue
        if line.unit_price_amount is None and sku.currency != currency:
            errors.append(
                FieldError(
                    f"lines[{index}].sku",
                    f"{sku.code} is priced in {sku.currency} but the order is in {currency}; "
                    f"give unit_price_amount in {currency}",
                )
            )
            continue
        price = sku.price_amount if line.unit_price_amount is None else line.unit_price_amount
        check_total(f"lines[{index}].unit_price_amount", price * line.quantity, errors)
        priced.append((sku, line.quantity, price))
    return priced


def _demands(priced: list[tuple[Sku, int, int]]) -> list[Demand]:
    total: dict[uuid.UUID, int] = defaultdict(int)
    by_id = {}
    for sku, quantity, _ in priced:
        total[sku.id] += quantity
        by_id[sku.id] = sku
    return [
        Demand(sku_id, by_id[sku_id].code, qty, by_id[sku_id].allow_backorder)
        for sku_id, qty in total.items()
    ]


def _spread(
    order_id: uuid.UUID, lines: list[dict[str, Any]], plan: Plan
) -> tuple[list[dict[str, Any]], list[tuple[uuid.UUID, Allocation, int]]]:
    """Give each line its share of the SKU's allocations, in line order; the rest is backordered."""
    pools: dict[uuid.UUID, list[list[Any]]] = defaultdict(list)
    for allocation in plan.allocations:
        pools[allocation.variant_id].append([allocation, allocation.quantity])
    held: list[tuple[uuid.UUID, Allocation, int]] = []
    for line in lines:
        wanted = line["quantity_ordered"]
        for pool in pools[line["variant_id"]]:
            take = min(pool[1], wanted)
            if take:
                pool[1] -= take
                wanted -= take
                held.append((line["id"], pool[0], take))
        line["quantity_allocated"] = line["quantity_ordered"] - wanted
        line["quantity_backordered"] = wanted
    return lines, held


async def place_order(
    tenant: TenantContext, session: AsyncSession, request: OrderRequest, *, actor: Actor
) -> OrderView:
    """Reserve stock and write the order in the caller's transaction, or raise and write nothing."""
    check_order(request)
    skus = await skus_by_code(session, [line.sku for line in request.lines])
    customer_id = await _live_customer(session, request.customer_id)
    errors: list[FieldError] = []
    if customer_id is None:
        errors.append(FieldError("customer_id", "no such customer in this store; create it first"))
    # Without a currency, the order is in the first known SKU's currency.
    known = [skus[line.sku.lower()] for line in request.lines if line.sku.lower() in skus]
    currency = request.currency or (known[0].currency if known else "")
    priced = _priced_lines(request, skus, currency, errors)
    subtotal = sum(price * quantity for _, quantity, price in priced)
    check_total("lines", subtotal, errors)
    raise_if(errors)
    assert customer_id is not None

    plan = await reserve(session, _demands(priced))
    order_id = uuid7()
    now = dt.datetime.now(dt.UTC)
    confirmed = request.hold is None
    status = lifecycle.CONFIRMED if confirmed else lifecycle.PLACED
    order = (
        await session.scalars(
            insert(Order)
            .values(
                id=order_id,
                status=status,
                customer_id=customer_id,
                currency=currency,
                subtotal_amount=subtotal,
                total_amount=subtotal,
                shipping_address=dict(request.shipping_address),
                channel=request.channel,
                external_reference=request.external_reference,
                tags=clean_tags(request.tags),
                open_hold_count=0 if confirmed else 1,
                touch_count=1 if is_touch(actor) else 0,
                placed_at=now,
                confirmed_at=now if confirmed else None,
            )
            .returning(Order)
        )
    ).one()
    line_rows = [
        {
            "id": uuid7(),
            "order_id": order_id,
            "line_number": number,
            "variant_id": sku.id,
            "sku_code": sku.code,
            "name": sku.name,
            "unit_price_amount": price,
            "quantity_ordered": quantity,
        }
        for number, (sku, quantity, price) in enumerate(priced, start=1)
    ]
    line_rows, held = _spread(order_id, line_rows, plan)
    lines = list(await session.scalars(insert(OrderLine).returning(OrderLine), line_rows))
    if held:
        await session.execute(
            insert(Reservation),
            [
                {
                    "id": uuid7(),
                    "order_id": order_id,
                    "line_id": line_id,
                    "variant_id": allocation.variant_id,
                    "location_id": allocation.location_id,
                    "quantity": quantity,
                    "reason": allocation.reason,
                }
                for line_id, allocation, quantity in held
            ],
        )
    holds = []
    if request.hold is not None:
        holds = list(
            await session.scalars(
                insert(OrderHold)
                .values(
                    id=uuid7(),
                    order_id=order_id,
                    type=request.hold.type,
                    reason=request.hold.reason.strip(),
                    release_role=request.hold.release_role,
                    placed_by_type=actor.type,
                    placed_by_id=actor.id,
                )
                .returning(OrderHold)
            )
        )
    reservations = [
        ReservationView(line_id, a.location_id, a.location_code, quantity, a.reason)
        for line_id, a, quantity in held
    ]
    entries = [
        Entry(
            "placed",
            {
                "status": change(None, lifecycle.PLACED),
                "reservations": [
                    {
                        "line_id": str(r.line_id),
                        "location": r.location_code,
                        "quantity": r.quantity,
                        "reason": r.reason,
                    }
                    for r in reservations
                ],
                "backordered": {
                    str(line.id): line.quantity_backordered for line in lines if line.quantity_backordered
                },
            },
        )
    ]
    if confirmed:
        entries.append(Entry("confirmed", {"status": change(lifecycle.PLACED, lifecycle.CONFIRMED)}))
    else:
        assert request.hold is not None
        entries.append(
            Entry("hold_placed", {"type": request.hold.type, "reason": request.hold.reason.strip()})
        )
    await session.execute(insert(OrderEvent), entry_rows(order_id, entries, actor))
    payload = {
        "order_id": str(order_id),
        "number": order.number,
        "customer_id": str(customer_id),
        "currency": currency,
        "total_amount": subtotal,
        "channel": request.channel,
        "lines": [{"sku": line.sku_code, "quantity": line.quantity_ordered} for line in lines],
    }
    events = [(ORDER_PLACED, payload)]
    if confirmed:
        events.append((ORDER_CONFIRMED, {"order_id": str(order_id), "number": order.number}))
    await record_events(session, tenant, events)
    return OrderView(order, lines, reservations, holds)
