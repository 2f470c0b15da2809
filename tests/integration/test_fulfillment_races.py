"""Cancels and edits racing a shipment: the first to lock wins; the other is a 409 and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.errors import ConflictError
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.tenants.fulfillment.rules import LineQuantity, ShipmentRequest
from ordersmith.tenants.fulfillment.shipments import create_shipment
from ordersmith.tenants.orders.cancellation import CancelRequest, LineCancel, cancel_order
from ordersmith.tenants.orders.edit_requests import EditRequest, SetQuantity
from ordersmith.tenants.orders.edits import edit_order
from ordersmith.tenants.orders.errors import OrderChangedError
from ordersmith.tenants.orders.models import OrderLine
from tests.support.concurrency import backend_pid, wait_until_blocked
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    line_of,
    release,
    split_store,
    stock_at,
)
from tests.support.order_actions import tenant_context

Work = Callable[[AsyncSession], Awaitable[object]]


@pytest.mark.parametrize(
    ("first", "refused", "after_buckets", "after_stock"),
    [
        ("cancel", "quantity_exceeds_reserved", (1, 0, 0, 1, 0), (10, 1)),
        ("ship", "quantity_not_cancellable", (0, 0, 2, 0, 0), (8, 0)),
    ],
)
async def test_a_cancellation_and_a_shipment_of_the_same_units_never_both_apply(
    client: AsyncTestClient[Litestar],
    database: Database,
    first: str,
    refused: str,
    after_buckets: tuple[int, ...],
    after_stock: tuple[int, int],
) -> None:
    store = await split_store(client)
    order = await store.place(("TEE-S", 2))
    line = line_of(order, "TEE-S")["id"]
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    tenant = await tenant_context(database, store)

    async def ship(session: AsyncSession) -> object:
        request = ShipmentRequest("DHL", [LineQuantity(line, 2)])
        return await create_shipment(
            tenant, session, uuid.UUID(fulfillment_order["id"]), request, actor=SYSTEM
        )

    async def cancel(session: AsyncSession) -> object:
        request = CancelRequest("customer called", [LineCancel(line, 1)])
        return await cancel_order(tenant, session, uuid.UUID(order["id"]), request, actor=SYSTEM)

    winner, loser = (cancel, ship) if first == "cancel" else (ship, cancel)
    loser_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def second() -> None:
        async with database.tenant_session(tenant) as session:
            loser_pid.set_result(await backend_pid(session))
            await loser(session)

    async with database.tenant_session(tenant) as session:
        winner_pid = await backend_pid(session)
        await winner(session)
        racing = asyncio.create_task(second())
        # The other one waits for the order row this transaction holds until it commits.
        await wait_until_blocked(database, await loser_pid, by=winner_pid)
    with pytest.raises(ConflictError) as raised:
        await racing
    assert raised.value.code == refused

    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(after, "TEE-S") == after_buckets
    assert await stock_at(store, "TEE-S") == {"WH-1": after_stock}
    shipments = (await store.call("GET", f"/api/v1/orders/{order['id']}/shipments", 200))["data"]
    assert len(shipments) == (1 if first == "ship" else 0)
    await assert_stock_invariants(database, store)


async def test_an_edit_racing_a_shipment_of_its_line_is_409_and_changes_nothing(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    """A writer that ships the line's units after the edit read it: the edit refuses whole."""
    store = await split_store(client)
    order = await store.place(("TEE-S", 2))
    line = line_of(order, "TEE-S")["id"]
    tenant = await tenant_context(database, store)
    edit_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def edit() -> None:
        async with database.tenant_session(tenant) as session:
            edit_pid.set_result(await backend_pid(session))
            request = EditRequest([SetQuantity(line, 1)])
            await edit_order(tenant, session, uuid.UUID(order["id"]), request, actor=SYSTEM)

    async with database.tenant_session(tenant) as shipment:
        # Moves the units without the order lock, and holds the line's row until it commits.
        await shipment.execute(
            update(OrderLine)
            .where(OrderLine.id == uuid.UUID(line))
            .values(quantity_allocated=OrderLine.quantity_allocated - 2, quantity_shipped=2)
        )
        racing = asyncio.create_task(edit())
        await wait_until_blocked(database, await edit_pid, by=await backend_pid(shipment))
    with pytest.raises(OrderChangedError) as raised:
        await racing
    assert raised.value.code == "order_changed"

    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (after["version"], after["subtotal_amount"]) == (1, 2000)
    assert buckets(after, "TEE-S") == (0, 0, 2, 0, 0)
    # The unit the edit gave back went back with it.
    assert await stock_at(store, "TEE-S") == {"WH-1": (10, 2)}
    timeline = (await store.call("GET", f"/api/v1/orders/{order['id']}/timeline", 200))["data"]
    assert [entry["kind"] for entry in timeline] == ["placed", "confirmed"]
    await assert_stock_invariants(database, store)
