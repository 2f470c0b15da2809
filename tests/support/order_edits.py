"""Order edits in tests: previewing and committing over HTTP, and shipping units by hand."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, insert, select, update

from ordersmith.platform.database import Database
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.inventory.models import InventoryAdjustment, Reservation, StockLevel
from ordersmith.tenants.orders.models import Order, OrderLine
from tests.support.orders import Store


def add(sku: str, quantity: int, **extra: Any) -> dict[str, Any]:
    return {"op": "add", "sku": sku, "quantity": quantity, **extra}


def set_quantity(line_id: str, quantity: int) -> dict[str, Any]:
    return {"op": "set_quantity", "line_id": line_id, "quantity": quantity}


def remove(line_id: str) -> dict[str, Any]:
    return {"op": "remove", "line_id": line_id}


def set_price(line_id: str, amount: int) -> dict[str, Any]:
    return {"op": "set_price", "line_id": line_id, "unit_price_amount": amount}


async def preview(
    store: Store, order_id: str, *changes: dict[str, Any], expected: int = 200, **body: Any
) -> dict[str, Any]:
    result: dict[str, Any] = await store.call(
        "POST", f"/api/v1/orders/{order_id}/edits/preview", expected, json={"changes": list(changes), **body}
    )
    return result


async def commit(
    store: Store, order_id: str, *changes: dict[str, Any], expected: int = 200, **body: Any
) -> dict[str, Any]:
    headers = body.pop("headers", {})
    result: dict[str, Any] = await store.call(
        "POST",
        f"/api/v1/orders/{order_id}/edits",
        expected,
        json={"changes": list(changes), **body},
        headers=headers,
    )
    return result


def with_ids_of(preview_body: dict[str, Any], committed: dict[str, Any]) -> dict[str, Any]:
    """The preview with its added lines' ids swapped for the committed ones (matched by line number).

    Ids of added lines are drawn when the lines are written, so a preview's differ from
    the commit's; everything else must be equal.
    """
    fresh = {line["line_number"]: line["id"] for line in committed["order"]["lines"]}
    text = json.dumps(preview_body)
    for line in preview_body["edit"]["lines"]:
        if line["action"] == "added":
            text = text.replace(line["line_id"], fresh[line["line_number"]])
    swapped: dict[str, Any] = json.loads(text)
    return swapped


async def ship(database: Database, store: Store, line_id: str, quantity: int) -> None:
    """Ship reserved units of a line as fulfillment will: buckets, reservation, stock and ledger.

    Units move from allocated to shipped, leave the reservation (last-chosen location
    first, as fulfillment ships what it holds) and leave on_hand with a ledger entry.
    """
    tenant = await get_tenant_record(database, store.slug)
    line = uuid.UUID(line_id)
    async with database.tenant_session(tenant.context) as session:
        order_id = await session.scalar(
            update(OrderLine)
            .where(OrderLine.id == line)
            .values(
                quantity_allocated=OrderLine.quantity_allocated - quantity,
                quantity_shipped=OrderLine.quantity_shipped + quantity,
            )
            .returning(OrderLine.order_id)
        )
        await session.execute(
            update(Order).where(Order.id == order_id).values(fulfillment_status="partially_fulfilled")
        )
        held = list(
            await session.execute(
                select(Reservation.id, Reservation.variant_id, Reservation.location_id, Reservation.quantity)
                .where(Reservation.line_id == line, Reservation.quantity > 0)
                .order_by(Reservation.created_at.desc())
            )
        )
        left = quantity
        for row_id, variant_id, location_id, held_quantity in held:
            take = min(left, held_quantity)
            left -= take
            await session.execute(
                update(Reservation)
                .where(Reservation.id == row_id)
                .values(quantity=Reservation.quantity - take)
            )
            on_hand = await session.scalar(
                update(StockLevel)
                .where(StockLevel.variant_id == variant_id, StockLevel.location_id == location_id)
                .values(on_hand=StockLevel.on_hand - take, reserved=StockLevel.reserved - take)
                .returning(StockLevel.on_hand)
            )
            await session.execute(
                insert(InventoryAdjustment).values(
                    id=uuid7(),
                    variant_id=variant_id,
                    location_id=location_id,
                    kind="shipment",
                    quantity=-take,
                    on_hand_after=on_hand,
                    reference=str(order_id),
                    actor_type="automation",
                )
            )
            if left == 0:
                break
        assert left == 0, "the line held fewer units than the test ships"


async def reserved_matches_reservations(database: Database, store: Store) -> bool:
    """Whether every stock row's `reserved` equals the sum of its live reservations."""
    tenant = await get_tenant_record(database, store.slug)
    async with database.tenant_session(tenant.context) as session:
        live = (
            select(
                Reservation.variant_id,
                Reservation.location_id,
                func.sum(Reservation.quantity).label("held"),
            )
            .group_by(Reservation.variant_id, Reservation.location_id)
            .subquery()
        )
        rows = list(
            await session.execute(
                select(StockLevel.reserved, func.coalesce(live.c.held, 0)).outerjoin(
                    live,
                    (live.c.variant_id == StockLevel.variant_id)
                    & (live.c.location_id == StockLevel.location_id),
                )
            )
        )
    return bool(rows) and all(reserved == held for reserved, held in rows)


def held(order: dict[str, Any]) -> list[tuple[int, str, int]]:
    """(line number, location, quantity) of each of an order's reservations."""
    numbers = {line["id"]: line["line_number"] for line in order["lines"]}
    return [(numbers[r["line_id"]], r["location_code"], r["quantity"]) for r in order["reservations"]]


def line_buckets(order: dict[str, Any]) -> list[tuple[str, int, int, int, int, int]]:
    """(sku, ordered, cancelled, allocated, backordered, shipped) per line."""
    return [
        (
            line["sku"],
            line["quantity_ordered"],
            line["quantity_cancelled"],
            line["quantity_allocated"],
            line["quantity_backordered"],
            line["quantity_shipped"],
        )
        for line in order["lines"]
    ]


async def stock_at_locations(store: Store, sku: str) -> list[tuple[str, int, int, int]]:
    """(location, on_hand, reserved, available) of a SKU, from GET /api/v1/inventory."""
    stock = await store.stock(sku)
    return [
        (item["location_code"], item["on_hand"], item["reserved"], item["available"])
        for item in stock["locations"]
    ]


async def timeline_kinds(store: Store, order_id: str) -> list[str]:
    """The kinds of an order's timeline entries; those of one transaction share a time, so sorted."""
    body = await store.call("GET", f"/api/v1/orders/{order_id}/timeline", 200)
    return sorted(entry["kind"] for entry in body["data"])


async def edited_events(database: Database, order_id: str) -> list[dict[str, Any]]:
    """The payloads of an order's `order.edited` outbox events."""
    async with database.platform_session() as session:
        return list(
            await session.scalars(
                select(OutboxEvent.payload).where(
                    OutboxEvent.topic == "order.edited", OutboxEvent.payload["order_id"].astext == order_id
                )
            )
        )
