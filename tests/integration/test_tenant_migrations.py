"""Migrating every tenant schema: concurrent, reported per tenant, resumable."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from ordersmith.platform.database import Database, to_libpq_url
from ordersmith.platform.errors import TenantNotFoundError
from ordersmith.platform.settings import DatabaseSettings
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record, provision_tenant
from ordersmith.platform.tenant_migrations import migrate_tenants, tenant_schema_status
from ordersmith.tenants.schema import TENANT_MIGRATIONS, TENANT_SCHEMA
from tests.support.migrations import (
    EXTRA_COLUMN,
    EXTRA_REVISION,
    stream_with_extra_revision,
    stream_with_revision,
)
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


SLOW_REVISION = "9002_slow"
_SLOW_REVISION_TEMPLATE = '''"""A slow revision: stands for an index built on a big store (test revision).

Revision ID: 9002_slow
Revises: {down_revision}
"""

from alembic import op

revision = "9002_slow"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT pg_sleep(0.4)")


def downgrade() -> None:
    pass
'''


def _database_with(database: Database, **settings: Any) -> Database:
    changed: DatabaseSettings = dataclasses.replace(database.settings, **settings)
    return Database(changed, database.url, database.owner_url)


async def test_migrations_are_held_to_their_own_statement_timeout_not_the_requests(
    database: Database, tmp_path: Path
) -> None:
    patient_tenant, hurried_tenant = await _provision_many(database, 2)
    slow = _SLOW_REVISION_TEMPLATE.format(down_revision=TENANT_MIGRATIONS.head())
    spec = stream_with_revision(tmp_path, SLOW_REVISION, slow)
    # Requests give up after 0.2 s; the revision's statement takes 0.4 s.
    patient = _database_with(database, statement_timeout_ms=200, migration_statement_timeout_ms=0)
    hurried = _database_with(database, statement_timeout_ms=200, migration_statement_timeout_ms=100)
    try:
        [migrated] = await migrate_tenants(patient, spec, slugs=[patient_tenant.slug])
        [timed_out] = await migrate_tenants(hurried, spec, slugs=[hurried_tenant.slug])
        # Provisioning and the platform migrations run on the same owner transactions.
        async with patient.owner_connection() as connection:
            owner_timeout = (await connection.execute(text("SHOW statement_timeout"))).scalar_one()
    finally:
        await patient.dispose()
        await hurried.dispose()

    assert (migrated.outcome, migrated.to_revision, migrated.error) == ("migrated", SLOW_REVISION, None)
    assert (timed_out.outcome, timed_out.error) == (
        "failed",
        "QueryCanceledError: canceling statement due to statement timeout",
    )
    assert owner_timeout == "0"


async def test_two_runs_at_once_take_turns_and_neither_fails(database: Database, tmp_path: Path) -> None:
    [tenant] = await _provision_many(database, 1)
    # Two processes, each with its own copy of the scripts, rendered before they race.
    specs = [stream_with_extra_revision(tmp_path / name) for name in ("one", "two")]
    for spec in specs:
        spec.migrations.render_upgrade(tenant.revision)

    first, second = await asyncio.gather(
        *(migrate_tenants(database, spec, slugs=[tenant.slug]) for spec in specs)
    )

    assert sorted((result.outcome, result.error) for result in first + second) == [
        ("current", None),
        ("migrated", None),
    ]
    registry = await get_tenant_record(database, tenant.slug)
    assert (registry.revision, registry.migration_error) == (EXTRA_REVISION, None)


async def test_a_concurrency_above_the_owner_pool_waits_instead_of_failing(
    database: Database, tmp_path: Path
) -> None:
    # Migrated in the registry's order: the slow one takes the only owner connection first.
    slow = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("slow"), name="Slow")
    quick = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("quick"), name="Quick")
    # One owner connection, and a tenant that waits longer than the pool lets anyone wait for it.
    small = _database_with(
        database,
        migration_concurrency=1,
        max_overflow=0,
        pool_timeout_seconds=1,
        migration_lock_timeout_ms=10_000,
    )
    spec = stream_with_extra_revision(tmp_path)
    spec.migrations.render_upgrade(slow.revision)
    blocker = await asyncpg.connect(to_libpq_url(database.owner_url))
    try:
        await blocker.execute("BEGIN")
        await blocker.execute(f'LOCK TABLE "{slow.schema_name}".store_settings IN ACCESS EXCLUSIVE MODE')

        async def release_later() -> None:
            await asyncio.sleep(1.5)
            await blocker.execute("ROLLBACK")

        release = asyncio.create_task(release_later())
        results = await migrate_tenants(small, spec, slugs=[slow.slug, quick.slug], concurrency=2)
        await release
    finally:
        await blocker.close()
        await small.dispose()

    assert {result.slug: (result.outcome, result.error) for result in results} == {
        slow.slug: ("migrated", None),
        quick.slug: ("migrated", None),
    }


async def test_an_unknown_slug_migrates_nothing(
    database: Database, tenant: TenantRecord, tmp_path: Path
) -> None:
    spec = stream_with_extra_revision(tmp_path)
    with pytest.raises(TenantNotFoundError) as refused:
        await migrate_tenants(database, spec, slugs=[tenant.slug, "no-such-shop", "no-such-store"])
    assert refused.value.detail == (
        "no tenant has the slugs 'no-such-shop', 'no-such-store'; nothing was migrated: "
        "check the spelling or list tenants"
    )
    assert (await get_tenant_record(database, tenant.slug)).revision == TENANT_MIGRATIONS.head()
