"""Migrating every tenant schema: concurrent, reported per tenant, resumable."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import asyncpg
from sqlalchemy import text

from ordersmith.platform.database import Database, to_libpq_url
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record, provision_tenant
from ordersmith.platform.tenant_migrations import migrate_tenants, tenant_schema_status
from ordersmith.tenants.schema import TENANT_MIGRATIONS, TENANT_SCHEMA
from tests.support.migrations import EXTRA_COLUMN, EXTRA_REVISION, stream_with_extra_revision
from tests.support.services import new_slug


async def _provision_many(database: Database, count: int) -> list[TenantRecord]:
    records: list[TenantRecord] = []
    for start in range(0, count, 10):
        batch = [
            provision_tenant(database, TENANT_SCHEMA, slug=new_slug("mig"), name=f"Shop {n}")
            for n in range(start, min(start + 10, count))
        ]
        records.extend(await asyncio.gather(*batch))
    return records


async def _owner_execute(database: Database, schema_name: str, statement: str) -> None:
    async with database.owner_connection() as connection:
        await connection.execute(text("SELECT set_config('search_path', :path, true)"), {"path": schema_name})
        await connection.execute(text(statement))


async def test_fifty_tenants_with_one_failing_then_a_second_run_finishes(
    database: Database, tmp_path: Path
) -> None:
    tenants = await _provision_many(database, 50)
    broken = tenants[17]
    # The revision adds a column this tenant already has: its migration fails.
    await _owner_execute(
        database, broken.schema_name, f"ALTER TABLE store_settings ADD COLUMN {EXTRA_COLUMN} text"
    )
    spec = stream_with_extra_revision(tmp_path)
    slugs = [tenant.slug for tenant in tenants]

    first = await migrate_tenants(database, spec, slugs=slugs)

    by_slug = {result.slug: result for result in first}
    assert len(first) == 50
    assert sorted(result.outcome for result in first).count("migrated") == 49
    failure = by_slug[broken.slug]
    assert failure.outcome == "failed"
    assert failure.from_revision == TENANT_MIGRATIONS.head()
    assert failure.error is not None
    assert f'column "{EXTRA_COLUMN}" of relation "store_settings" already exists' in failure.error
    assert {result.to_revision for result in first if result.outcome == "migrated"} == {EXTRA_REVISION}
    registry = await get_tenant_record(database, broken.slug)
    assert registry.revision == TENANT_MIGRATIONS.head()
    assert registry.migration_error == failure.error
    statuses = {status.slug: status for status in await tenant_schema_status(database, spec)}
    assert [slug for slug in slugs if not statuses[slug].is_at_head] == [broken.slug]

    await _owner_execute(
        database, broken.schema_name, f"ALTER TABLE store_settings DROP COLUMN {EXTRA_COLUMN}"
    )
    second = await migrate_tenants(database, spec, slugs=slugs)

    outcomes = {result.slug: result.outcome for result in second}
    assert outcomes[broken.slug] == "migrated"
    assert sorted(outcomes.values()).count("current") == 49
    repaired = await get_tenant_record(database, broken.slug)
    assert (repaired.revision, repaired.migration_error) == (EXTRA_REVISION, None)
    statuses = {status.slug: status for status in await tenant_schema_status(database, spec)}
    assert all(statuses[slug].revision == EXTRA_REVISION for slug in slugs)


async def test_a_locked_tenant_times_out_alone(database: Database, tmp_path: Path) -> None:
    locked, free = await _provision_many(database, 2)
    impatient = Database(
        dataclasses.replace(database.settings, migration_lock_timeout_ms=300),
        database.url,
        database.owner_url,
    )
    spec = stream_with_extra_revision(tmp_path)
    blocker = await asyncpg.connect(to_libpq_url(database.owner_url))
    try:
        await blocker.execute("BEGIN")
        await blocker.execute(f'LOCK TABLE "{locked.schema_name}".store_settings IN ACCESS EXCLUSIVE MODE')

        results = await migrate_tenants(impatient, spec, slugs=[locked.slug, free.slug])
    finally:
        await blocker.close()
        await impatient.dispose()

    outcomes = {result.slug: (result.outcome, result.error) for result in results}
    assert outcomes[free.slug] == ("migrated", None)
    assert outcomes[locked.slug][0] == "failed"
    assert "canceling statement due to lock timeout" in (outcomes[locked.slug][1] or "")
