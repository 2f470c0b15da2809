"""Migrating every tenant schema: concurrent, bounded, resumable, reported per tenant.

Each tenant is migrated in its own transaction with a lock timeout, so one busy or
broken tenant fails alone and the run goes on; a per-schema advisory lock makes two runs
at once take turns instead of replaying the same revision twice. Progress is recorded in the registry
(`revision`, `migrated_at`, `migration_error`); running again finishes what is left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ordersmith.platform.database import Database
from ordersmith.platform.errors import TenantNotFoundError
from ordersmith.platform.models import Tenant
from ordersmith.platform.schema_migrations import TenantSchemaSpec
from ordersmith.platform.tenancy import TenantRecord, apply_tenant_script, list_tenants


@dataclass(frozen=True)
class TenantMigrationResult:
    """What happened to one tenant schema in a migration run."""

    slug: str
    schema_name: str
    from_revision: str | None
    to_revision: str | None
    # "migrated", "current" (nothing to do) or "failed".
    outcome: str
    error: str | None
    seconds: float


# Held by whoever migrates a schema until its transaction ends: two runs at once (two
# `ordersmith migrate` started together) take turns, and the second finds the schema at head.
_LOCK_SCHEMA = text(
    "SELECT pg_advisory_xact_lock(hashtext('ordersmith.tenant_migration'), hashtext(:schema))"
)


async def _read_revision(connection: AsyncConnection, schema_name: str) -> str | None:
    await connection.execute(text("SELECT set_config('search_path', :path, true)"), {"path": schema_name})
    return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()


async def _migrate_one(
    database: Database, spec: TenantSchemaSpec, tenant: TenantRecord, head: str, lock_timeout_ms: int
) -> TenantMigrationResult:
    started = time.perf_counter()
    current: str | None = tenant.revision
    try:
        # No lock timeout while another run migrates this schema: waiting for it is not a failure.
        async with database.owner_connection(lock_timeout_ms=0) as connection:
            await connection.execute(_LOCK_SCHEMA, {"schema": tenant.schema_name})
            await connection.execute(
                text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": f"{lock_timeout_ms}ms"}
            )
            current = await _read_revision(connection, tenant.schema_name)
            if current != head:
                script = spec.migrations.render_upgrade(current)
                await apply_tenant_script(connection, tenant.schema_name, script)
            if current != head or tenant.revision != head or tenant.migration_error is not None:
                await connection.execute(
                    update(Tenant)
                    .where(Tenant.id == tenant.id)
                    .values(revision=head, migrated_at=dt.datetime.now(dt.UTC), migration_error=None)
                )
    except Exception as error:
        message = f"{type(error).__name__}: {error}".strip()
        async with database.owner_connection() as connection:
            await connection.execute(
                update(Tenant).where(Tenant.id == tenant.id).values(migration_error=message[:2000])
            )
        return TenantMigrationResult(
            tenant.slug,
            tenant.schema_name,
            current,
            current,
            "failed",
            message,
            time.perf_counter() - started,
        )
    outcome = "current" if current == head else "migrated"
    return TenantMigrationResult(
        tenant.slug, tenant.schema_name, current, head, outcome, None, time.perf_counter() - started
    )


def migration_concurrency(database: Database, requested: int | None = None) -> int:
    """Tenants migrated at once: as requested (default MIGRATION_CONCURRENCY), at most the owner pool.

    Each tenant holds one owner connection; asking for more than the pool holds would
    leave tenants waiting for a connection until the pool times out and fails them.
    """
    wanted = requested or database.settings.migration_concurrency
    capacity = database.owner_pool_capacity
    return max(1, wanted if capacity is None else min(wanted, capacity))


async def migrate_tenants(
    database: Database,
    spec: TenantSchemaSpec,
    *,
    slugs: Sequence[str] | None = None,
    concurrency: int | None = None,
    on_result: Callable[[TenantMigrationResult], None] | None = None,
) -> list[TenantMigrationResult]:
    """Bring every tenant schema (or the named ones) to head; never stops at a failure.

    `TenantNotFoundError` before anything is migrated if a named slug is in no registry entry.
    """
    head = spec.migrations.head()
    tenants = await list_tenants(database)
    if slugs is not None:
        wanted = set(slugs)
        tenants = [tenant for tenant in tenants if tenant.slug in wanted]
        unknown = sorted(wanted - {tenant.slug for tenant in tenants})
        if unknown:
            names = ("slugs " if len(unknown) > 1 else "slug ") + ", ".join(repr(slug) for slug in unknown)
            raise TenantNotFoundError(
                f"no tenant has the {names}; nothing was migrated: check the spelling or list tenants"
            )
    limit = asyncio.Semaphore(migration_concurrency(database, concurrency))
    lock_timeout_ms = database.settings.migration_lock_timeout_ms

    async def migrate(tenant: TenantRecord) -> TenantMigrationResult:
        async with limit:
            result = await _migrate_one(database, spec, tenant, head, lock_timeout_ms)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(migrate(tenant) for tenant in tenants)))


@dataclass(frozen=True)
class TenantSchemaStatus:
    slug: str
    schema_name: str
    revision: str | None
    head: str
    migration_error: str | None

    @property
    def is_at_head(self) -> bool:
        return self.revision == self.head


async def tenant_schema_status(
    database: Database, spec: TenantSchemaSpec, *, concurrency: int | None = None
) -> list[TenantSchemaStatus]:
    """Each tenant's schema revision as read from the schema itself, beside the head."""
    head = spec.migrations.head()
    limit = asyncio.Semaphore(migration_concurrency(database, concurrency))

    async def read(tenant: TenantRecord) -> TenantSchemaStatus:
        async with limit, database.owner_connection() as connection:
            revision = await _read_revision(connection, tenant.schema_name)
        return TenantSchemaStatus(tenant.slug, tenant.schema_name, revision, head, tenant.migration_error)

    return list(await asyncio.gather(*(read(tenant) for tenant in await list_tenants(database))))
