"""The merge hook the orders context will use, and the ids that make up a customer's history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.customers.models import Customer
from ordersmith.tenants.customers.service import (
    MERGE_HOOKS,
    create_customer,
    customer_ids_for_history,
    merge_customers,
    on_customer_merged,
)

calls: list[tuple[uuid.UUID, uuid.UUID, bool]] = []


@pytest.fixture
def hooks() -> Iterator[None]:
    saved = list(MERGE_HOOKS)
    calls.clear()
    yield
    MERGE_HOOKS[:] = saved


async def _pair(database: Database, tenant: TenantRecord) -> tuple[uuid.UUID, uuid.UUID]:
    async with database.tenant_session(tenant.context) as session:
        survivor = await create_customer(tenant.context, session, {"full_name": "Ana"}, author=SYSTEM)
        duplicate = await create_customer(tenant.context, session, {"full_name": "A."}, author=SYSTEM)
    return survivor.customer.id, duplicate.customer.id


async def test_a_merge_hook_runs_in_the_merge_transaction(
    database: Database, tenant: TenantRecord, hooks: None
) -> None:
    survivor_id, duplicate_id = await _pair(database, tenant)

    @on_customer_merged
    async def record(
        context: TenantContext, session: AsyncSession, to_id: uuid.UUID, from_id: uuid.UUID
    ) -> None:
        # The duplicate is already marked merged when the hook sees it.
        merged_into = await session.scalar(select(Customer.merged_into_id).where(Customer.id == from_id))
        calls.append((to_id, from_id, merged_into == to_id))

    async with database.tenant_session(tenant.context) as session:
        await merge_customers(tenant.context, session, survivor_id, duplicate_id, actor=SYSTEM)
        assert calls == [(survivor_id, duplicate_id, True)]
        history = await customer_ids_for_history(tenant.context, session, duplicate_id)
    assert history == [survivor_id, duplicate_id]


async def test_a_failing_hook_undoes_the_whole_merge(
    database: Database, tenant: TenantRecord, hooks: None
) -> None:
    survivor_id, duplicate_id = await _pair(database, tenant)

    @on_customer_merged
    async def refuse(
        context: TenantContext, session: AsyncSession, to_id: uuid.UUID, from_id: uuid.UUID
    ) -> None:
        raise RuntimeError("orders could not be moved")

    with pytest.raises(RuntimeError, match="orders could not be moved"):
        async with database.tenant_session(tenant.context) as session:
            await merge_customers(tenant.context, session, survivor_id, duplicate_id, actor=SYSTEM)
    async with database.tenant_session(tenant.context) as session:
        assert await customer_ids_for_history(tenant.context, session, duplicate_id) == [duplicate_id]
