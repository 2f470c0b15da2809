"""The hand-written reference: the same tenant work on raw asyncpg, and nothing around it.

It provisions and migrates tenant schemas exactly as the product must (a registry row and
its placement, a role, a schema, the rendered tenant DDL under a transaction-local
search_path, the seed row; the revision read from the schema before applying the
rendered upgrade), in as few round trips as that allows. Its registry is a copy of
`platform.tenants` in schema `bench_ref`, so the product's runs never see its tenants.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from alembic import command

from ordersmith.platform.database import to_libpq_url
from ordersmith.platform.schema_migrations import MigrationStream
from ordersmith.platform.settings import DatabaseSettings
from ordersmith.platform.tenancy import new_schema_name
from tests.bench.server import REFERENCE_SCHEMA

_Item = TypeVar("_Item")
_REGISTRY = f"{REFERENCE_SCHEMA}.tenants"
_PLACEMENTS = f"{REFERENCE_SCHEMA}.tenant_placements"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_downgrade(stream: MigrationStream, from_revision: str, to_revision: str) -> str:
    """SQL that takes a tenant schema back from one revision to an older one."""
    buffer = io.StringIO()
    config = stream.config()
    config.output_buffer = buffer
    command.downgrade(config, f"{from_revision}:{to_revision}", sql=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Tenant:
    id: uuid.UUID
    schema_name: str


class Reference:
    """A few raw asyncpg connections, logged in like the product's owner engine."""

    def __init__(self, connections: list[Any], settings: DatabaseSettings, create: MigrationStream) -> None:
        self._connections = connections
        self._settings = settings
        self._create_sql = create.render_upgrade(None)
        self._create_head = create.head()

    @classmethod
    async def connect(
        cls, url: str, settings: DatabaseSettings, create: MigrationStream, concurrency: int
    ) -> Reference:
        """Open `concurrency` connections that run as the owner role, as the product's do."""
        server_settings = {
            "role": settings.owner_role,
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": "ordersmith-bench-reference",
        }
        connections = [
            await asyncpg.connect(to_libpq_url(url), server_settings=server_settings)
            for _ in range(concurrency)
        ]
        return cls(connections, settings, create)

    async def close(self) -> None:
        """Close every connection."""
        for connection in self._connections:
            await connection.close()

    async def create_registry(self) -> None:
        """The reference's registry: the platform's tables, copied with their keys and indexes."""
        await self._connections[0].execute(f"""
CREATE SCHEMA {REFERENCE_SCHEMA};
CREATE TABLE {_REGISTRY} (LIKE platform.tenants INCLUDING ALL);
CREATE TABLE {_PLACEMENTS} (LIKE platform.tenant_placements INCLUDING ALL);
ALTER TABLE {_PLACEMENTS} ADD FOREIGN KEY (tenant_id) REFERENCES {_REGISTRY} (id) ON DELETE CASCADE;
""")

    def _provision_script(self, index: int, database_name: str) -> str:
        settings = self._settings
        tenant_id = str(uuid.uuid4())
        name = new_schema_name()
        schema = _quote(name)
        shop = _literal(f"Reference Shop {index}")
        return f"""BEGIN;
INSERT INTO {_REGISTRY} (id, slug, name, schema_name, db_role, plan, revision, migrated_at)
VALUES ('{tenant_id}', 'ref-{index:05d}', {shop}, '{name}', '{name}', 'trial', '{self._create_head}', now());
INSERT INTO {_PLACEMENTS} (tenant_id, cluster, database_name)
VALUES ('{tenant_id}', 'primary', {_literal(database_name)});
CREATE ROLE {schema} NOLOGIN IN ROLE {_quote(settings.tenant_group_role)};
GRANT {schema} TO {_quote(settings.app_role)};
CREATE SCHEMA {schema};
GRANT USAGE ON SCHEMA {schema} TO {schema};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {schema};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {schema};
SET LOCAL search_path = {schema};
{self._create_sql}
REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {schema};
INSERT INTO store_settings (id, display_name, default_currency, timezone) VALUES (1, {shop}, 'EUR', 'UTC');
COMMIT;"""

    async def _run(self, connection: Any, script: str) -> None:
        try:
            await connection.execute(script)
        except Exception:
            # A multi-statement query that fails leaves its explicit transaction open.
            await connection.execute("ROLLBACK")
            raise

    async def provision(self, index: int, database_name: str) -> None:
        """Provision one tenant in one round trip, on the first connection."""
        await self._run(self._connections[0], self._provision_script(index, database_name))

    async def provision_many(self, indexes: Iterable[int], database_name: str) -> None:
        """Provision tenants on every connection at once."""

        async def work(connection: Any, index: int) -> None:
            await self._run(connection, self._provision_script(index, database_name))

        await self._each(indexes, work)

    async def _tenants(self) -> list[_Tenant]:
        rows = await self._connections[0].fetch(
            f"SELECT id, schema_name FROM {_REGISTRY} ORDER BY created_at, slug"
        )
        return [_Tenant(row["id"], row["schema_name"]) for row in rows]

    async def migrate_all(self, stream: MigrationStream) -> dict[str, int]:
        """Bring every reference schema to the stream's head; count the outcomes."""
        head = stream.head()
        outcomes = {"migrated": 0, "current": 0}
        lock_timeout = f"{self._settings.migration_lock_timeout_ms}ms"

        async def work(connection: Any, tenant: _Tenant) -> None:
            schema = _quote(tenant.schema_name)
            await connection.execute(
                f"BEGIN; SET LOCAL lock_timeout = '{lock_timeout}'; SET LOCAL search_path = {schema}"
            )
            try:
                # The same text for every tenant: prepared once per connection, planned per search_path.
                current = await connection.fetchval("SELECT version_num FROM alembic_version")
            except Exception:
                await connection.execute("ROLLBACK")
                raise
            if current == head:
                await connection.execute("COMMIT")
                outcomes["current"] += 1
                return
            update = (
                f"UPDATE {_REGISTRY} SET revision = '{head}', migrated_at = now(), migration_error = NULL"
                f" WHERE id = '{tenant.id}';"
            )
            await self._run(connection, stream.render_upgrade(current) + update + "COMMIT;")
            outcomes["migrated"] += 1

        await self._each(await self._tenants(), work)
        return outcomes

    async def downgrade_all(self, stream: MigrationStream, to_revision: str) -> None:
        """Take every reference schema back to an older revision (set-up for a second run)."""
        script = render_downgrade(stream, stream.head(), to_revision)

        async def work(connection: Any, tenant: _Tenant) -> None:
            await self._run(
                connection,
                f"BEGIN; SET LOCAL search_path = {_quote(tenant.schema_name)};{script}"
                f"UPDATE {_REGISTRY} SET revision = '{to_revision}' WHERE id = '{tenant.id}'; COMMIT;",
            )

        await self._each(await self._tenants(), work)

    async def _each(self, items: Iterable[_Item], work: Callable[[Any, _Item], Awaitable[None]]) -> None:
        # One worker per connection pulling from a shared iterator: concurrency without a pool.
        pending = iter(items)

        async def worker(connection: Any) -> None:
            for item in pending:
                await work(connection, item)

        await asyncio.gather(*(worker(connection) for connection in self._connections))
