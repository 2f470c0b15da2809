"""The hot path's tenant transaction on the bare driver connection (ADR 0010)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import Table, bindparam, func, select, text

from ordersmith.platform.database import Database, to_libpq_url
from ordersmith.platform.driver_sql import DriverStatement
from ordersmith.platform.tenancy import TenantRecord, provision_tenant
from ordersmith.tenants.catalog.models import Product
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.services import new_slug

_PRODUCTS: Table = Product.__table__  # type: ignore[assignment]
_COUNT = DriverStatement(select(func.count()).select_from(_PRODUCTS))
_ADD = DriverStatement(
    _PRODUCTS.insert().values(id=func.gen_random_uuid(), name=bindparam("name", type_=_PRODUCTS.c.name.type))
)


async def _products(database: Database, tenant: TenantRecord) -> int:
    async with database.tenant_session(tenant.context) as session:
        return int((await session.execute(text("SELECT count(*) FROM products"))).scalar_one())


async def test_a_driver_transaction_commits_what_it_wrote(database: Database, tenant: TenantRecord) -> None:
    async with database.tenant_driver(tenant.context) as connection:
        await _ADD.execute(connection, tenant.schema_name, {"name": "Lamp"})
        assert await _COUNT.fetchrow(connection, tenant.schema_name, {}) == (1,)
    assert await _products(database, tenant) == 1


async def test_a_failed_driver_transaction_writes_nothing_and_frees_its_connection(
    database: Database, tenant: TenantRecord
) -> None:
    async def insert_then_fail() -> None:
        async with database.tenant_driver(tenant.context) as connection:
            await _ADD.execute(connection, tenant.schema_name, {"name": "Lamp"})
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError, match="after the insert"):
        await insert_then_fail()
    assert await _products(database, tenant) == 0
    # The pooled connection came back outside any transaction: the next one starts clean.
    async with database.tenant_driver(tenant.context) as connection:
        assert await _COUNT.fetchrow(connection, tenant.schema_name, {}) == (0,)
        assert await connection.fetchval("SELECT current_setting('plan_cache_mode')") == "force_generic_plan"
    async with database.platform_driver() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT current_setting('plan_cache_mode')") == "auto"


async def test_a_connection_lost_mid_transaction_is_dropped_not_pooled(
    database: Database, tenant: TenantRecord, database_url: str
) -> None:
    async def lose_the_connection() -> None:
        async with database.tenant_driver(tenant.context) as connection:
            pid = await connection.fetchval("SELECT pg_backend_pid()")
            admin = await asyncpg.connect(to_libpq_url(database_url))
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
            finally:
                await admin.close()
            await connection.fetchval("SELECT 1")

    # How asyncpg words a connection killed under it depends on when it notices.
    with pytest.raises(
        (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    ):
        await lose_the_connection()
    # Its ROLLBACK failed too: the pool dropped it, so every connection it hands out works.
    pool_size = database.settings.pool_size

    async def one_round_trip() -> int:
        async with database.platform_driver() as connection:
            return int(await connection.fetchval("SELECT 1"))

    assert await asyncio.gather(*(one_round_trip() for _ in range(pool_size))) == [1] * pool_size


async def test_a_driver_transaction_cannot_reach_another_tenants_schema(
    database: Database, tenant: TenantRecord
) -> None:
    other = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug(), name="Other Shop")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with database.tenant_driver(tenant.context) as connection:
            await _COUNT.fetchrow(connection, other.schema_name, {})
    # An unqualified name finds the tenant's own tables: the default search_path starts
    # with "$user", and a tenant's schema is named like its role (ADR 0001).
    async with database.tenant_driver(tenant.context) as connection:
        schemas = await connection.fetchval("SELECT current_schemas(false)")
    assert schemas[0] == tenant.schema_name
    assert other.schema_name not in schemas


def test_a_statement_names_the_tenant_schema_and_keeps_the_platform_one() -> None:
    from ordersmith.tenants.orders.placement_write import WRITE

    sql = WRITE.sql('t_"odd')
    assert 'INSERT INTO "t_""odd".orders' in sql
    assert "INSERT INTO platform.outbox" in sql
    assert "__[SCHEMA" not in sql
    # The same text object per schema: asyncpg's statement cache looks it up on every call.
    assert WRITE.sql('t_"odd') is sql
    assert _COUNT.sql("t_plain").endswith("FROM t_plain.products")


def test_json_parameters_are_sent_as_text_and_constants_travel_with_the_statement() -> None:
    from ordersmith.tenants.orders.placement_write import WRITE

    rows = [
        {"id": "00000000-0000-7000-8000-000000000001", "changes": {"status": {"old": None, "new": "placed"}}}
    ]
    values = WRITE.arguments(dict.fromkeys(WRITE.names, None) | {"e": rows})
    arguments = dict(zip(WRITE.names, values, strict=True))
    assert arguments["e"] == (
        '[{"id":"00000000-0000-7000-8000-000000000001","changes":{"status":{"old":null,"new":"placed"}}}]'
    )
    # `jsonb_build_object('number', …)`: the key is a constant of the statement.
    constant = next(name for name in WRITE.names if name.startswith("jsonb_build_object"))
    assert (
        WRITE.arguments({name: None for name in WRITE.names if name != constant})[WRITE.names.index(constant)]
        == "number"
    )
    with pytest.raises(KeyError):
        WRITE.arguments({})
