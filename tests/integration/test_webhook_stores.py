"""The webhook sender's list of stores: who gets on it, who leaves it, and that the sender keeps to it."""

from __future__ import annotations

import datetime as dt
import uuid

from alembic import command
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, select, text, update

from ordersmith.platform import webhook_stores
from ordersmith.platform.bootstrap import PLATFORM_MIGRATIONS
from ordersmith.platform.database import Database
from ordersmith.platform.models import Tenant, WebhookStore
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record
from ordersmith.tenants.webhooks import sending
from tests.support.orders import Store, open_store
from tests.support.webhook_receiver import fan_out, serve_receiver

ENDPOINTS = "/api/v1/webhook-endpoints"


async def _store(client: AsyncTestClient[Litestar], database: Database) -> tuple[Store, TenantRecord]:
    store = await open_store(client)
    return store, await get_tenant_record(database, store.slug)


async def _marked_at(database: Database, tenant_id: uuid.UUID) -> dt.datetime | None:
    async with database.platform_session() as session:
        query = select(WebhookStore.marked_at).where(WebhookStore.tenant_id == tenant_id)
        marked: dt.datetime | None = await session.scalar(query)
        return marked


async def _age_mark(database: Database, tenant_id: uuid.UUID, age: dt.timedelta) -> None:
    async with database.platform_session() as session:
        await session.execute(
            update(WebhookStore)
            .where(WebhookStore.tenant_id == tenant_id)
            .values(marked_at=dt.datetime.now(dt.UTC) - age)
        )


async def test_a_store_is_marked_when_an_endpoint_is_made_or_left_active(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    assert await _marked_at(database, tenant.id) is None
    body = {"url": "https://erp.example.com/hooks", "topics": ["order.placed"], "is_active": False}
    created = await store.call("POST", ENDPOINTS, 201, json=body)
    # Switched off from the start: nothing to send, so not on the list.
    assert await _marked_at(database, tenant.id) is None

    path = f"{ENDPOINTS}/{created['endpoint']['id']}"
    await store.call("PATCH", path, 200, json={"is_active": True})
    switched_on = await _marked_at(database, tenant.id)
    assert switched_on is not None
    await store.call("PATCH", path, 200, json={"description": "ERP"})
    described = await _marked_at(database, tenant.id)
    assert described is not None
    assert described > switched_on
    # Switching it off leaves the mark: the sender takes it off when it is old enough.
    await store.call("PATCH", path, 200, json={"is_active": False})
    assert await _marked_at(database, tenant.id) == described


async def test_the_sender_unmarks_a_store_without_active_endpoints_only_once_the_mark_is_old(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    gone, gone_tenant = await _store(client, database)
    created = await gone.call(
        "POST", ENDPOINTS, 201, json={"url": "https://a.example.com/h", "topics": ["*"]}
    )
    deleted = await client.delete(f"{ENDPOINTS}/{created['endpoint']['id']}", headers=gone.headers)
    assert deleted.status_code == 204
    kept, kept_tenant = await _store(client, database)
    await kept.call("POST", ENDPOINTS, 201, json={"url": "https://b.example.com/h", "topics": ["*"]})
    just_under = webhook_stores.UNMARK_AFTER - dt.timedelta(minutes=1)
    await _age_mark(database, gone_tenant.id, just_under)
    await _age_mark(database, kept_tenant.id, webhook_stores.UNMARK_AFTER * 2)

    await sending.send_due(database)
    # Within the hour a transaction may still be adding an endpoint: the mark stays.
    assert await _marked_at(database, gone_tenant.id) is not None
    await _age_mark(database, gone_tenant.id, webhook_stores.UNMARK_AFTER + dt.timedelta(minutes=1))
    await sending.send_due(database)
    assert await _marked_at(database, gone_tenant.id) is None
    # An active endpoint keeps its store on the list, however old the mark.
    assert await _marked_at(database, kept_tenant.id) is not None


async def test_the_sender_looks_only_into_marked_stores(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        await store.call("POST", ENDPOINTS, 201, json={"url": receiver.url(), "topics": ["customer.created"]})
        await store.call(
            "POST", "/api/v1/customers", 201, json={"full_name": "Bo", "email": "bo@example.com"}
        )
        await fan_out(database, tenant)
        async with database.platform_session() as session:
            await session.execute(
                text("DELETE FROM platform.webhook_stores WHERE tenant_id = :id"), {"id": tenant.id}
            )
        await sending.send_due(database)
        assert receiver.requests == []
        await webhook_stores.mark(database, tenant.id)
        await sending.send_due(database)
        assert [request.json()["type"] for request in receiver.requests] == ["customer.created"]


async def test_the_migration_marks_every_store_there_is(database: Database, tenant: TenantRecord) -> None:
    """Stores with endpoints before the list existed must go on being sent to: all are marked."""

    def down_and_up(connection: Connection) -> None:
        config = PLATFORM_MIGRATIONS.config(connection=connection)
        command.downgrade(config, "0005_usage_billing")
        assert connection.scalar(text("SELECT to_regclass('platform.webhook_stores')")) is None
        command.upgrade(config, "0006_webhook_stores")

    async with database.owner.connect() as connection:
        # Begun here, so Alembic runs inside it; rolled back, so the other tests' marks stay.
        await connection.begin()
        try:
            await connection.run_sync(down_and_up)
            stores = set(await connection.scalars(select(Tenant.id)))
            marked = set(await connection.scalars(select(WebhookStore.tenant_id)))
        finally:
            await connection.rollback()
    assert tenant.id in stores
    assert marked == stores
