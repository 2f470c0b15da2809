"""Billing helpers for tests: the metering consumer, request counts flushed, billing on the fake Stripe."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, func, select

from ordersmith.billing import gateway
from ordersmith.billing.metering import CONSUMER_NAME, ORDER_PLACED
from ordersmith.billing.request_metering import RequestMeter
from ordersmith.platform.billing_models import StripeCatalogEntry, UsageEvent, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.events import Event, EventConsumer, consumers
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.plans import Meter
from ordersmith.platform.settings import BillingSettings
from ordersmith.platform.workers import deliver_event
from tests.support.fake_stripe import SECRET_KEY, FakeStripe

WEBHOOK_SECRET = "whsec_test_0123456789"


def metering_consumer() -> EventConsumer:
    """The registered consumer that meters placed orders."""
    return next(consumer for consumer in consumers.all() if consumer.name == CONSUMER_NAME)


async def placed_events(database: Database, tenant_id: uuid.UUID) -> list[Event]:
    """The tenant's `order.placed` events in the outbox, oldest first."""
    async with database.platform_session() as session:
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.tenant_id == tenant_id, OutboxEvent.topic == ORDER_PLACED)
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
            )
        ).all()
    return [Event(row.id, row.tenant_id, row.topic, row.payload, row.created_at) for row in rows]


async def meter_orders(database: Database, tenant_id: uuid.UUID) -> int:
    """Deliver the tenant's `order.placed` events to the metering consumer as a worker would; how many ran."""
    consumer = metering_consumer()
    ran = 0
    for event in await placed_events(database, tenant_id):
        ran += await deliver_event(database, consumer, event)
    return ran


async def usage_event_count(database: Database, tenant_id: uuid.UUID, meter: Meter = Meter.ORDERS) -> int:
    """The tenant's usage events of one meter (orders unless told: the app meters its requests too)."""
    async with database.platform_session() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(UsageEvent)
                .where(UsageEvent.tenant_id == tenant_id, UsageEvent.meter == meter.value)
            )
            or 0
        )


def flush_requests(client: AsyncTestClient[Litestar]) -> int:
    """Flush the app's API request counts now, on the app's own event loop; how many were added."""
    meter: RequestMeter = client.app.state.request_meter
    added: int = client.blocking_portal.call(meter.flush, client.app.state.database)
    return added


async def usage_total(database: Database, meter: Meter, tenant_id: uuid.UUID | None = None) -> int:
    """Units of `meter` kept in every hour so far, of one tenant or (None) of all of them."""
    query = select(func.coalesce(func.sum(UsageHour.quantity), 0)).where(UsageHour.meter == meter.value)
    if tenant_id is not None:
        query = query.where(UsageHour.tenant_id == tenant_id)
    async with database.platform_session() as session:
        return int(await session.scalar(query) or 0)


async def forget_stripe_catalog(database: Database) -> None:
    """Forget the Stripe products and prices made so far: each test's fake is a new, empty Stripe."""
    async with database.platform_session() as session:
        await session.execute(delete(StripeCatalogEntry))


def stripe_settings(fake: FakeStripe) -> BillingSettings:
    """Billing settings that talk to the fake."""
    return BillingSettings(
        stripe_api_key=SECRET_KEY,
        stripe_api_base=fake.base_url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        portal_return_url="https://shop.example.com/billing",
    )


@contextmanager
def billing_with(settings: BillingSettings) -> Iterator[BillingSettings]:
    """Bill with `settings` inside the block only."""
    gateway.configure(settings)
    try:
        yield settings
    finally:
        gateway.configure(None)
