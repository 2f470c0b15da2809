"""A write to a customer that a merge folds away meanwhile lands on the survivor, never on the duplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from sqlalchemy import func, select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.customers.models import Customer, CustomerAddress, CustomerNote
from ordersmith.tenants.customers.service import (
    CustomerView,
    add_address,
    add_note,
    create_customer,
    merge_customers,
    update_customer,
)
from ordersmith.tenants.returns.errors import StoreCreditInsufficientError
from ordersmith.tenants.returns.store_credit import grant, spend, store_credit
from tests.support.concurrency import wait_for_lock_waiters

ADDRESS = {"recipient_name": "Ana", "line1": "1 Quay St", "city": "Oslo", "country_code": "NO"}
Write = Callable[[TenantRecord, Database, uuid.UUID], Coroutine[Any, Any, CustomerView]]


async def _note(tenant: TenantRecord, database: Database, customer_id: uuid.UUID) -> CustomerView:
    async with database.tenant_session(tenant.context) as session:
        return await add_note(tenant.context, session, customer_id, "called about the parcel", author=SYSTEM)


async def _address(tenant: TenantRecord, database: Database, customer_id: uuid.UUID) -> CustomerView:
    async with database.tenant_session(tenant.context) as session:
        return await add_address(tenant.context, session, customer_id, ADDRESS)


async def _tags(tenant: TenantRecord, database: Database, customer_id: uuid.UUID) -> CustomerView:
    async with database.tenant_session(tenant.context) as session:
        return await update_customer(tenant.context, session, customer_id, {"tags": ["vip"]})


@pytest.mark.parametrize("write", [_note, _address, _tags], ids=["note", "address", "tags"])
async def test_a_write_waiting_on_a_merge_lands_on_the_survivor(
    database: Database, tenant: TenantRecord, write: Write
) -> None:
    async with database.tenant_session(tenant.context) as session:
        survivor = (
            await create_customer(tenant.context, session, {"full_name": "Ana"}, author=SYSTEM)
        ).customer
        duplicate = (
            await create_customer(tenant.context, session, {"full_name": "A."}, author=SYSTEM)
        ).customer
    # The merge holds both rows until it commits; the write, sent to the duplicate's id
    # meanwhile, waits for it and must then follow the duplicate to the survivor.
    async with database.tenant_session(tenant.context) as merging:
        await merge_customers(tenant.context, merging, survivor.id, duplicate.id, actor=SYSTEM)
        writing = asyncio.create_task(write(tenant, database, duplicate.id))
        await wait_for_lock_waiters(database, 1)
    view = await writing
    assert view.customer.id == survivor.id
    async with database.tenant_session(tenant.context) as session:
        on_duplicate = [
            await session.scalar(
                select(func.count()).select_from(table).where(table.customer_id == duplicate.id)
            )
            for table in (CustomerNote, CustomerAddress)
        ]
        tags = await session.scalar(select(Customer.tags).where(Customer.id == survivor.id))
        notes = list(
            await session.scalars(select(CustomerNote.body).where(CustomerNote.customer_id == survivor.id))
        )
        addresses = await session.scalar(
            select(func.count())
            .select_from(CustomerAddress)
            .where(CustomerAddress.customer_id == survivor.id)
        )
    assert on_duplicate == [0, 0]
    if write is _note:
        assert [note.body for note in view.notes][-1] == "called about the parcel"
        assert notes.count("called about the parcel") == 1
    if write is _address:
        assert [address.line1 for address in view.addresses] == ["1 Quay St"]
        assert addresses == 1
    if write is _tags:
        assert (view.customer.tags, tags) == (["vip"], ["vip"])


async def test_store_credit_is_not_spent_twice_across_a_merge(
    database: Database, tenant: TenantRecord
) -> None:
    context = tenant.context
    async with database.tenant_session(context) as session:
        survivor = (await create_customer(context, session, {"full_name": "Ana"}, author=SYSTEM)).customer.id
        duplicate = (await create_customer(context, session, {"full_name": "A."}, author=SYSTEM)).customer.id
        await grant(context, session, duplicate, 100, "EUR", reason="refund of return 7", actor=SYSTEM)
    spent_on_duplicate = asyncio.Event()
    commit = asyncio.Event()

    async def spend_on(customer_id: uuid.UUID, done: asyncio.Event | None = None) -> str:
        try:
            async with database.tenant_session(context) as session:
                await spend(context, session, customer_id, 100, "EUR", reason="order 12", actor=SYSTEM)
                if done is not None:
                    # Holds its transaction open: the spend is not yet committed for others to see.
                    done.set()
                    await commit.wait()
            return "spent"
        except StoreCreditInsufficientError:
            return "refused"

    async with database.tenant_session(context) as merging:
        await merge_customers(context, merging, survivor, duplicate, actor=SYSTEM)
        # A spend sent to the duplicate's id waits for the merge, which holds its row.
        on_duplicate = asyncio.create_task(spend_on(duplicate, spent_on_duplicate))
        await wait_for_lock_waiters(database, 1)
    await spent_on_duplicate.wait()
    # Its spend is written, not committed. A spend on the survivor must wait for it (both lock
    # the survivor), not read the balance as if the duplicate's credit were still there.
    on_survivor = asyncio.create_task(spend_on(survivor))
    waiting = asyncio.create_task(wait_for_lock_waiters(database, 1))
    await asyncio.wait([on_survivor, waiting], return_when=asyncio.FIRST_COMPLETED)
    commit.set()
    results = [await on_duplicate, await on_survivor]
    waiting.cancel()
    assert results == ["spent", "refused"]
    async with database.tenant_session(context) as session:
        assert (await store_credit(context, session, survivor)).balances == {"EUR": 0}
