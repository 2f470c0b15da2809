"""The bench's PostgreSQL: which server, a fresh database on it, and cleaning up after."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import asyncpg

from ordersmith.platform.database import to_libpq_url
from ordersmith.platform.embedded import start_embedded_postgres, with_database
from tests.support.services import REPO

BENCH_DATABASE = "ordersmith_bench"
# The order-placement ceiling (shared/bench/ceiling.py) replaces schemas and a
# platform.outbox in the database it is given: it gets one of its own.
CEILING_DATABASE = "ordersmith_ceiling"
# ceiling.py names its tenant roles (cluster-wide, like ours) bench_t_<n>.
_CEILING_ROLE = "bench_t_{}"
# Where the hand-written reference keeps its registry, beside `platform`.
REFERENCE_SCHEMA = "bench_ref"
_REGISTRIES = ("platform.tenants", f"{REFERENCE_SCHEMA}.tenants")
# DDL over thousands of schemas leaves dead catalog rows; with autovacuum slow or off they
# would make each run slower than the one before.
_CATALOGS = (
    "pg_class",
    "pg_attribute",
    "pg_index",
    "pg_depend",
    "pg_type",
    "pg_constraint",
    "pg_attrdef",
    "pg_namespace",
    "pg_default_acl",
    "pg_authid",
    "pg_auth_members",
    "pg_shdepend",
)
_REPORTED_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "wal_level",
    "full_page_writes",
    "shared_buffers",
    "autovacuum",
    "max_connections",
)


def server_url() -> tuple[str, str]:
    """The server to measure on, and where that choice came from."""
    for name in ("BENCH_DATABASE_URL", "TEST_DATABASE_URL"):
        url = os.environ.get(name)
        if url:
            return url, name
    return start_embedded_postgres(REPO / ".ordersmith" / "bench"), "embedded"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _tenant_roles(url: str) -> list[str]:
    # Roles are cluster-wide: the only record of the ones this database made is its registries.
    connection = await asyncpg.connect(to_libpq_url(url))
    try:
        roles: list[str] = []
        for registry in _REGISTRIES:
            if await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", registry):
                roles.extend(
                    row["db_role"] for row in await connection.fetch(f"SELECT db_role FROM {registry}")
                )
        return roles
    finally:
        await connection.close()


async def drop_bench_database(server: str) -> int:
    """Drop the bench database and the tenant roles it created; return how many roles went."""
    admin = await asyncpg.connect(to_libpq_url(server))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DATABASE):
            return 0
        roles = await _tenant_roles(with_database(server, BENCH_DATABASE))
        await admin.execute(f"DROP DATABASE {_quote(BENCH_DATABASE)} WITH (FORCE)")
        # One round trip per few hundred roles instead of one per role.
        for start in range(0, len(roles), 500):
            chunk = roles[start : start + 500]
            await admin.execute("".join(f"DROP ROLE IF EXISTS {_quote(role)};" for role in chunk))
        return len(roles)
    finally:
        await admin.close()


async def create_bench_database(server: str) -> str:
    """A fresh, empty bench database (any earlier one dropped first); return its URL."""
    await drop_bench_database(server)
    admin = await asyncpg.connect(to_libpq_url(server))
    try:
        await admin.execute(f"CREATE DATABASE {_quote(BENCH_DATABASE)}")
    finally:
        await admin.close()
    return with_database(server, BENCH_DATABASE)


async def create_ceiling_database(server: str) -> str:
    """A fresh database for the ceiling on the bench's server; return its URL."""
    admin = await asyncpg.connect(to_libpq_url(server))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quote(CEILING_DATABASE)} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {_quote(CEILING_DATABASE)}")
    finally:
        await admin.close()
    return with_database(server, CEILING_DATABASE)


async def drop_ceiling_database(server: str, tenants: int) -> int:
    """Drop the ceiling's database and the tenant roles it made; return how many roles went."""
    admin = await asyncpg.connect(to_libpq_url(server))
    dropped = 0
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quote(CEILING_DATABASE)} WITH (FORCE)")
        for number in range(1, tenants + 1):
            # A role another database still uses (someone else's ceiling) stays.
            with contextlib.suppress(asyncpg.DependentObjectsStillExistError):
                role = _CEILING_ROLE.format(number)
                if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                    await admin.execute(f"DROP ROLE {_quote(role)}")
                    dropped += 1
        return dropped
    finally:
        await admin.close()


class Admin:
    """A connection as the login user, for facts about the server and for settling it."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> Admin:
        """Connect to the bench database as the login user of its URL."""
        return cls(await asyncpg.connect(to_libpq_url(url)))

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close()

    async def facts(self) -> dict[str, Any]:
        """Server version and the settings that move these numbers."""
        version = await self._connection.fetchval("SELECT version()")
        rows = await self._connection.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            list(_REPORTED_SETTINGS),
        )
        settings = {row["name"]: row["setting"] + (row["unit"] or "") for row in rows}
        return {"version": version, "settings": settings}

    async def backend_pid(self) -> int:
        """The process id of this connection's backend (to find the server's processes)."""
        pid: int = await self._connection.fetchval("SELECT pg_backend_pid()")
        return pid

    async def settle(self, tables: list[str]) -> None:
        """Vacuum the registries and catalogs, analyze the registries, checkpoint: runs start alike."""
        await self._connection.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
        # Without the privilege PostgreSQL skips a catalog with a warning, which is fine.
        await self._connection.execute(f"VACUUM {', '.join('pg_catalog.' + name for name in _CATALOGS)}")
        # Not a superuser (nor pg_checkpoint): runs then start less alike, nothing worse.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await self._connection.execute("CHECKPOINT")
