"""The partial indexes on orders serve the list filters they exist for."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, driver_of
from ordersmith.platform.pagination import PageRequest
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.orders.queries import OrderFilter, list_orders


async def _list_statement(
    database: Database, tenant: TenantRecord, session: AsyncSession, filters: OrderFilter
) -> tuple[str, Any]:
    """The SQL and parameters of the page query `list_orders` sends for these filters."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    engine = database.runtime.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        await list_orders(tenant.context, session, filters, PageRequest.parse(50, None))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return captured[-1]


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (OrderFilter(tag="VIP"), "ix_orders_tag_keys"),
        (OrderFilter(external_reference="AMZ-113-77"), "ix_orders_external_reference"),
    ],
)
async def test_a_filter_on_a_partial_index_can_use_it(
    database: Database, tenant: TenantRecord, filters: OrderFilter, index: str
) -> None:
    async with database.tenant_session(tenant.context) as session:
        statement, parameters = await _list_statement(database, tenant, session, filters)
        driver = await driver_of(session)
        # Scans that need no index are priced out: a partial index whose predicate the
        # query does not imply leaves only the (disabled) sequential scan.
        await driver.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        plan = "\n".join(row[0] for row in await driver.fetch("EXPLAIN " + statement, *(parameters or ())))
    assert f"Bitmap Index Scan on {index}" in plan
    assert "Seq Scan" not in plan


async def test_the_tag_filter_spells_the_index_predicate_as_a_constant(
    database: Database, tenant: TenantRecord
) -> None:
    # A parameter in its place would do for the plan above (EXPLAIN plans with the
    # parameters' values) but not for a reused generic plan, which cannot prove it.
    async with database.tenant_session(tenant.context) as session:
        statement, _ = await _list_statement(database, tenant, session, OrderFilter(tag="vip"))
    assert "cardinality(orders.tag_keys) > 0" in statement
