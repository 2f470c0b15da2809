"""Two writers racing for one SKU code: the loser gets 409 `sku_code_taken`, not a 500."""

from __future__ import annotations

import asyncio

import pytest

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.catalog.errors import SkuCodeTakenError
from ordersmith.tenants.catalog.service import add_variant, create_product


async def test_the_second_of_two_concurrent_writers_of_a_code_gets_sku_code_taken(
    database: Database, tenant: TenantRecord
) -> None:
    async with database.tenant_session(tenant.context) as session:
        product = await create_product(tenant.context, session, {"name": "Mug"})
    variant = {"sku_code": "MUG-1", "name": "Mug", "price_amount": 900, "currency": "EUR"}

    first_inserted = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with database.tenant_session(tenant.context) as session:
            await add_variant(tenant.context, session, product.product.id, variant)
            first_inserted.set()
            await release_first.wait()

    async def second() -> None:
        await first_inserted.wait()
        async with database.tenant_session(tenant.context) as session:
            # The first insert is not committed yet: the pre-check passes and the index decides.
            await add_variant(tenant.context, session, product.product.id, {**variant, "sku_code": "mug-1"})

    winner = asyncio.create_task(first())
    loser = asyncio.create_task(second())
    await first_inserted.wait()
    await asyncio.sleep(0.2)  # let the second writer block on the unique index
    release_first.set()
    await winner
    with pytest.raises(SkuCodeTakenError, match="'mug-1' is already used"):
        await loser
