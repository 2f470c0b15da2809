"""The timeline reads in the order changes happened, not the order their transactions began."""

from __future__ import annotations

import asyncio
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.orders.holds import place_hold
from ordersmith.tenants.orders.rules import HoldRequest
from tests.support.order_actions import timeline_of
from tests.support.orders import two_sku_store


async def test_a_change_that_waited_for_the_order_reads_after_the_one_it_waited_for(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_sku_store(client, price=1999)
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1))
    order_id = uuid.UUID(order["id"])
    tenant = (await get_tenant_record(database, store.slug)).context
    first_locked = asyncio.Event()
    second_began = asyncio.Event()

    async def first() -> None:
        # Begins after the second, and holds the order while the second waits for it.
        await second_began.wait()
        async with database.tenant_session(tenant) as session:
            await place_hold(tenant, session, order_id, HoldRequest("manual", "first"), actor=SYSTEM)
            first_locked.set()
            await asyncio.sleep(0.2)

    async def second() -> None:
        async with database.tenant_session(tenant) as session:
            # The transaction begins (now() is taken) before the first's does...
            await session.execute(select(1))
            second_began.set()
            await first_locked.wait()
            # ...but its change waits for the first's lock on the order, and happens after it.
            await place_hold(tenant, session, order_id, HoldRequest("manual", "second"), actor=SYSTEM)

    await asyncio.gather(second(), first())
    held = [
        (item["changes"]["reason"], item["changes"]["open_hold_count"])
        for item in await timeline_of(store, order["id"])
        if item["kind"] == "hold_placed"
    ]
    assert held == [("first", {"old": 0, "new": 1}), ("second", {"old": 1, "new": 2})]


async def test_a_hold_given_with_the_order_reads_after_its_placement(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await two_sku_store(client, price=1999)
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check the address"})
    entries = await timeline_of(store, order["id"])
    assert [item["kind"] for item in entries] == ["placed", "hold_placed"]
    # One change: both entries carry the same time.
    assert entries[0]["created_at"] == entries[1]["created_at"]
