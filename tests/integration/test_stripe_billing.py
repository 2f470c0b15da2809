"""Stripe sync against the local fake with the real SDK: customers, subscriptions, hourly meter events."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import stripe
from sqlalchemy import select

from ordersmith.billing import lifecycle
from ordersmith.billing.gateway import BillingProviderError
from ordersmith.billing.metering import hour_of, record_usage
from ordersmith.billing.reporting import meter_identifier, report_usage
from ordersmith.billing.subscriptions import change_plan
from ordersmith.billing.webhooks import handle_webhook
from ordersmith.platform.billing_models import BillingAccount, MeterReport, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.models import Tenant
from ordersmith.platform.plans import Meter
from ordersmith.platform.settings import SettingsError, load_settings
from ordersmith.platform.tenancy import TenantRecord, provision_tenant
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support import billing
from tests.support.billing import WEBHOOK_SECRET, billing_account, stripe_settings
from tests.support.fake_stripe import FakeStripe, event, sign_webhook
from tests.support.fake_stripe.billing import metered_usage
from tests.support.services import new_slug

UTC = dt.UTC
EVENT_NAME = "ordersmith_orders"


# Billing on a new fake Stripe: this `fake` overrides the payments one of tests/conftest.py.
fake = billing.billing_fake


async def _growth_made_at_stripe_but_not_recorded(
    database: Database, tenant: TenantRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Choose Growth: Stripe makes the subscription, and then our record of it is lost."""

    async def lost(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the database went away after Stripe answered")

    monkeypatch.setattr(lifecycle, "plan_changed", lost)
    with pytest.raises(ConnectionError):
        await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    monkeypatch.undo()


async def _orders_at(database: Database, tenant: TenantRecord, *moments: dt.datetime) -> None:
    async with database.platform_session() as session:
        for moment in moments:
            await record_usage(
                session,
                usage_id=uuid.uuid4(),
                tenant_id=tenant.id,
                meter=Meter.ORDERS,
                occurred_at=moment,
                source="test",
                subject_id=None,
            )


async def _subscribe(
    database: Database, tenant: TenantRecord, plan: str, since: dt.datetime
) -> BillingAccount:
    await change_plan(database, tenant.id, plan, actor=SYSTEM)
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
        assert account is not None
        # Usage counts from the subscription's start; the tests place it before their hours.
        account.metered_since = since
    return await billing_account(database, tenant.id)


async def test_the_first_paid_plan_creates_a_customer_and_a_subscription_with_a_metered_price(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)

    account = await billing_account(database, tenant.id)
    customer = fake.objects["customer"][account.stripe_customer_id or ""]
    assert customer["metadata"] == {"tenant_id": str(tenant.id), "slug": tenant.slug}
    subscription = fake.objects["subscription"][account.stripe_subscription_id or ""]
    assert (subscription["customer"], subscription["status"]) == (customer["id"], "active")
    prices = [item["price"] for item in subscription["items"]["data"]]
    assert [(price["unit_amount"], price["recurring"].get("usage_type")) for price in prices] == [
        (9_900, None),
        (None, "metered"),
    ]
    metered = prices[1]
    # Growth includes 3,000 orders, then 5¢ to 5,000 over, 4¢ to 20,000 over, then 3¢.
    assert metered["tiers"] == [
        {"up_to": "3000", "unit_amount": "0"},
        {"up_to": "8000", "unit_amount": "5"},
        {"up_to": "23000", "unit_amount": "4"},
        {"up_to": "inf", "unit_amount": "3"},
    ]
    meter = fake.objects["billing.meter"][metered["recurring"]["meter"]]
    assert (meter["event_name"], meter["event_time_window"]) == (EVENT_NAME, "hour")
    assert (account.plan, account.subscription_status) == ("growth", "active")
    async with database.platform_session() as session:
        assert await session.scalar(select(Tenant.plan).where(Tenant.id == tenant.id)) == "growth"
    # Every POST carried an idempotency key.
    assert all(request.idempotency_key for request in fake.requests if request.method == "POST")


async def test_changing_plan_swaps_both_prices_on_the_same_subscription_with_prorations(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    await change_plan(database, tenant.id, "starter", actor=SYSTEM)
    first = await billing_account(database, tenant.id)
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    second = await billing_account(database, tenant.id)

    assert second.stripe_subscription_id == first.stripe_subscription_id
    assert len(fake.objects["subscription"]) == 1
    assert len(fake.objects["customer"]) == 1
    subscription = fake.objects["subscription"][second.stripe_subscription_id or ""]
    assert subscription["last_proration_behavior"] == "create_prorations"
    assert [item["price"]["metadata"] for item in subscription["items"]["data"]] == [
        {"plan": "growth", "kind": "base"},
        {"plan": "growth", "kind": "orders"},
    ]
    assert second.plan == "growth"
    # The catalog is made once: a second tenant on growth reuses the same products and prices.
    prices_before = len(fake.objects["price"])
    other = await _provision(database)
    await change_plan(database, other.id, "growth", actor=SYSTEM)
    assert len(fake.objects["price"]) == prices_before
    assert len(fake.objects["billing.meter"]) == 1


async def test_a_subscription_stripe_made_but_we_did_not_record_is_not_made_again_for_another_plan(
    fake: FakeStripe, database: Database, tenant: TenantRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _growth_made_at_stripe_but_not_recorded(database, tenant, monkeypatch)
    assert (await billing_account(database, tenant.id)).stripe_subscription_id is None
    # Choosing another plan next reaches the same first subscription, which Stripe will not
    # make again with other prices.
    with pytest.raises(BillingProviderError):
        await change_plan(database, tenant.id, "enterprise", actor=SYSTEM)
    assert len(fake.objects["subscription"]) == 1
    # The first choice again gets Stripe's first answer, and is recorded.
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    account = await billing_account(database, tenant.id)
    assert (list(fake.objects["subscription"]), account.plan) == ([account.stripe_subscription_id], "growth")


async def test_orders_of_a_subscription_recorded_from_its_created_webhook_are_reported_to_stripe(
    fake: FakeStripe, database: Database, tenant: TenantRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _growth_made_at_stripe_but_not_recorded(database, tenant, monkeypatch)
    (subscription,) = fake.objects["subscription"].values()
    # Its `customer.subscription.created` webhook brings it in (the documented way back).
    payload = json.dumps(event("customer.subscription.created", dict(subscription))).encode()
    settings = stripe_settings(fake)
    assert (
        await handle_webhook(database, settings, payload, sign_webhook(payload, WEBHOOK_SECRET)) == "applied"
    )
    account = await billing_account(database, tenant.id)
    async with database.platform_session() as session:
        plan = await session.scalar(select(Tenant.plan).where(Tenant.id == tenant.id))
    # Its orders count from the moment Stripe made it, as if `change_plan` had recorded it.
    assert (account.stripe_subscription_id, plan, account.metered_since) == (
        subscription["id"],
        "growth",
        dt.datetime.fromtimestamp(subscription["created"], UTC),
    )

    # Seven orders in the hour after the subscription began; that hour has closed.
    now = dt.datetime.now(UTC) + dt.timedelta(hours=2)
    async with database.platform_session() as session:
        session.add(
            UsageHour(
                tenant_id=tenant.id, meter="orders", hour=hour_of(now) - dt.timedelta(hours=1), quantity=7
            )
        )
    await report_usage(database, now=now)

    assert metered_usage(fake, account.stripe_customer_id or "", EVENT_NAME) == 7


async def test_a_subscription_stripe_ended_before_telling_us_is_replaced_by_the_next_plan_choice(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    old = (await billing_account(database, tenant.id)).stripe_subscription_id or ""
    # Its first invoice was never paid: Stripe ended it, and its webhook has not reached us yet.
    fake.objects["subscription"][old]["status"] = "incomplete_expired"

    await change_plan(database, tenant.id, "enterprise", actor=SYSTEM)

    account = await billing_account(database, tenant.id)
    assert account.stripe_subscription_id != old
    assert (account.plan, account.subscription_status) == ("enterprise", "active")
    new = fake.objects["subscription"][account.stripe_subscription_id or ""]
    assert [item["price"]["metadata"] for item in new["items"]["data"]] == [
        {"plan": "enterprise", "kind": "base"},
        {"plan": "enterprise", "kind": "orders"},
    ]
    # Stripe was never asked to change the ended one.
    assert fake.requests_to("POST", f"/v1/subscriptions/{old}") == []


async def _provision(database: Database) -> TenantRecord:
    return await provision_tenant(database, TENANT_SCHEMA, slug=new_slug(), name="Other Shop")


async def test_closed_hours_are_sent_once_with_identifiers_and_a_resend_does_not_double(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    ten, eleven = dt.datetime(2026, 11, 20, 10, tzinfo=UTC), dt.datetime(2026, 11, 20, 11, tzinfo=UTC)
    account = await _subscribe(database, tenant, "growth", since=ten - dt.timedelta(minutes=30))
    customer = account.stripe_customer_id or ""
    await _orders_at(database, tenant, ten, ten + dt.timedelta(minutes=5), ten + dt.timedelta(minutes=59))
    # The current hour (11:xx) is still open at 11:30: it waits.
    await _orders_at(database, tenant, eleven + dt.timedelta(minutes=10))

    await report_usage(database, now=eleven + dt.timedelta(minutes=30))
    sent = fake.objects["billing.meter_event"]
    assert [(event["identifier"], event["payload"], event["timestamp"]) for event in sent.values()] == [
        (
            meter_identifier(tenant.id, "orders", ten, 3),
            {"stripe_customer_id": customer, "value": "3"},
            int(ten.timestamp()),
        )
    ]
    assert metered_usage(fake, customer, EVENT_NAME) == 3

    # The same run again (a second scheduler, a retry): nothing new is sent.
    await report_usage(database, now=eleven + dt.timedelta(minutes=30))
    assert len(fake.requests_to("POST", "/v1/billing/meter_events")) == 1

    # Our record of the send is lost after Stripe got it: it is sent again, and Stripe keeps one.
    async with database.platform_session() as session:
        report = await session.scalar(select(MeterReport).where(MeterReport.tenant_id == tenant.id))
        assert report is not None
        assert (report.status, report.quantity, report.identifier) == (
            "sent",
            3,
            meter_identifier(tenant.id, "orders", ten, 3),
        )
        report.status, report.sent_at = "queued", None
    await report_usage(database, now=eleven + dt.timedelta(minutes=30))
    assert len(fake.requests_to("POST", "/v1/billing/meter_events")) == 2
    assert len(fake.objects["billing.meter_event"]) == 1
    assert metered_usage(fake, customer, EVENT_NAME) == 3

    # An order of 10:xx counted late, and the 11:xx hour closed: the 10:xx total replaces, 11:xx adds.
    await _orders_at(database, tenant, ten + dt.timedelta(minutes=40))
    await report_usage(database, now=eleven + dt.timedelta(hours=1, minutes=5))
    assert sorted(event["payload"]["value"] for event in fake.objects["billing.meter_event"].values()) == [
        "1",
        "3",
        "4",
    ]
    assert metered_usage(fake, customer, EVENT_NAME) == 4 + 1


async def test_the_fake_drops_a_meter_event_whose_identifier_it_has_seen(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    account = await _subscribe(database, tenant, "starter", since=dt.datetime(2026, 11, 1, tzinfo=UTC))
    client = stripe.StripeClient(
        fake.secret_key,
        base_addresses={"api": fake.base_url},
        http_client=stripe.HTTPXClient(),
        max_network_retries=0,
    )
    params = {
        "event_name": EVENT_NAME,
        "payload": {"stripe_customer_id": account.stripe_customer_id or "", "value": "7"},
        "identifier": "os-hour-1",
        "timestamp": int(dt.datetime(2026, 11, 2, 3, tzinfo=UTC).timestamp()),
    }
    # Two different idempotency keys: only the identifier makes the second a duplicate.
    await client.v1.billing.meter_events.create_async(params, {"idempotency_key": "a"})  # type: ignore[arg-type]
    await client.v1.billing.meter_events.create_async(params, {"idempotency_key": "b"})  # type: ignore[arg-type]
    assert metered_usage(fake, account.stripe_customer_id or "", EVENT_NAME) == 7


async def test_while_stripe_is_unreachable_usage_stays_queued_and_goes_with_the_next_run(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    nine = dt.datetime(2026, 11, 21, 9, tzinfo=UTC)
    account = await _subscribe(database, tenant, "starter", since=nine)
    await _orders_at(database, tenant, nine + dt.timedelta(minutes=1), nine + dt.timedelta(minutes=2))

    fake.unreachable = True
    await report_usage(database, now=nine + dt.timedelta(hours=1, minutes=1))
    async with database.platform_session() as session:
        report = await session.scalar(select(MeterReport).where(MeterReport.tenant_id == tenant.id))
        assert report is not None
        assert (report.status, report.attempts, report.quantity) == ("queued", 1, 2)
        assert report.last_error is not None
    assert fake.objects.get("billing.meter_event", {}) == {}

    fake.unreachable = False
    await report_usage(database, now=nine + dt.timedelta(hours=2))
    assert metered_usage(fake, account.stripe_customer_id or "", EVENT_NAME) == 2
    async with database.platform_session() as session:
        report = await session.scalar(select(MeterReport).where(MeterReport.tenant_id == tenant.id))
        assert report is not None
        assert (report.status, report.attempts, report.last_error) == ("sent", 2, None)


async def test_usage_before_the_subscription_and_of_unsubscribed_tenants_is_not_sent(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    trial_hour = dt.datetime(2026, 11, 22, 8, tzinfo=UTC)
    await _orders_at(database, tenant, trial_hour)
    await report_usage(database, now=trial_hour + dt.timedelta(hours=3))
    assert fake.objects.get("billing.meter_event", {}) == {}

    await _subscribe(database, tenant, "starter", since=trial_hour + dt.timedelta(hours=1))
    await report_usage(database, now=trial_hour + dt.timedelta(hours=3))
    assert fake.objects.get("billing.meter_event", {}) == {}


def test_billing_settings_come_from_the_environment_and_production_needs_the_webhook_secret() -> None:
    environ = {
        "STRIPE_API_KEY": "sk_test_1",
        "STRIPE_API_BASE": "http://127.0.0.1:9/",
        "STRIPE_WEBHOOK_SECRET": "whsec_1",
    }
    billing = load_settings(environ).billing
    assert (billing.stripe_api_key, billing.stripe_api_base, billing.stripe_webhook_secret) == (
        "sk_test_1",
        "http://127.0.0.1:9",
        "whsec_1",
    )
    assert billing.is_online
    assert not load_settings({}).billing.is_online
    production = {
        "ORDERSMITH_ENV": "production",
        "SECRET_KEY": "x" * 40,
        "DATABASE_URL": "postgresql://app@db/ordersmith",
        "DATABASE_OWNER_URL": "postgresql://owner@db/ordersmith",
        "BROKER_URL": "amqp://broker",
        "SMTP_URL": "smtp://mail:587",
        "PUBLIC_URL": "https://orders.example.com",
        "STRIPE_API_KEY": "sk_live_1",
    }
    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET"):
        load_settings(production)
