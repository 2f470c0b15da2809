"""The delivery log's purge: settled deliveries past their retention go with their attempts, nothing else."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record
from ordersmith.tenants.webhooks import retention, sending
from ordersmith.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt
from tests.support.orders import open_store
from tests.support.webhook_receiver import pump, serve_receiver

ENDPOINTS = "/api/v1/webhook-endpoints"
DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of one delivery and one tenant, so that every loop goes round more than once."""
    monkeypatch.setattr(retention, "PURGE_BATCH_SIZE", 1)
    monkeypatch.setattr(retention, "TENANT_BATCH_SIZE", 1)


def test_the_purge_is_scheduled_daily_beside_the_sender() -> None:
    assert [(job.name, job.every_seconds) for job in sending.JOBS] == [
        ("webhooks.deliver", 10),
        ("webhooks.purge", 86400),
    ]
    assert dt.timedelta(days=30) == retention.RETENTION


async def _store_with_deliveries(
    client: AsyncTestClient[Litestar], database: Database, endpoints: int, customers: int
) -> tuple[TenantRecord, list[uuid.UUID]]:
    """A store whose endpoints each got every customer.created, delivered.

    Its deliveries are returned by endpoint, then oldest first.
    """
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    with serve_receiver() as receiver:
        for number in range(endpoints):
            await store.call(
                "POST",
                ENDPOINTS,
                201,
                json={"url": receiver.url(f"/{number}"), "topics": ["customer.created"]},
            )
        for number in range(customers):
            await store.call(
                "POST", "/api/v1/customers", 201, json={"full_name": "Bo", "email": f"bo{number}@example.com"}
            )
        assert await pump(database, tenant) == endpoints * customers
    async with database.tenant_session(tenant.context) as session:
        ids = await session.scalars(
            select(WebhookDelivery.id).order_by(WebhookDelivery.endpoint_id, WebhookDelivery.created_at)
        )
        return tenant, list(ids)


async def _set(
    database: Database,
    tenant: TenantRecord,
    delivery_id: uuid.UUID,
    status: str,
    created_ago: dt.timedelta,
    updated_ago: dt.timedelta,
) -> None:
    now = dt.datetime.now(dt.UTC)
    async with database.tenant_session(tenant.context) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status=status, created_at=now - created_ago, updated_at=now - updated_ago)
        )


async def _left(database: Database, tenant: TenantRecord) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The deliveries left, and the deliveries that attempts are left for."""
    async with database.tenant_session(tenant.context) as session:
        deliveries = set(await session.scalars(select(WebhookDelivery.id)))
        attempted = set(await session.scalars(select(WebhookDeliveryAttempt.delivery_id).distinct()))
    return deliveries, attempted


async def test_settled_deliveries_past_the_retention_go_with_their_attempts_and_nothing_else(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    tenant, (succeeded_old, failed_old, pending_old, *others) = await _store_with_deliveries(
        client, database, endpoints=2, customers=3
    )
    succeeded_old_too, replayed_lately, settled_lately = others
    await _set(database, tenant, succeeded_old, "succeeded", 31 * DAY, 31 * DAY)
    await _set(database, tenant, failed_old, "failed", 31 * DAY, 31 * DAY)
    # Still owed, however old: never purged.
    await _set(database, tenant, pending_old, "pending", 40 * DAY, 40 * DAY)
    await _set(database, tenant, succeeded_old_too, "succeeded", 31 * DAY, 31 * DAY)
    # Made long ago but replayed yesterday: its log is fresh.
    await _set(database, tenant, replayed_lately, "succeeded", 31 * DAY, DAY)
    await _set(database, tenant, settled_lately, "succeeded", 29 * DAY, 29 * DAY)

    assert await retention.purge_store(database, tenant.context) == 3
    kept = {pending_old, replayed_lately, settled_lately}
    assert await _left(database, tenant) == (kept, kept)
    assert await retention.purge_store(database, tenant.context) == 0
    # Two days on, the one settled 29 days ago is past its retention too.
    later = dt.datetime.now(dt.UTC) + 2 * DAY
    assert await retention.purge_store(database, tenant.context, now=later) == 1
    assert await _left(database, tenant) == (kept - {settled_lately}, kept - {settled_lately})


async def test_the_job_purges_every_active_store(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    stores = [await _store_with_deliveries(client, database, endpoints=1, customers=2) for _ in range(2)]
    for tenant, (old, _recent) in stores:
        await _set(database, tenant, old, "succeeded", 31 * DAY, 31 * DAY)
    assert await retention.purge_deliveries(database) == 2
    for tenant, (_old, recent) in stores:
        assert await _left(database, tenant) == ({recent}, {recent})
