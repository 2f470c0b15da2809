"""Dropping a paying store ends its Stripe subscription first, or drops nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from ordersmith.billing.gateway import BillingOfflineError, BillingProviderUnavailableError
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount
from ordersmith.platform.database import Database
from ordersmith.platform.errors import TenantNotFoundError
from ordersmith.platform.identity.audit import SYSTEM, Actor
from ordersmith.platform.settings import BillingSettings
from ordersmith.platform.tenancy import TenantRecord, archive_tenant, drop_tenant, get_tenant_record
from tests.support.billing import billing_with, forget_stripe_catalog, stripe_settings
from tests.support.fake_stripe import FakeStripe, serve_fake_stripe

OPERATOR = Actor("system", "cli:operator")


@pytest.fixture
async def fake(database: Database) -> AsyncIterator[FakeStripe]:
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake, billing_with(stripe_settings(fake)):
        yield fake


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
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    subscription_id, _ = await _subscription_of(database, tenant)
    assert subscription_id is not None
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
