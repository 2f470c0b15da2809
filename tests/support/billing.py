"""Billing helpers for tests: the metering consumer, request counts flushed, billing on the fake Stripe.

`billing_fake` and `billing_client` are fixtures for the billing test modules. A module takes them
under the names its tests ask for, `fake = billing.billing_fake` and `stripe_client = billing.billing_client`:
pytest registers a fixture by the name it has in the test module, and a module's own `fake` overrides
the payments one of tests/conftest.py for that module only.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, func, select

from ordersmith.app import create_app
from ordersmith.billing import gateway
from ordersmith.billing.metering import CONSUMER_NAME, ORDER_PLACED
from ordersmith.billing.request_metering import RequestMeter
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount, StripeCatalogEntry, UsageEvent, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.events import Event, EventConsumer, consumers
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.plans import Meter
from ordersmith.platform.settings import BillingSettings, Settings
from ordersmith.platform.workers import deliver_event
from tests.support.fake_stripe import SECRET_KEY, FakeStripe, event, serve_fake_stripe, sign_webhook

WEBHOOK_SECRET = "whsec_test_0123456789"
WEBHOOK_PATH = "/api/v1/billing/stripe/webhook"


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
    for placed in await placed_events(database, tenant_id):
        ran += await deliver_event(database, consumer, placed)
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


@pytest.fixture
async def billing_fake(database: Database) -> AsyncIterator[FakeStripe]:
    """A new, empty fake Stripe, with billing (not payments) pointed at it for the test."""
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake, billing_with(stripe_settings(fake)):
        yield fake


@pytest.fixture
async def billing_client(settings: Settings, fake: FakeStripe) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, billing on the module's `fake`, behind an in-process HTTP client."""
    app = create_app(dataclasses.replace(settings, billing=stripe_settings(fake)))
    async with AsyncTestClient(app) as client:
        yield client


async def billing_account(database: Database, tenant_id: uuid.UUID) -> BillingAccount:
    """The store's billing account, which every store has from its sign-up."""
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant_id)
    assert account is not None
    return account


async def subscribed_account(database: Database, tenant_id: uuid.UUID) -> BillingAccount:
    """Put the store on Growth, a Stripe customer with a subscription; its billing account."""
    await change_plan(database, tenant_id, "growth", actor=SYSTEM)
    account = await billing_account(database, tenant_id)
    assert account.stripe_subscription_id is not None
    return account


def stripe_subscription(fake: FakeStripe, account: BillingAccount) -> dict[str, Any]:
    """A copy of the store's subscription as the fake Stripe holds it now."""
    return dict(fake.objects["subscription"][account.stripe_subscription_id or ""])


def stamped(body: dict[str, Any], created: int) -> dict[str, Any]:
    """The event as if Stripe had created it at `created` (seconds since the epoch)."""
    return {**body, "created": created}


def subscription_event(kind: str, subscription: dict[str, Any], status: str, created: int) -> dict[str, Any]:
    """`customer.subscription.<kind>` about `subscription` in `status`, as if Stripe made it at `created`."""
    return stamped(event(f"customer.subscription.{kind}", {**subscription, "status": status}), created)


async def send_billing_webhook(
    client: AsyncTestClient[Litestar], body: dict[str, Any], *, secret: str = WEBHOOK_SECRET, **signing: Any
) -> httpx.Response:
    """POST a Stripe event to our billing webhook, signed as Stripe signs it (with `secret`)."""
    payload = json.dumps(body).encode()
    return await client.post(
        WEBHOOK_PATH,
        content=payload,
        headers={
            "Stripe-Signature": sign_webhook(payload, secret, **signing),
            "Content-Type": "application/json",
        },
    )
