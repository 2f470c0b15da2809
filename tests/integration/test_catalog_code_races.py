"""A product created with several codes loses some to a concurrent writer: the 409 names those."""

from __future__ import annotations

import asyncio

import pytest

from ordersmith.platform.database import Database
from ordersmith.platform.pagination import PageRequest
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.catalog.errors import SkuCodeTakenError
from ordersmith.tenants.catalog.service import add_variant, create_product, search_skus

ONE_TAKEN = (
    "SKU code 'cup-2' is already used in this store (codes ignore case); choose another code "
    "or change the existing variant, found with GET /api/v1/skus?query=cup-2"
)
TWO_TAKEN = (
    "SKU codes 'cup-2', 'cup-3' are already used in this store (codes ignore case); choose other "
    "codes or change the existing variants, each found with GET /api/v1/skus?query=<code>"
)


@pytest.mark.parametrize(("winners", "message"), [(["CUP-2"], ONE_TAKEN), (["CUP-2", "CUP-3"], TWO_TAKEN)])
async def test_a_product_losing_codes_to_a_concurrent_writer_names_only_those_codes(
    database: Database, tenant: TenantRecord, winners: list[str], message: str
) -> None:
    async with database.tenant_session(tenant.context) as session:
        mug = await create_product(tenant.context, session, {"name": "Mug"})
    cup = {"name": "Cup", "price_amount": 500, "currency": "EUR"}

    first_inserted = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with database.tenant_session(tenant.context) as session:
            for code in winners:
                await add_variant(tenant.context, session, mug.product.id, {**cup, "sku_code": code})
            first_inserted.set()
            await release_first.wait()

    async def second() -> None:
        await first_inserted.wait()
        async with database.tenant_session(tenant.context) as session:
            # The winner's codes are not committed yet: the pre-check passes and the index decides.
            await create_product(
                tenant.context,
                session,
                {"name": "Cups"},
                [{**cup, "sku_code": code} for code in ("CUP-1", "cup-2", "cup-3")],
            )

    winner = asyncio.create_task(first())
    loser = asyncio.create_task(second())
    await first_inserted.wait()
    await asyncio.sleep(0.2)  # let the second writer block on the unique index
    release_first.set()
    await winner
    with pytest.raises(SkuCodeTakenError) as raised:
        await loser
    # Not "SKU code 'CUP-1, cup-2, cup-3'": only the codes now taken, in the request's spelling.
    assert raised.value.detail == message
    async with database.tenant_session(tenant.context) as session:
        found = await search_skus(tenant.context, session, "cup-", PageRequest.parse(50, None))
    assert sorted(view.variant.sku_code for view in found.items) == winners
