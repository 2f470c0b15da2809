"""Helpers for tests that work orders: API keys, simulated shipments, rows read straight from the DB."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.inventory.models import InventoryAdjustment, Location, Reservation, StockLevel
from ordersmith.tenants.inventory.reservations import release
from ordersmith.tenants.orders import derived
from ordersmith.tenants.orders.models import Order, OrderLine
from tests.support.http import bearer
from tests.support.orders import Store

ORDER_SCOPES = ["orders.read", "orders.write", "reports.read"]


async def api_key_headers(store: Store, scopes: list[str] | None = None) -> dict[str, str]:
    """Headers of a new API key of the store (an integration: its changes are not touches)."""
    body = await store.call(
        "POST", "/api/v1/api-keys", 201, json={"name": "Shop connector", "scopes": scopes or ORDER_SCOPES}
    )
    return bearer(body["key"])


async def user_id(store: Store, headers: dict[str, str] | None = None) -> str:
    """The id of the user behind the store's headers (or the given ones)."""
    body = await store.call("GET", "/api/v1/me", 200, headers=headers or {})
    return str(body["user"]["id"])


async def tenant_context(database: Database, store: Store) -> TenantContext:
    return (await get_tenant_record(database, store.slug)).context


async def ship(database: Database, store: Store, line_id: str, quantity: int) -> None:
    """Simulate a shipment of allocated units (shipments come later): buckets, reservations, ledger."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        await ship_in(session, line_id, quantity)


async def ship_in(session: AsyncSession, line_id: str, quantity: int) -> None:
    """`ship` in the caller's transaction, which keeps the order locked until it ends.

    Locks the order first, like every order change; the line's reserved units are given
    back and leave on_hand through a `shipment` adjustment, so both stock invariants hold.
    """
    line = (await session.scalars(select(OrderLine).where(OrderLine.id == uuid.UUID(line_id)))).one()
    await session.execute(select(Order.id).where(Order.id == line.order_id).with_for_update())
    released = await release(session, line.id, quantity)
    await session.execute(
        update(OrderLine)
        .where(OrderLine.id == line.id)
        .values(
            quantity_allocated=OrderLine.quantity_allocated - quantity,
            quantity_shipped=OrderLine.quantity_shipped + quantity,
        )
    )
    for item in released:
        on_hand = await session.scalar(
            update(StockLevel)
            .where(StockLevel.variant_id == line.variant_id, StockLevel.location_id == item.location_id)
            .values(on_hand=StockLevel.on_hand - item.quantity, updated_at=func.now())
            .returning(StockLevel.on_hand)
        )
        await session.execute(
            insert(InventoryAdjustment).values(
                id=uuid7(),
                variant_id=line.variant_id,
                location_id=item.location_id,
                kind="shipment",
                quantity=-item.quantity,
                on_hand_after=on_hand,
                reason="simulated shipment",
                reference=str(line.order_id),
                actor_type="system",
            )
        )
    await derived.refresh(session, line.order_id)


async def reservation_rows(database: Database, store: Store, order_id: str) -> list[tuple[int, str, int]]:
    """Every reservation row of an order, emptied ones included: (line number, location, quantity)."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        rows = await session.execute(
            select(OrderLine.line_number, Location.code, Reservation.quantity)
            .join(OrderLine, OrderLine.id == Reservation.line_id)
            .join(Location, Location.id == Reservation.location_id)
            .where(Reservation.order_id == uuid.UUID(order_id))
            .order_by(OrderLine.line_number, Location.code)
        )
        return [(number, code, quantity) for number, code, quantity in rows]


async def events_of(database: Database, order_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The outbox events about one order, oldest first: (topic, payload)."""
    async with database.platform_session() as session:
        rows = await session.execute(
            select(OutboxEvent.topic, OutboxEvent.payload)
            .where(OutboxEvent.payload["order_id"].astext == order_id)
            # One transaction's events share created_at; ids (UUIDv7) keep the order they were written in.
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
        return [(topic, payload) for topic, payload in rows]


async def timeline_of(store: Store, order_id: str) -> list[dict[str, Any]]:
    """An order's timeline entries, oldest first."""
    body = await store.call("GET", f"/api/v1/orders/{order_id}/timeline", 200, params={"limit": "100"})
    entries: list[dict[str, Any]] = body["data"]
    return entries


def steps(entries: list[dict[str, Any]]) -> list[list[str]]:
    """Timeline kinds grouped by the change that wrote them (sorted within one change).

    Entries written by one transaction share a timestamp. Within it they read in the order
    they were written (their UUIDv7 ids are made in order), but which of one change's
    entries a service writes first is not what these tests are about: only the order of
    the changes themselves is asserted here.
    """
    grouped: list[list[str]] = []
    last = None
    for entry in entries:
        if entry["created_at"] != last:
            grouped.append([])
            last = entry["created_at"]
        grouped[-1].append(entry["kind"])
    return [sorted(kinds) for kinds in grouped]


def entry(entries: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one entry of this kind (fails if there are several)."""
    [found] = [item for item in entries if item["kind"] == kind]
    return found
