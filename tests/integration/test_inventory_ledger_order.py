"""The stock ledger lists adjustments in the order they were written, newest first."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.inventory.service import adjust_stock
from tests.support.order_actions import tenant_context
from tests.support.orders import two_sku_store


async def test_an_adjustment_begun_first_but_written_last_is_the_newest(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_sku_store(client, price=1000)
    await store.receive("TEE-S", "WH-1", 10)
    tenant = await tenant_context(database, store)
    location = uuid.UUID(store.locations["WH-1"])
    person = Actor("user", str(uuid.uuid4()))
    # A receipt's transaction begins (it looked something up), another commits a damage
    # meanwhile, and only then is the receipt written.
    async with database.tenant_session(tenant) as early:
        await early.execute(text("SELECT 1"))
        async with database.tenant_session(tenant) as late:
            await adjust_stock(
                tenant,
                late,
                sku="TEE-S",
                location_id=location,
                kind="damage",
                quantity=-4,
                reason="dropped",
                actor=person,
            )
        await adjust_stock(
            tenant,
            early,
            sku="TEE-S",
            location_id=location,
            kind="receive",
            quantity=1,
            reason="PO 1",
            actor=person,
        )

    ledger = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    assert [(row["kind"], row["quantity"], row["on_hand_after"]) for row in ledger["data"]] == [
        ("receive", 1, 7),
        ("damage", -4, 6),
        ("receive", 10, 10),
    ]
    [wh1] = [item for item in (await store.stock("TEE-S"))["locations"] if item["location_code"] == "WH-1"]
    assert wh1["on_hand"] == 7
