"""API requests metered per store and hour: counted in memory, flushed in batches, never twice."""

from __future__ import annotations

import datetime as dt
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.app import create_app
from ordersmith.billing.metering import Recorded
from ordersmith.billing.request_metering import RequestBatch, RequestMeter, hour_number, write_batch
from ordersmith.platform.billing_models import UsageEvent, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.plans import Meter
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record
from tests.support.billing import flush_requests, usage_total
from tests.support.order_actions import api_key_headers
from tests.support.orders import Store, open_store

UTC = dt.UTC
REQUESTS = Meter.API_REQUESTS


async def _tenant_id(database: Database, store: Store) -> uuid.UUID:
    return (await get_tenant_record(database, store.slug)).id


async def test_each_request_of_a_stores_user_and_key_counts_once_after_a_flush(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    key = await api_key_headers(store)
    tenant_id = await _tenant_id(database, store)
    flush_requests(client)
    before = await usage_total(database, REQUESTS, tenant_id)

    for _ in range(3):
        await store.call("GET", "/api/v1/orders", 200)
    for _ in range(4):
        await store.call("GET", "/api/v1/orders", 200, headers=key)
    # Authenticated, then refused for a scope the key lacks: still a request of the store.
    await store.call("GET", "/api/v1/billing/usage", 403, headers=key)
    flush_requests(client)

    assert await usage_total(database, REQUESTS, tenant_id) == before + 8
    # Nothing left to write: a second flush adds nothing.
    assert flush_requests(client) == 0
    assert await usage_total(database, REQUESTS, tenant_id) == before + 8
    async with database.platform_session() as session:
        events = (
            await session.scalars(
                select(UsageEvent).where(
                    UsageEvent.tenant_id == tenant_id, UsageEvent.meter == REQUESTS.value
                )
            )
        ).all()
    instance = client.app.state.request_meter.instance_id.hex
    assert {event.source for event in events} == {"api.requests"}
    assert all((event.subject_id or "").startswith(f"{instance}:") for event in events)
    assert sum(event.quantity for event in events) == before + 8


async def test_a_stores_requests_are_counted_in_its_own_usage_only(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    shop_a, shop_b = await open_store(client), await open_store(client)
    tenant_a, tenant_b = await _tenant_id(database, shop_a), await _tenant_id(database, shop_b)
    flush_requests(client)
    before_a = await usage_total(database, REQUESTS, tenant_a)
    before_b = await usage_total(database, REQUESTS, tenant_b)

    for _ in range(2):
        await shop_a.call("GET", "/api/v1/orders", 200)
    for _ in range(5):
        await shop_b.call("GET", "/api/v1/orders", 200)
    flush_requests(client)

    assert await usage_total(database, REQUESTS, tenant_a) == before_a + 2
    assert await usage_total(database, REQUESTS, tenant_b) == before_b + 5


async def test_public_and_unauthenticated_requests_are_not_counted(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    flush_requests(client)
    before = await usage_total(database, REQUESTS)

    assert (await client.get("/healthz")).status_code == 200
    availability = await client.get("/api/v1/signup/slug-availability", params={"slug": "free-shop"})
    assert availability.status_code == 200
    assert (await client.get("/api/v1/orders")).status_code == 401
    for credential in (
        "osk_nope_secret",
        "not-a-token",
        store.headers["Authorization"][len("Bearer ") :] + "x",
    ):
        response = await client.get("/api/v1/orders", headers={"Authorization": f"Bearer {credential}"})
        assert response.status_code == 401

    assert flush_requests(client) == 0
    assert await usage_total(database, REQUESTS) == before


async def test_a_batch_whose_commit_was_in_doubt_is_retried_as_it_was_and_adds_nothing(
    settings: Settings, database: Database, tenant: TenantRecord
) -> None:
    meter = RequestMeter()
    for _ in range(5):
        meter.count(tenant.id)
    # PostgreSQL unreachable: nothing written, the counts sealed into a batch kept for a retry.
    unreachable = Database(settings.database, "postgresql://postgres@127.0.0.1:1/postgres")
    try:
        assert await meter.flush(unreachable) == 0
    finally:
        await unreachable.dispose()
    batch = meter.pending
    assert batch is not None
    assert (batch.sequence, batch.total, meter.unflushed) == (1, 5, 5)

    # The batch did reach the database (a commit whose answer was lost), yet it is still pending here.
    async with database.platform_session() as session:
        assert await write_batch(session, batch) == Recorded(events=1, quantity=5)
    meter.count(tenant.id)
    # The retry repeats the batch's ids and adds nothing; the request counted since is the next batch.
    assert await meter.flush(database) == 1
    assert (meter.pending, meter.unflushed) == (None, 0)
    assert await usage_total(database, REQUESTS, tenant.id) == 6
    async with database.platform_session() as session:
        events = (
            await session.scalars(
                select(UsageEvent).where(UsageEvent.tenant_id == tenant.id).order_by(UsageEvent.quantity)
            )
        ).all()
    assert [(event.subject_id, event.quantity) for event in events] == [
        (f"{meter.instance_id.hex}:2", 1),
        (f"{meter.instance_id.hex}:1", 5),
    ]


async def test_a_batch_is_kept_per_hour_and_skips_a_store_dropped_since(
    database: Database, tenant: TenantRecord
) -> None:
    ten = dt.datetime(2026, 10, 5, 10, tzinfo=UTC)
    hour = hour_number(ten.timestamp())
    batch = RequestBatch(
        uuid.uuid4(), 1, {(tenant.id, hour): 2, (tenant.id, hour + 1): 3, (uuid.uuid4(), hour): 7}
    )
    for expected in (Recorded(events=2, quantity=5), Recorded(events=0, quantity=0)):
        async with database.platform_session() as session:
            assert await write_batch(session, batch) == expected
    async with database.platform_session() as session:
        hours = (
            await session.execute(
                select(UsageHour.hour, UsageHour.quantity)
                .where(UsageHour.tenant_id == tenant.id, UsageHour.meter == REQUESTS.value)
                .order_by(UsageHour.hour)
            )
        ).all()
    assert [tuple(row) for row in hours] == [(ten, 2), (ten + dt.timedelta(hours=1), 3)]


async def test_shutting_the_app_down_flushes_what_it_counted(settings: Settings, database: Database) -> None:
    async with AsyncTestClient(create_app(settings)) as client:
        store = await open_store(client)
        tenant_id = await _tenant_id(database, store)
        flush_requests(client)
        before = await usage_total(database, REQUESTS, tenant_id)
        for _ in range(3):
            await store.call("GET", "/api/v1/orders", 200)
    # No flush asked for: the app's shutdown wrote the three requests.
    assert await usage_total(database, REQUESTS, tenant_id) == before + 3
