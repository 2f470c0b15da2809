"""Models and migrations agree, for the platform schema and for tenant schemas."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, text

from ordersmith.platform.database import PLATFORM_SCHEMA, Database
from ordersmith.platform.schema import PLATFORM_METADATA
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.tenants.schema import TENANT_METADATA


def _differences(connection: Connection, metadata: MetaData, schema: str | None) -> list[Any]:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == schema
        return name != "alembic_version"

    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": schema is not None,
            "include_name": include_name,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(context, metadata))


async def test_platform_models_match_the_platform_migrations(database: Database) -> None:
    async with database.owner_connection() as connection:
        differences = await connection.run_sync(_differences, PLATFORM_METADATA, PLATFORM_SCHEMA)
    assert differences == []


async def test_tenant_models_match_the_tenant_migrations(database: Database, tenant: TenantRecord) -> None:
    # Tenant tables and revisions are unqualified; compare inside the tenant's search_path.
    async with database.owner_connection() as connection:
        await connection.execute(
            text("SELECT set_config('search_path', :path, true)"), {"path": tenant.schema_name}
        )
        differences = await connection.run_sync(_differences, TENANT_METADATA, None)
    assert differences == []
