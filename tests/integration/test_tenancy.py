"""Provisioning, isolation enforced by PostgreSQL, archiving and dropping."""

from __future__ import annotations

import re

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.errors import (
    ConflictError,
    InvalidSlugError,
    SlugTakenError,
    TenantArchivedError,
    TenantNotFoundError,
    ValidationFailedError,
)
from ordersmith.platform.identity.audit import PLATFORM_CHAIN, Actor
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.schema_migrations import TenantSchemaSpec
from ordersmith.platform.tenancy import (
    TenantRecord,
    archive_tenant,
    drop_tenant,
    get_tenant_record,
    provision_tenant,
    require_active,
    resolve_tenant,
    restore_tenant,
    validate_slug,
)
from ordersmith.tenants.schema import TENANT_MIGRATIONS, TENANT_SCHEMA
from ordersmith.tenants.store.models import StoreSettings
from ordersmith.tenants.store.service import get_store_profile
from tests.support.members import audit_trail
from tests.support.services import new_slug

OPERATOR = Actor("system", "cli:operator")


async def _catalog_counts(database: Database, schema_name: str) -> tuple[int, int]:
    async with database.owner_connection() as connection:
        schemas = (
            await connection.execute(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"), {"n": schema_name}
            )
        ).scalar_one()
        roles = (
            await connection.execute(
                text("SELECT count(*) FROM pg_roles WHERE rolname = :n"), {"n": schema_name}
            )
        ).scalar_one()
    return schemas, roles


async def test_provisioning_creates_schema_role_registry_and_seed(database: Database) -> None:
    slug = new_slug()
    record = await provision_tenant(database, TENANT_SCHEMA, slug=slug, name="  Acme Outdoor  ")

    assert record.slug == slug
    assert record.name == "Acme Outdoor"
    assert record.status == "active"
    assert record.plan == "trial"
    assert record.schema_name == record.db_role
    assert re.fullmatch(r"t_[a-z0-9]{10}", record.schema_name)
    assert record.revision == TENANT_MIGRATIONS.head()
    assert (record.cluster, record.database_name) == ("primary", database.runtime.url.database)
    assert await _catalog_counts(database, record.schema_name) == (1, 1)
    async with database.tenant_session(record.context) as session:
        profile = await get_store_profile(record.context, session)
        role = (await session.execute(text("SELECT current_user"))).scalar_one()
    assert (profile.display_name, profile.default_currency, profile.timezone) == (
        "Acme Outdoor",
        "EUR",
        "UTC",
    )
    assert role == record.db_role


async def test_a_failure_mid_provisioning_leaves_nothing_behind(database: Database) -> None:
    doomed: list[TenantContext] = []

    async def failing_seed(_: object, tenant: TenantContext, *__: object) -> None:
        # The schema and role exist by now, inside the provisioning transaction.
        doomed.append(tenant)
        raise RuntimeError("seed exploded")

    spec = TenantSchemaSpec(migrations=TENANT_MIGRATIONS, seed=failing_seed)
    slug = new_slug()
    before = await _tenant_schemas_and_roles(database)

    with pytest.raises(RuntimeError, match="seed exploded"):
        await provision_tenant(database, spec, slug=slug, name="Doomed")

    with pytest.raises(TenantNotFoundError):
        await get_tenant_record(database, slug)
    [tenant] = doomed
    schemas, roles = await _tenant_schemas_and_roles(database)
    # Roles are the server's, not the database's: another test process may add its own
    # meanwhile, so this looks for the doomed store's, and at this database's schemas.
    assert (tenant.schema_name in schemas, tenant.db_role in roles) == (False, False)
    assert schemas == before[0]


async def _tenant_schemas_and_roles(database: Database) -> tuple[set[str], set[str]]:
    async with database.owner_connection() as connection:
        schemas = (
            await connection.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'"))
        ).scalars()
        roles = (
            await connection.execute(text("SELECT rolname FROM pg_roles WHERE rolname LIKE 't\\_%'"))
        ).scalars()
        return set(schemas), set(roles)


async def test_raw_sql_naming_another_tenants_schema_is_refused_by_postgresql(database: Database) -> None:
    tenant_a = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("a"), name="Shop A")
    tenant_b = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("b"), name="Shop B")

    with pytest.raises(DBAPIError) as refused:
        async with database.tenant_session(tenant_a.context) as session:
            await session.execute(text(f'SELECT display_name FROM "{tenant_b.schema_name}".store_settings'))
    assert refused.value.orig is not None
    assert isinstance(refused.value.orig.__cause__, asyncpg.InsufficientPrivilegeError)
    assert f"permission denied for schema {tenant_b.schema_name}" in str(refused.value)


async def test_orm_queries_see_only_their_own_tenants_rows(database: Database) -> None:
    tenant_a = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("a"), name="Shop A")
    tenant_b = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("b"), name="Shop B")

    async with database.tenant_session(tenant_a.context) as session:
        names_a = (await session.execute(select(StoreSettings.display_name))).scalars().all()
    async with database.tenant_session(tenant_b.context) as session:
        names_b = (await session.execute(select(StoreSettings.display_name))).scalars().all()
    assert names_a == ["Shop A"]
    assert names_b == ["Shop B"]


async def test_a_tenant_cannot_read_the_outbox_or_the_registry(
    database: Database, tenant: TenantRecord
) -> None:
    for table in ("platform.outbox", "platform.tenants"):
        with pytest.raises(ProgrammingError, match="permission denied"):
            async with database.tenant_session(tenant.context) as session:
                await session.execute(text(f"SELECT count(*) FROM {table}"))


async def test_the_runtime_role_cannot_create_or_drop_schemas(
    database: Database, tenant: TenantRecord
) -> None:
    with pytest.raises(ProgrammingError, match="permission denied for database"):
        async with database.runtime.begin() as connection:
            await connection.execute(text("CREATE SCHEMA intruder"))
    with pytest.raises(ProgrammingError, match=f"must be owner of schema {tenant.schema_name}"):
        async with database.runtime.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{tenant.schema_name}" CASCADE'))
    assert await _catalog_counts(database, tenant.schema_name) == (1, 1)


SLUG_RULE_BROKEN = (
    "must be 3 to 40 characters: lowercase letters, digits and hyphens, starting and ending with a letter "
    "or digit"
)


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("ab", SLUG_RULE_BROKEN),
        ("Acme", SLUG_RULE_BROKEN),
        ("acme_shop", SLUG_RULE_BROKEN),
        ("a" * 41, SLUG_RULE_BROKEN),
        # A command line would read a leading hyphen as an option.
        ("-acme", SLUG_RULE_BROKEN),
        ("acme-", SLUG_RULE_BROKEN),
        ("---", SLUG_RULE_BROKEN),
        ("admin", "is reserved; choose another"),
        ("api", "is reserved; choose another"),
        ("www", "is reserved; choose another"),
        ("platform", "is reserved; choose another"),
    ],
)
def test_slug_rules(slug: str, message: str) -> None:
    with pytest.raises(InvalidSlugError) as rejected:
        validate_slug(slug)
    assert rejected.value.code == "invalid_slug"
    assert rejected.value.status == 422
    assert [(error.field, error.message) for error in rejected.value.errors] == [("slug", message)]


async def test_a_taken_slug_is_a_conflict(database: Database, tenant: TenantRecord) -> None:
    with pytest.raises(SlugTakenError, match="is already taken"):
        await provision_tenant(database, TENANT_SCHEMA, slug=tenant.slug, name="Copycat")


@pytest.mark.parametrize(
    ("name", "plan", "detail", "error"),
    [
        ("n" * 201, "trial", "a tenant's name must be at most 200 characters",
         ("name", "must be at most 200 characters")),
        ("Shop", "no-such-plan",
         "plan 'no-such-plan' does not exist; it must be one of trial, starter, growth, enterprise",
         ("plan", "must be one of trial, starter, growth, enterprise")),
    ],
)  # fmt: skip
async def test_a_name_too_long_or_an_unknown_plan_creates_nothing(
    database: Database, name: str, plan: str, detail: str, error: tuple[str, str]
) -> None:
    slug = new_slug()
    with pytest.raises(ValidationFailedError) as refused:
        await provision_tenant(database, TENANT_SCHEMA, slug=slug, name=name, plan=plan)
    assert (refused.value.code, refused.value.detail) == ("validation_failed", detail)
    assert [(item.field, item.message) for item in refused.value.errors] == [error]
    with pytest.raises(TenantNotFoundError):
        await get_tenant_record(database, slug)


async def test_unknown_tenant_is_not_found(database: Database) -> None:
    with pytest.raises(TenantNotFoundError) as missing:
        await resolve_tenant(database, "no-such-shop")
    assert (missing.value.status, missing.value.code) == (404, "tenant_not_found")


async def test_archiving_blocks_access_in_the_app_and_in_postgresql(
    database: Database, tenant: TenantRecord
) -> None:
    archived = await archive_tenant(database, tenant.slug, actor=OPERATOR)
    assert archived.status == "archived"

    with pytest.raises(TenantArchivedError) as refused:
        await resolve_tenant(database, tenant.slug)
    assert (refused.value.status, refused.value.code, refused.value.detail) == (
        403,
        "tenant_archived",
        f"store {tenant.slug!r} is archived: nobody can use it until a vendor administrator "
        f"restores it (`ordersmith tenants restore -- {tenant.slug}`)",
    )
    with pytest.raises(TenantArchivedError):
        require_active(archived)
    assert require_active(tenant) is tenant
    with pytest.raises(ProgrammingError, match=f'permission denied to set role "{tenant.db_role}"'):
        async with database.tenant_session(tenant.context) as session:
            await session.execute(text("SELECT 1"))

    restored = await restore_tenant(database, tenant.slug, actor=OPERATOR)
    assert restored.status == "active"
    context = await resolve_tenant(database, tenant.slug)
    async with database.tenant_session(context) as session:
        profile = await get_store_profile(context, session)
    assert profile.display_name == "Test Shop"


async def test_dropping_needs_archiving_and_confirmation_then_removes_everything(
    database: Database, tenant: TenantRecord
) -> None:
    with pytest.raises(ConflictError, match="archive it before dropping it"):
        await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)
    await archive_tenant(database, tenant.slug, actor=OPERATOR)
    with pytest.raises(ConflictError, match="confirm by repeating its slug exactly"):
        await drop_tenant(database, tenant.slug, confirm="yes", actor=OPERATOR)

    await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)

    with pytest.raises(TenantNotFoundError):
        await get_tenant_record(database, tenant.slug)
    assert await _catalog_counts(database, tenant.schema_name) == (0, 0)


async def _platform_entries_about(
    database: Database, tenant: TenantRecord
) -> list[tuple[str, str, str | None]]:
    async with database.platform_session() as session:
        rows = (
            await session.execute(
                select(AuditEntry.action, AuditEntry.actor_type, AuditEntry.actor_id)
                .where(AuditEntry.chain == PLATFORM_CHAIN, AuditEntry.target_id == str(tenant.id))
                .order_by(AuditEntry.id)
            )
        ).all()
    return [(action, actor_type, actor_id) for action, actor_type, actor_id in rows]


async def test_archive_restore_and_drop_are_audited_once_each(
    database: Database, tenant: TenantRecord
) -> None:
    await archive_tenant(database, tenant.slug, actor=OPERATOR)
    # Archiving what is archived (or restoring what is active) changes nothing and records nothing.
    await archive_tenant(database, tenant.slug, actor=OPERATOR)
    await restore_tenant(database, tenant.slug, actor=Actor("system", "cli:someone-else"))
    await restore_tenant(database, tenant.slug, actor=OPERATOR)
    await archive_tenant(database, tenant.slug, actor=OPERATOR)
    await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)

    about = {"slug": tenant.slug, "schema": tenant.schema_name}
    entry = {"actor_type": "system", "target_type": "tenant", "target_id": str(tenant.id), "data": about}
    assert await audit_trail(database, str(tenant.id)) == [
        {"action": "tenant.archived", "actor_id": "cli:operator", **entry},
        {"action": "tenant.restored", "actor_id": "cli:someone-else", **entry},
        {"action": "tenant.archived", "actor_id": "cli:operator", **entry},
    ]
    # Nobody is left to read the tenant's own trail: the drop is on the platform's.
    assert await _platform_entries_about(database, tenant) == [("tenant.dropped", "system", "cli:operator")]


async def test_a_refused_drop_records_nothing(database: Database, tenant: TenantRecord) -> None:
    with pytest.raises(ConflictError) as refused:
        await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)
    assert refused.value.detail == f"tenant {tenant.slug!r} is not archived; archive it before dropping it"
    assert await get_tenant_record(database, tenant.slug) == tenant
    assert await _platform_entries_about(database, tenant) == []
    assert await audit_trail(database, str(tenant.id)) == []


async def test_a_tenant_reads_but_cannot_change_its_schema_revision(
    database: Database, tenant: TenantRecord
) -> None:
    async with database.tenant_session(tenant.context) as session:
        revision = (
            await session.execute(text(f'SELECT version_num FROM "{tenant.schema_name}".alembic_version'))
        ).scalar_one()
    assert revision == TENANT_MIGRATIONS.head()
    with pytest.raises(ProgrammingError, match="permission denied for table alembic_version"):
        async with database.tenant_session(tenant.context) as session:
            await session.execute(
                text(f"UPDATE \"{tenant.schema_name}\".alembic_version SET version_num = 'x'")
            )
