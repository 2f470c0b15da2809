"""Make a database ready: roles, the platform schema, and the platform migrations.

Runs as the login user of `DATABASE_OWNER_URL` (or `DATABASE_URL`), which must be allowed
to create roles the first time. Safe to run again: each step checks before it acts.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from ordersmith.platform.database import PLATFORM_SCHEMA, Database, to_libpq_url
from ordersmith.platform.schema_migrations import MigrationStream
from ordersmith.platform.settings import DatabaseSettings

PLATFORM_MIGRATIONS = MigrationStream(
    name="platform",
    script_location=Path(__file__).parent / "alembic",
    version_table_schema=PLATFORM_SCHEMA,
)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def roles_script(settings: DatabaseSettings) -> str:
    """DDL that creates the three roles and the platform schema, if they are missing."""
    owner, app, group = (
        _quote(settings.owner_role),
        _quote(settings.app_role),
        _quote(settings.tenant_group_role),
    )
    return f"""
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(settings.owner_role)}) THEN
        CREATE ROLE {owner} NOLOGIN CREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(settings.app_role)}) THEN
        CREATE ROLE {app} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(settings.tenant_group_role)}) THEN
        CREATE ROLE {group} NOLOGIN;
    END IF;
    IF NOT has_database_privilege({_literal(settings.owner_role)}, current_database(), 'CREATE') THEN
        EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO {owner}', current_database());
    END IF;
    IF NOT has_database_privilege({_literal(settings.app_role)}, current_database(), 'CONNECT') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO {app}', current_database());
    END IF;
    -- The login user switches into these roles at connect time.
    IF NOT pg_has_role(current_user, {_literal(settings.owner_role)}, 'MEMBER') THEN
        GRANT {owner} TO CURRENT_USER;
    END IF;
    IF NOT pg_has_role(current_user, {_literal(settings.app_role)}, 'MEMBER') THEN
        GRANT {app} TO CURRENT_USER;
    END IF;
    -- Provisioning (as the owner) makes each new tenant role a member of the group.
    IF NOT pg_has_role({_literal(settings.owner_role)}, {_literal(settings.tenant_group_role)}, 'MEMBER') THEN
        GRANT {group} TO {owner} WITH ADMIN OPTION;
    END IF;
END
$roles$;
CREATE SCHEMA IF NOT EXISTS {PLATFORM_SCHEMA} AUTHORIZATION {owner};
GRANT USAGE ON SCHEMA {PLATFORM_SCHEMA} TO {app}, {group};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {PLATFORM_SCHEMA}
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {PLATFORM_SCHEMA}
    GRANT USAGE, SELECT ON SEQUENCES TO {app};
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def ensure_roles(database: Database) -> None:
    """Create the owner, runtime and tenant-group roles and the platform schema."""
    connection = await asyncpg.connect(to_libpq_url(database.owner_url))
    try:
        # Concurrent bootstraps (two processes starting at once) would race on CREATE ROLE.
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('ordersmith.bootstrap'))")
            await connection.execute(roles_script(database.settings))
    finally:
        await connection.close()


async def migrate_platform(database: Database) -> None:
    """Bring the platform schema to head (roles first)."""
    await ensure_roles(database)
    settings = database.settings
    roles = {
        "owner": settings.owner_role,
        "app": settings.app_role,
        "tenant_group": settings.tenant_group_role,
    }
    async with database.owner_connection() as connection:
        await PLATFORM_MIGRATIONS.upgrade_online(connection, roles=roles)
