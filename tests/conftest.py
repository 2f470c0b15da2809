"""Fixtures shared by every test: a real PostgreSQL database built by the migrations."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.app import create_app
from ordersmith.platform.bootstrap import migrate_platform
from ordersmith.platform.database import Database, to_libpq_url
from ordersmith.platform.embedded import start_embedded_postgres, with_database
from ordersmith.platform.settings import Settings, load_settings
from ordersmith.platform.tenancy import TenantRecord, provision_tenant
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.fake_stripe import FakeStripe, serve_fake_stripe
from tests.support.payments import stripe_at
from tests.support.services import REPO, new_slug, services_required


def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    if services_required():
        pytest.fail("ORDERSMITH_REQUIRE_SERVICES=1 but TEST_DATABASE_URL is not set")
    return start_embedded_postgres(REPO / ".ordersmith" / "test")


async def _drop_database(server_url: str, name: str) -> None:
    """Drop a test database and the tenant roles it created (roles are cluster-wide)."""
    admin = await asyncpg.connect(to_libpq_url(server_url))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        target = await asyncpg.connect(to_libpq_url(with_database(server_url, name)))
        try:
            roles = []
            if await target.fetchval("SELECT to_regclass('platform.tenants') IS NOT NULL"):
                roles = [row["db_role"] for row in await target.fetch("SELECT db_role FROM platform.tenants")]
        finally:
            await target.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        # A few hundred roles per run: one statement per hundred, not one each, is seconds faster.
        for start in range(0, len(roles), 100):
            names = ", ".join(f'"{role}"' for role in roles[start : start + 100])
            await admin.execute(f"DROP ROLE IF EXISTS {names}")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


@pytest.fixture(scope="session")
def database_name() -> str:
    return f"ordersmith_test_{os.getpid()}"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Every test request comes from one client address; the sign-up limit has tests of its own.
    environ = {"ORDERSMITH_ENV": "test", "DATABASE_URL": database_url, "SIGNUP_LIMIT_PER_HOUR": "100000"}
    return load_settings(environ)


@pytest.fixture(scope="session")
async def database_url(server_url: str, database_name: str) -> AsyncIterator[str]:
    await _drop_database(server_url, database_name)
    admin = await asyncpg.connect(to_libpq_url(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{database_name}"')
    finally:
        await admin.close()
    url = with_database(server_url, database_name)
    # Built by the migrations, never create_all: every test runs on the real schema.
    migrator = Database(load_settings({"ORDERSMITH_ENV": "test"}).database, url)
    try:
        await migrate_platform(migrator)
    finally:
        await migrator.dispose()
    yield url
    await _drop_database(server_url, database_name)


@pytest.fixture(scope="session")
async def database(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    database = Database(settings.database, database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def tenant(database: Database) -> TenantRecord:
    """A fresh tenant with its own schema and role."""
    return await provision_tenant(database, TENANT_SCHEMA, slug=new_slug(), name="Test Shop")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, started with the test settings, behind an in-process HTTP client."""
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def fake(settings: Settings) -> Iterator[FakeStripe]:
    """The local fake of Stripe's API, with payments' Stripe calls pointed at it.

    Vendor billing tests override it with one that points billing there instead.
    """
    with serve_fake_stripe() as fake, stripe_at(fake, settings.secret_key):
        yield fake
