"""A store's role appends outbox events in its own name only: PostgreSQL refuses any other."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from alembic import command
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import DBAPIError

from ordersmith.platform.bootstrap import PLATFORM_MIGRATIONS
from ordersmith.platform.database import Database
from ordersmith.platform.events import record_event
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.tenancy import TenantRecord, provision_tenant
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.consumers import TOPIC
from tests.support.services import new_slug


async def test_a_store_role_cannot_append_events_in_another_stores_name_or_the_platforms(
    database: Database, tenant: TenantRecord
) -> None:
    other = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug("b"), name="Shop B")
    forged = {other.id: uuid.uuid4(), None: uuid.uuid4()}
    for tenant_id, event_id in forged.items():
        with pytest.raises(DBAPIError) as refused:
            async with database.tenant_session(tenant.context) as session:
                await session.execute(
                    insert(OutboxEvent).values(
                        id=event_id, tenant_id=tenant_id, topic="order.placed", payload={}
                    )
                )
        assert refused.value.orig is not None
        assert isinstance(refused.value.orig.__cause__, asyncpg.InsufficientPrivilegeError)
        assert 'new row violates row-level security policy for table "outbox"' in str(refused.value)

    async with database.tenant_session(tenant.context) as session:
        own = await record_event(session, tenant.context, TOPIC, {})
    # The runtime role (platform sessions, the relay) still writes in any name and reads every row.
    async with database.platform_session() as session:
        platform_event = await record_event(session, None, TOPIC, {})
        rows = (
            await session.execute(
                select(OutboxEvent.id, OutboxEvent.tenant_id).where(
                    OutboxEvent.id.in_([own, platform_event, *forged.values()])
                )
            )
        ).all()
    assert sorted(rows, key=str) == sorted([(own, tenant.id), (platform_event, None)], key=str)


async def test_the_migration_down_lifts_the_outbox_row_security_and_up_restores_it(
    database: Database,
) -> None:
    def row_security(connection: Connection) -> tuple[bool, int, int]:
        enabled = connection.scalar(
            text("SELECT relrowsecurity FROM pg_class WHERE oid = 'platform.outbox'::regclass")
        )
        policies = connection.scalar(
            text("SELECT count(*) FROM pg_policies WHERE schemaname = 'platform' AND tablename = 'outbox'")
        )
        functions = connection.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'is_tenant_role'"))
        return bool(enabled), int(policies or 0), int(functions or 0)

    def down_and_up(connection: Connection) -> list[tuple[bool, int, int]]:
        settings = database.settings
        roles = {"app": settings.app_role, "tenant_group": settings.tenant_group_role}
        config = PLATFORM_MIGRATIONS.config(connection=connection, roles=roles)
        states = [row_security(connection)]
        command.downgrade(config, "0007_billing_event_order")
        states.append(row_security(connection))
        command.upgrade(config, "0008_outbox_row_security")
        states.append(row_security(connection))
        return states

    async with database.owner.connect() as connection:
        # Begun here, so Alembic runs inside it; rolled back, so nothing else sees the round trip.
        await connection.begin()
        try:
            states = await connection.run_sync(down_and_up)
        finally:
            await connection.rollback()
    assert states == [(True, 2, 1), (False, 0, 0), (True, 2, 1)]
