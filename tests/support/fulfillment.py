"""Helpers for fulfillment and returns tests: a stocked store, releasing, shipping, stock invariants."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.fulfillment.models import FulfillmentOrder
from ordersmith.tenants.inventory.models import InventoryAdjustment, Location, Reservation, StockLevel
from ordersmith.tenants.payments.service import PaymentRequest, create_payment
from tests.support.order_actions import tenant_context
from tests.support.orders import Store, open_store
from tests.support.webhook_receiver import consumer_named, deliver_outbox

SHIP_BODY = {
    "carrier": "DHL",
    "service": "express",
    "tracking_number": "JD0001",
    "tracking_url": "https://track.example/JD0001",
}


async def split_store(client: AsyncTestClient[Litestar], *, price: int = 1000) -> Store:
    """TEE-S only at WH-1 and TEE-M only at WH-2 (10 units each): an order of both ships from two places."""
    store = await open_store(client)
    await store.add_skus("TEE-S", "TEE-M", price=price)
    await store.add_location("WH-1", priority=10)
    await store.add_location("WH-2", priority=20)
    await store.receive("TEE-S", "WH-1", 10)
    await store.receive("TEE-M", "WH-2", 10)
    return store


async def release(store: Store, order_id: str, expected: int = 200) -> Any:
    return await store.call("POST", f"/api/v1/orders/{order_id}/fulfillment-orders", expected)


def by_location(fulfillment_orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["location_code"]: item for item in fulfillment_orders}


async def ship(
    store: Store, fulfillment_order_id: str, lines: list[tuple[str, int]], expected: int = 201, **extra: Any
) -> Any:
    body = {
        **SHIP_BODY,
        "lines": [{"line_id": line, "quantity": quantity} for line, quantity in lines],
        **extra,
    }
    return await store.call(
        "POST", f"/api/v1/fulfillment-orders/{fulfillment_order_id}/shipments", expected, json=body
    )


def line_of(order: dict[str, Any], sku: str) -> dict[str, Any]:
    [line] = [line for line in order["lines"] if line["sku"] == sku]
    found: dict[str, Any] = line
    return found


def buckets(order: dict[str, Any], sku: str) -> tuple[int, int, int, int, int]:
    """(allocated, backordered, shipped, cancelled, returned) of the order's line for a SKU."""
    line = line_of(order, sku)
    return (
        line["quantity_allocated"],
        line["quantity_backordered"],
        line["quantity_shipped"],
        line["quantity_cancelled"],
        line["quantity_returned"],
    )


async def stock_at(store: Store, sku: str) -> dict[str, tuple[int, int]]:
    """{location code: (on_hand, reserved)} for a SKU."""
    body = await store.stock(sku)
    stock: dict[str, tuple[int, int]] = {
        item["location_code"]: (item["on_hand"], item["reserved"]) for item in body["locations"]
    }
    return stock


async def assert_stock_invariants(database: Database, store: Store) -> None:
    """on_hand = sum of the ledger and reserved = sum of live reservations, for every stock row."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        levels = {
            (row.variant_id, row.location_id): (row.on_hand, row.reserved)
            for row in await session.scalars(select(StockLevel))
        }
        ledger = {
            (variant, location): int(total)
            for variant, location, total in await session.execute(
                select(
                    InventoryAdjustment.variant_id,
                    InventoryAdjustment.location_id,
                    func.sum(InventoryAdjustment.quantity),
                ).group_by(InventoryAdjustment.variant_id, InventoryAdjustment.location_id)
            )
        }
        held = {
            (variant, location): int(total)
            for variant, location, total in await session.execute(
                select(
                    Reservation.variant_id, Reservation.location_id, func.sum(Reservation.quantity)
                ).group_by(Reservation.variant_id, Reservation.location_id)
            )
        }
    assert levels, "no stock rows to check"
    for key, (on_hand, reserved) in levels.items():
        assert on_hand == ledger.get(key, 0), (key, on_hand, ledger.get(key))
        assert reserved == held.get(key, 0), (key, reserved, held.get(key))


async def run_consumer(database: Database, store: Store, name: str) -> int:
    """Hand the store's outbox events to one registered consumer, as a worker would; how many ran now."""
    tenant = await get_tenant_record(database, store.slug)
    return await deliver_outbox(database, tenant.id, consumer_named(name))


async def stored_statuses(database: Database, store: Store, order_id: str) -> list[str]:
    """The statuses stored on an order's fulfillment orders (reads derive theirs), by location code."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        rows = await session.scalars(
            select(FulfillmentOrder.status)
            .join(Location, Location.id == FulfillmentOrder.location_id)
            .where(FulfillmentOrder.order_id == uuid.UUID(order_id))
            .order_by(Location.code)
        )
        return list(rows)


async def pay_manually(database: Database, store: Store, order_id: str, amount: int) -> None:
    """Record money received for an order with the manual provider (captured at once)."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        await create_payment(
            tenant,
            session,
            uuid.UUID(order_id),
            PaymentRequest("manual", amount=amount, method="bank_transfer"),
            actor=Actor("system"),
        )


async def shipped_order(store: Store, *lines: tuple[str, int]) -> dict[str, Any]:
    """An order placed, released and shipped whole from every location; returns the order as it then is."""
    order = await store.place(*lines)
    return await ship_whole(store, order["id"])


async def ship_whole(store: Store, order_id: str) -> dict[str, Any]:
    """Release an order and ship all of it from every location; returns the order as it then is."""
    for fulfillment_order in (await release(store, order_id))["data"]:
        await ship(
            store,
            fulfillment_order["id"],
            [(line["line_id"], line["quantity_reserved"]) for line in fulfillment_order["lines"]],
        )
    body: dict[str, Any] = await store.call("GET", f"/api/v1/orders/{order_id}", 200)
    return body


async def approved_return(store: Store, order: dict[str, Any], sku: str, quantity: int) -> dict[str, Any]:
    """A return of `quantity` shipped units of an order's `sku` line, requested and approved."""
    created: dict[str, Any] = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        201,
        json={
            "lines": [{"line_id": line_of(order, sku)["id"], "quantity": quantity, "reason_code": "other"}]
        },
    )
    await store.call("POST", f"/api/v1/returns/{created['id']}/approve", 200)
    return created
