"""Two writers adding a product's last variant at once: the second counts the first's."""

from __future__ import annotations

import asyncio

import pytest

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.catalog import service
from ordersmith.tenants.catalog.errors import VariantLimitReachedError
from ordersmith.tenants.catalog.service import add_variant, create_product, get_product


async def test_the_second_of_two_writers_adding_the_last_variant_is_refused(
    database: Database, tenant: TenantRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_VARIANTS_PER_PRODUCT", 2)
    first_variant = {"sku_code": "MUG-1", "name": "Mug", "price_amount": 900, "currency": "EUR"}
    async with database.tenant_session(tenant.context) as session:
        product = await create_product(tenant.context, session, {"name": "Mug"}, [first_variant])
    product_id = product.product.id

    first_added = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with database.tenant_session(tenant.context) as session:
            await add_variant(tenant.context, session, product_id, {**first_variant, "sku_code": "MUG-2"})
            first_added.set()
            await release_first.wait()

    async def second() -> None:
        await first_added.wait()
        async with database.tenant_session(tenant.context) as session:
            # Neither sees the other's uncommitted row: the lock on the product makes it wait.
            await add_variant(tenant.context, session, product_id, {**first_variant, "sku_code": "MUG-3"})

    winner = asyncio.create_task(first())
    loser = asyncio.create_task(second())
    await first_added.wait()
    await asyncio.sleep(0.2)  # let the second writer block on the product's lock
    waited = not loser.done()
    release_first.set()
    await winner
    assert waited
    with pytest.raises(VariantLimitReachedError, match=r"the most variants a product can have \(2\)"):
        await loser
    async with database.tenant_session(tenant.context) as session:
        view = await get_product(tenant.context, session, product_id)
    assert [variant.sku_code for variant in view.variants] == ["MUG-1", "MUG-2"]
