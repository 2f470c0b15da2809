"""Engines, sessions and the tenant transaction.

Two engines reach the same database. The *runtime* engine runs as `<prefix>_app`, which
owns nothing and may only switch into tenant roles; the *owner* engine runs as
`<prefix>_owner`, which owns the schemas and runs migrations and provisioning. Both set
their role in the connection's start-up parameters, so a pooled connection can never
carry a tenant role from one transaction to the next (tenant roles are `SET LOCAL`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.util import greenlet_spawn

from ordersmith.platform.settings import DatabaseSettings

PLATFORM_SCHEMA = "platform"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Tenant tables are declared without a schema: SQL names them unqualified and the
# transaction's search_path routes them to the tenant's schema. So every tenant shares
# one SQL text per statement (one prepared statement per connection, whatever the
# number of tenants), and no SQL names a tenant schema by string. Both settings last
# until the transaction ends; the role is what keeps tenants apart: PostgreSQL refuses
# another tenant's schema to it, whatever the search_path says.
_ENTER_TENANT = text("SELECT set_config('role', :role, true), set_config('search_path', :schema, true)")

_OWNER_TIMEOUTS = text(
    "SELECT set_config('statement_timeout', :statement, true), set_config('lock_timeout', :lock, true)"
)

# The driver connection under a pooled SQLAlchemy connection (asyncpg's own).
Driver: TypeAlias = asyncpg.Connection
# Prepared statements asyncpg keeps per connection (LRU), and how long an unused one
# lives. The hot statements are per tenant schema (driver_sql.py): this holds them for
# a few hundred busy tenants, and a quiet tenant's plans are freed after five minutes.
DRIVER_STATEMENT_CACHE = 1024
DRIVER_STATEMENT_LIFETIME_S = 300


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _enter_tenant_script(tenant: TenantContext) -> str:
    """BEGIN and the tenant's role, as one simple query (one round trip).

    No search_path: every statement on the driver names its schema (driver_sql.py). One
    that forgot still finds only the tenant's own tables: the default path starts with
    "$user", and the tenant's schema is named like its role (ADR 0001).

    Generic plans: a tenant transaction on the driver runs the same few statements over
    and over, and their custom plans would be no better. Those statements find rows by
    key; planned without their parameters, from a small store's statistics, they would
    scan and hash whole tables, so scans and hash or merge joins are ruled out (ADR 0010).
    """
    return (
        f"BEGIN; SET LOCAL ROLE {_quote(tenant.db_role)}; "
        "SET LOCAL plan_cache_mode TO force_generic_plan; SET LOCAL enable_seqscan TO off; "
        "SET LOCAL enable_hashjoin TO off; SET LOCAL enable_mergejoin TO off"
    )


def make_metadata(schema: str | None) -> MetaData:
    """Metadata with the project's constraint naming convention (None: tenant tables)."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


@dataclass(frozen=True)
class TenantContext:
    """Who a tenant transaction is for: enough to route it, nothing more."""

    tenant_id: uuid.UUID
    slug: str
    schema_name: str
    db_role: str
    cluster: str = "primary"


def to_asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"only PostgreSQL is supported, got {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def to_libpq_url(url: str) -> str:
    """The same URL in the plain form asyncpg.connect and psql understand."""
    return make_url(to_asyncpg_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def runtime_url_for(url: str, app_role: str) -> str:
    """The same server and database, logging in as the runtime role (no password)."""
    return (
        make_url(to_asyncpg_url(url))
        .set(username=app_role, password=None)
        .render_as_string(hide_password=False)
    )


class Database:
    """The runtime and owner engines for one PostgreSQL database."""

    def __init__(self, settings: DatabaseSettings, url: str, owner_url: str | None = None) -> None:
        self.settings = settings
        if owner_url is None:
            # One privileged URL (development, tests, CI): own with it, and run the app as
            # its own login so that PostgreSQL, not the app, decides what it may do.
            self.owner_url = to_asyncpg_url(url)
            self.url = runtime_url_for(url, settings.app_role)
        else:
            self.owner_url = to_asyncpg_url(owner_url)
            self.url = to_asyncpg_url(url)
        self.runtime = self._engine(self.url, settings.app_role)
        # Made once: deriving an engine costs more than the read it serves.
        self._reader = self.runtime.execution_options(isolation_level="AUTOCOMMIT")
        self._owner_pool_size = settings.migration_concurrency or settings.pool_size
        self.owner = self._engine(self.owner_url, settings.owner_role, pool_size=self._owner_pool_size)

    def _engine(self, url: str, role: str, pool_size: int | None = None) -> AsyncEngine:
        server_settings = {
            "role": role,
            "statement_timeout": str(self.settings.statement_timeout_ms),
            "lock_timeout": str(self.settings.lock_timeout_ms),
            "application_name": "ordersmith",
        }
        return create_async_engine(
            url,
            pool_size=pool_size or self.settings.pool_size,
            max_overflow=self.settings.max_overflow,
            pool_recycle=self.settings.pool_recycle_seconds,
            pool_timeout=self.settings.pool_timeout_seconds,
            pool_pre_ping=False,
            connect_args={
                "server_settings": server_settings,
                "statement_cache_size": DRIVER_STATEMENT_CACHE,
                "max_cached_statement_lifetime": DRIVER_STATEMENT_LIFETIME_S,
                # Tenant SQL is the same text for every tenant: the statements of all
                # rooms fit, with room to spare.
                "prepared_statement_cache_size": 1000,
            },
        )

    def clone(self) -> Database:
        """The same database with pools of its own, for another event loop."""
        return Database(self.settings, self.url, self.owner_url)

    async def ping(self) -> None:
        """One round trip as the runtime role; raises if PostgreSQL does not answer."""
        async with self.runtime.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.runtime.dispose()
        await self.owner.dispose()

    @asynccontextmanager
    async def platform_session(self) -> AsyncIterator[AsyncSession]:
        """A runtime session on the platform schema; commits when the block succeeds."""
        async with AsyncSession(self.runtime, expire_on_commit=False) as session, session.begin():
            yield session

    @asynccontextmanager
    async def platform_reader(self) -> AsyncIterator[AsyncSession]:
        """A runtime session for single reads of the platform schema, without a transaction.

        Each statement is one round trip (no BEGIN/COMMIT): for lookups on every request,
        such as resolving the caller's credential. Anything that writes uses
        `platform_session`.
        """
        async with AsyncSession(self._reader, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def tenant_session(self, tenant: TenantContext) -> AsyncIterator[AsyncSession]:
        """A transaction inside one tenant's schema, running as that tenant's role.

        Commits when the block succeeds, rolls back otherwise. PostgreSQL refuses a
        statement that names another tenant's schema; a statement that switches role
        itself is not stopped (ADR 0001, Limits).
        """
        async with AsyncSession(self.runtime, expire_on_commit=False) as session, session.begin():
            await session.execute(_ENTER_TENANT, {"role": tenant.db_role, "schema": tenant.schema_name})
            yield session

    @asynccontextmanager
    async def _pooled_driver(self) -> AsyncIterator[tuple[Driver, Any]]:
        """A runtime connection straight from the pool: the asyncpg connection and its pool entry.

        Half the cost of `runtime.connect()` (no engine-level connection object around it),
        for the driver paths taken on every request. The pool's own checkin and
        invalidation are synchronous SQLAlchemy code that awaits inside: run in a greenlet.
        """
        pooled: Any = await self.runtime.raw_connection()
        try:
            yield pooled.driver_connection, pooled
        finally:
            await greenlet_spawn(pooled.close)

    @asynccontextmanager
    async def platform_driver(self) -> AsyncIterator[Driver]:
        """A pooled runtime connection's asyncpg connection, outside any transaction.

        For single platform reads on every request (the caller's API key): each statement
        is one round trip, with no SQLAlchemy session around it.
        """
        async with self._pooled_driver() as (driver, _):
            yield driver

    @asynccontextmanager
    async def tenant_driver(self, tenant: TenantContext) -> AsyncIterator[Driver]:
        """A tenant transaction on the bare asyncpg connection, for the hottest path (ADR 0010).

        The same guarantees as `tenant_session` (the tenant's role, commit on success,
        rollback otherwise) in two round trips of overhead instead of three, and without
        SQLAlchemy's session. A connection whose rollback fails is dropped, not pooled.
        """
        async with self._pooled_driver() as (driver, pooled):
            try:
                await driver.execute(_enter_tenant_script(tenant))
                yield driver
                await driver.execute("COMMIT")
            except BaseException:
                # After a failed COMMIT there is nothing left to roll back; PostgreSQL only warns.
                try:
                    await driver.execute("ROLLBACK")
                except BaseException:
                    await greenlet_spawn(pooled.invalidate)
                raise

    @property
    def owner_pool_capacity(self) -> int | None:
        """Owner connections that can be open at once (None: no limit, DATABASE_MAX_OVERFLOW=-1)."""
        if self.settings.max_overflow < 0:
            return None
        return self._owner_pool_size + self.settings.max_overflow

    @asynccontextmanager
    async def owner_connection(self, *, lock_timeout_ms: int | None = None) -> AsyncIterator[AsyncConnection]:
        """A transaction as the schema owner, for migrations and provisioning.

        Its statements run under MIGRATION_STATEMENT_TIMEOUT_MS, not the requests' statement
        timeout: DDL on a big store (an index build) may take minutes, and a revision that
        always times out could never be applied. `lock_timeout_ms` replaces the requests'
        lock timeout for this transaction (0: wait as long as it takes).
        """
        lock_timeout = self.settings.lock_timeout_ms if lock_timeout_ms is None else lock_timeout_ms
        async with self.owner.begin() as connection:
            await connection.execute(
                _OWNER_TIMEOUTS,
                {
                    "statement": f"{self.settings.migration_statement_timeout_ms}ms",
                    "lock": f"{lock_timeout}ms",
                },
            )
            yield connection


async def driver_of(session: AsyncSession) -> Driver:
    """The asyncpg connection under a session's transaction (already begun), for driver_sql statements."""
    connection = await session.connection()
    # The adapter opens its transaction lazily; a tenant session's first statement opened it.
    raw: Any = await connection.get_raw_connection()
    driver: Driver = raw.driver_connection
    return driver


async def run_script(connection: AsyncConnection, script: str) -> None:
    """Send several SQL statements in one round trip, inside the connection's transaction."""
    # The adapter opens its transaction lazily; make sure it exists before going raw.
    await connection.execute(text("SELECT 1"))
    raw = await connection.get_raw_connection()
    await raw.driver_connection.execute(script)  # type: ignore[union-attr]
