"""Metering: each successful order counted exactly once, per tenant and hour."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.billing.metering import last_month_usage, record_usage, usage_for_period
from ordersmith.platform.billing_models import UsageEvent, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.plans import Meter
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record
from ordersmith.tenants.orders.placement import place_order
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest
from tests.support.billing import meter_orders, placed_events, usage_event_count
from tests.support.orders import ADDRESS, Store, open_store

UTC = dt.UTC


async def _stocked_store(client: AsyncTestClient[Litestar]) -> Store:
    store = await open_store(client)
    await store.add_skus("MUG")
    await store.add_location("WH-1")
    await store.receive("MUG", "WH-1", 4)
    return store


async def test_n_placements_with_retries_failures_and_a_rollback_yield_exactly_n_usage_events(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await _stocked_store(client)
    tenant = await get_tenant_record(database, store.slug)
    first = await store.place(("MUG", 1), headers={"Idempotency-Key": "order-1"})
    # The client retries after a timeout: the same key answers the first order again.
    replay = await store.place(("MUG", 1), headers={"Idempotency-Key": "order-1"})
    assert replay["id"] == first["id"]
    await store.place(("MUG", 1))
    # Refused for want of stock: nothing placed, nothing counted.
    await store.place(("MUG", 50), expected=409)
    await store.place(("MUG", 1), headers={"Idempotency-Key": "order-3"})

    # A placement whose transaction rolls back after the order and its event were written.
    async def place_then_abandon() -> None:
        async with database.tenant_session(tenant.context) as session:
            request = OrderRequest(uuid.UUID(store.customer_id), [LineRequest("MUG", 1)], ADDRESS)
            await place_order(tenant.context, session, request, actor=SYSTEM)
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError, match="abandoned"):
        await place_then_abandon()

    assert len(await placed_events(database, tenant.id)) == 3
    assert await meter_orders(database, tenant.id) == 3
    # Every event delivered again (a worker died before acknowledging): nothing more counts.
    assert await meter_orders(database, tenant.id) == 0
    assert await usage_event_count(database, tenant.id) == 3

    async with database.platform_session() as session:
        events = (await session.scalars(select(UsageEvent).where(UsageEvent.tenant_id == tenant.id))).all()
        hours = (await session.scalars(select(UsageHour).where(UsageHour.tenant_id == tenant.id))).all()
    placed = await placed_events(database, tenant.id)
    assert {event.id for event in events} == {event.id for event in placed}
    assert {event.subject_id for event in events} == {event.payload["order_id"] for event in placed}
    assert {(event.meter, event.quantity, event.source) for event in events} == {
        ("orders", 1, "order.placed")
    }
    assert sum(hour.quantity for hour in hours) == 3


async def test_usage_is_summed_per_hour_and_period(database: Database, tenant: TenantRecord) -> None:
    moments = [
        dt.datetime(2026, 10, 31, 23, 59, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 0, 59, 59, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 1, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC),
    ]
    async with database.platform_session() as session:
        for moment in moments:
            assert await record_usage(
                session,
                usage_id=uuid.uuid4(),
                tenant_id=tenant.id,
                meter=Meter.ORDERS,
                occurred_at=moment,
                source="test",
                subject_id=None,
            )
    async with database.platform_session() as session:
        november = await usage_for_period(
            session, tenant.id, dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC)
        )
        last_month = await last_month_usage(session, tenant.id, now=dt.datetime(2026, 12, 15, tzinfo=UTC))
    assert november.totals == {Meter.ORDERS: 4}
    assert [(hour.hour, hour.quantity) for hour in november.hours] == [
        (dt.datetime(2026, 11, 1, 0, tzinfo=UTC), 2),
        (dt.datetime(2026, 11, 1, 1, tzinfo=UTC), 1),
        (dt.datetime(2026, 11, 30, 23, tzinfo=UTC), 1),
    ]
    assert last_month == {Meter.ORDERS: 4}


async def test_recording_the_same_usage_id_twice_counts_it_once(
    database: Database, tenant: TenantRecord
) -> None:
    usage_id = uuid.uuid4()
    moment = dt.datetime(2026, 9, 3, 10, 15, tzinfo=UTC)
    results = []
    for _ in range(2):
        async with database.platform_session() as session:
            results.append(
                await record_usage(
                    session,
                    usage_id=usage_id,
                    tenant_id=tenant.id,
                    meter=Meter.ORDERS,
                    occurred_at=moment,
                    source="test",
                    subject_id="x",
                )
            )
    assert results == [True, False]
    async with database.platform_session() as session:
        hour = await session.get(UsageHour, (tenant.id, "orders", dt.datetime(2026, 9, 3, 10, tzinfo=UTC)))
    assert hour is not None
    assert hour.quantity == 1
