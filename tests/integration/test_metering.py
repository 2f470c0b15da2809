"""Metering: each successful order counted exactly once, seats once per hour, per tenant and hour."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.billing.metering import Recorded, last_month_usage, record_usage, usage_for_period
from ordersmith.billing.reporting import meter_identifier, report_usage
from ordersmith.billing.request_metering import RequestBatch, hour_number, write_batch
from ordersmith.billing.seats import record_active_seats, seats_usage_id
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount, MeterReport, UsageEvent, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.plans import Meter
from ordersmith.platform.tenancy import TenantRecord, archive_tenant, get_tenant_record
from ordersmith.tenants.orders.placement import place_order
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest
from tests.support.billing import (
    billing_with,
    forget_stripe_catalog,
    meter_orders,
    placed_events,
    stripe_settings,
    usage_event_count,
    usage_total,
)
from tests.support.fake_stripe import FakeStripe, serve_fake_stripe
from tests.support.members import add_member
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
        # Orders only: the store's requests are metered too, and flushed every few seconds.
        events = (
            await session.scalars(
                select(UsageEvent).where(UsageEvent.tenant_id == tenant.id, UsageEvent.meter == "orders")
            )
        ).all()
        hours = (
            await session.scalars(
                select(UsageHour).where(UsageHour.tenant_id == tenant.id, UsageHour.meter == "orders")
            )
        ).all()
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
    assert november.totals == {Meter.ORDERS: 4, Meter.API_REQUESTS: 0, Meter.SEATS: 0}
    assert [(hour.hour, hour.quantity) for hour in november.hours] == [
        (dt.datetime(2026, 11, 1, 0, tzinfo=UTC), 2),
        (dt.datetime(2026, 11, 1, 1, tzinfo=UTC), 1),
        (dt.datetime(2026, 11, 30, 23, tzinfo=UTC), 1),
    ]
    # The plan comparison's figures: billed meters only.
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


async def test_the_seat_job_keeps_one_count_per_store_and_hour_and_a_period_shows_the_peak(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    leaving = await add_member(client, database, store.headers, "agent")
    await add_member(client, database, store.headers, "viewer")
    nine = dt.datetime(2026, 9, 7, 9, tzinfo=UTC)

    first = await record_active_seats(database, now=nine + dt.timedelta(minutes=5))
    # The same hour again (the next quarter's run, a second scheduler): nothing is written.
    again = await record_active_seats(database, now=nine + dt.timedelta(minutes=20))
    assert first.events >= 1
    assert again == Recorded(events=0, quantity=0)
    # A member leaves at 9:30: 9:xx keeps the count it has, 10:xx gets the new one.
    await store.call("PATCH", f"/api/v1/users/{leaving.user_id}", 200, json={"status": "deactivated"})
    await record_active_seats(database, now=nine + dt.timedelta(minutes=45))
    await record_active_seats(database, now=nine + dt.timedelta(hours=1, minutes=5))

    async with database.platform_session() as session:
        events = (
            await session.scalars(
                select(UsageEvent)
                .where(UsageEvent.tenant_id == tenant.id, UsageEvent.meter == "seats")
                .order_by(UsageEvent.occurred_at)
            )
        ).all()
        september = await usage_for_period(
            session, tenant.id, dt.datetime(2026, 9, 1, tzinfo=UTC), dt.datetime(2026, 10, 1, tzinfo=UTC)
        )
    assert [(event.id, event.quantity, event.source) for event in events] == [
        (seats_usage_id(tenant.id, nine), 3, "seats.snapshot"),
        (seats_usage_id(tenant.id, nine + dt.timedelta(hours=1)), 2, "seats.snapshot"),
    ]
    assert [(hour.hour, hour.meter, hour.quantity) for hour in september.hours] == [
        (nine, Meter.SEATS, 3),
        (nine + dt.timedelta(hours=1), Meter.SEATS, 2),
    ]
    # A gauge: the month's seats are its largest hour, not the 5 a sum would make.
    assert september.totals == {Meter.ORDERS: 0, Meter.API_REQUESTS: 0, Meter.SEATS: 3}


async def test_an_archived_store_has_no_seats_recorded(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    tenant = await archive_tenant(database, store.slug, actor=SYSTEM)
    await record_active_seats(database, now=dt.datetime(2026, 9, 8, 14, tzinfo=UTC))
    assert await usage_total(database, Meter.SEATS, tenant.id) == 0


@pytest.fixture
async def fake(database: Database) -> AsyncIterator[FakeStripe]:
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake, billing_with(stripe_settings(fake)):
        yield fake


async def test_only_orders_reach_stripe_and_requests_and_seats_stay_ours(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    ten = dt.datetime(2026, 11, 21, 10, tzinfo=UTC)
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
        assert account is not None
        account.metered_since = ten - dt.timedelta(minutes=30)
        customer = account.stripe_customer_id
        await record_usage(
            session,
            usage_id=uuid.uuid4(),
            tenant_id=tenant.id,
            meter=Meter.ORDERS,
            occurred_at=ten + dt.timedelta(minutes=5),
            source="test",
            subject_id=None,
        )
        hour = hour_number(ten.timestamp())
        await write_batch(session, RequestBatch(uuid.uuid4(), 1, {(tenant.id, hour): 900}))
    await record_active_seats(database, now=ten + dt.timedelta(minutes=10))

    await report_usage(database, now=ten + dt.timedelta(hours=1, minutes=5))

    sent = [
        event
        for event in fake.objects["billing.meter_event"].values()
        if event["payload"]["stripe_customer_id"] == customer
    ]
    assert [(event["identifier"], event["payload"]["value"]) for event in sent] == [
        (meter_identifier(tenant.id, "orders", ten, 1), "1")
    ]
    async with database.platform_session() as session:
        reports = (await session.scalars(select(MeterReport).where(MeterReport.tenant_id == tenant.id))).all()
    assert [(report.meter, report.quantity, report.status) for report in reports] == [("orders", 1, "sent")]
