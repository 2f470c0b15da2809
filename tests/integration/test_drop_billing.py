"""Dropping a paying store reports its last orders and ends its subscription first, or drops nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from ordersmith.billing.gateway import BillingOfflineError, BillingProviderUnavailableError
from ordersmith.billing.metering import hour_of
from ordersmith.platform.billing_models import BillingAccount, MeterReport, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.errors import TenantNotFoundError
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.settings import BillingSettings
from ordersmith.platform.tenancy import TenantRecord, archive_tenant, drop_tenant, get_tenant_record
from tests.support import billing
from tests.support.billing import billing_with, stripe_settings, subscribed_account
from tests.support.fake_stripe import FakeStripe, StripeError
from tests.support.fake_stripe.billing import metered_usage

OPERATOR = Actor("system", "cli:operator")


# Billing on a new fake Stripe: this `fake` overrides the payments one of tests/conftest.py.
fake = billing.billing_fake


async def _subscription_of(database: Database, tenant: TenantRecord) -> tuple[str | None, str | None]:
    async with database.platform_session() as session:
        row = (
            await session.execute(
                select(BillingAccount.stripe_subscription_id, BillingAccount.subscription_status).where(
                    BillingAccount.tenant_id == tenant.id
                )
            )
        ).one()
    return row[0], row[1]


async def test_a_paying_store_is_dropped_only_once_its_subscription_is_canceled(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    subscription_id = (await subscribed_account(database, tenant.id)).stripe_subscription_id or ""
    await archive_tenant(database, tenant.slug, actor=OPERATOR)

    # Stripe out of reach, or no key to reach it with: the store and its records stay.
    fake.unreachable = True
    with pytest.raises(BillingProviderUnavailableError, match="nothing was changed"):
        await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)
    fake.unreachable = False
    with billing_with(BillingSettings()), pytest.raises(BillingOfflineError) as offline:
        await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)
    assert str(offline.value) == (
        f"The store has a Stripe subscription ({subscription_id}) but billing runs offline "
        "(no STRIPE_API_KEY): set the key and try again; nothing was changed."
    )
    assert (await get_tenant_record(database, tenant.slug)).status == "archived"
    assert await _subscription_of(database, tenant) == (subscription_id, "active")
    assert fake.objects["subscription"][subscription_id]["status"] == "active"

    with billing_with(stripe_settings(fake)):
        await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)
    assert fake.objects["subscription"][subscription_id]["status"] == "canceled"
    assert [r.path for r in fake.requests_to("DELETE", "/v1/subscriptions")] == [
        f"/v1/subscriptions/{subscription_id}"
    ]
    with pytest.raises(TenantNotFoundError):
        await get_tenant_record(database, tenant.slug)


async def _archived_with_unreported_orders(database: Database, tenant: TenantRecord) -> tuple[str, str]:
    """Archived after 3 hours on Growth, with 9 orders unreported in the last hour and 4 in this one.

    Its Stripe customer and subscription.
    """
    account = await subscribed_account(database, tenant.id)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        await session.execute(
            update(BillingAccount)
            .where(BillingAccount.tenant_id == tenant.id)
            .values(metered_since=now - dt.timedelta(hours=3))
        )
        session.add_all(
            [
                UsageHour(
                    tenant_id=tenant.id, meter="orders", hour=hour_of(now) - dt.timedelta(hours=1), quantity=9
                ),
                UsageHour(tenant_id=tenant.id, meter="orders", hour=hour_of(now), quantity=4),
            ]
        )
    await archive_tenant(database, tenant.slug, actor=OPERATOR)
    assert account.stripe_customer_id is not None
    assert account.stripe_subscription_id is not None
    return account.stripe_customer_id, account.stripe_subscription_id


async def test_orders_not_yet_reported_reach_stripe_before_the_drop_invoices_the_subscription(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    customer, subscription_id = await _archived_with_unreported_orders(database, tenant)

    await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)

    # The cancellation invoices at once what Stripe holds: the closed hour and the one under way.
    assert metered_usage(fake, customer, "ordersmith_orders") == 13
    sent = [
        r.path
        for r in fake.requests
        if r.path in ("/v1/billing/meter_events", f"/v1/subscriptions/{subscription_id}")
    ]
    assert sent == [
        f"/v1/subscriptions/{subscription_id}",
        "/v1/billing/meter_events",
        "/v1/billing/meter_events",
        f"/v1/subscriptions/{subscription_id}",
    ]
    assert fake.requests[-1].method == "DELETE"


async def test_a_drop_whose_last_orders_stripe_did_not_take_is_refused_and_keeps_them(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    customer, subscription_id = await _archived_with_unreported_orders(database, tenant)
    # Stripe fails on its side at the first hour total sent.
    fake.fail_next["/v1/billing/meter_events"] = StripeError(500, "An error occurred.", type_="api_error")

    with pytest.raises(BillingProviderUnavailableError) as refused:
        await drop_tenant(database, tenant.slug, confirm=tenant.slug, actor=OPERATOR)

    assert str(refused.value) == (
        "Stripe has not taken 2 of the store's hourly order totals, which its final invoice must bill; "
        "the subscription was not canceled: try again in a few minutes."
    )
    assert refused.value.status == 503
    assert (await get_tenant_record(database, tenant.slug)).status == "archived"
    assert await _subscription_of(database, tenant) == (subscription_id, "active")
    assert fake.requests_to("DELETE", "/v1/subscriptions") == []
    async with database.platform_session() as session:
        kept = await session.scalar(
            select(func.sum(UsageHour.quantity)).where(UsageHour.tenant_id == tenant.id)
        )
        queued = (
            await session.execute(
                select(MeterReport.quantity, MeterReport.status)
                .where(MeterReport.tenant_id == tenant.id)
                .order_by(MeterReport.hour)
            )
        ).all()
    # Nothing is lost: the orders are kept, and both totals wait in the queue for the next try.
    assert kept == 13
    assert [tuple(row) for row in queued] == [(9, "queued"), (4, "queued")]
    assert metered_usage(fake, customer, "ordersmith_orders") == 0
