"""The offline ledger bills a month only if the store was on its paid plan at some time in it."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update

from ordersmith.billing.ledger import close_last_month, close_month
from ordersmith.billing.metering import month_of
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingInvoice, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.models import Tenant
from ordersmith.platform.settings import BillingSettings
from ordersmith.platform.tenancy import TenantRecord, provision_tenant
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.billing import billing_with
from tests.support.services import new_slug


def _months(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The first moments of this month and of last month."""
    this_month, _ = month_of(now)
    last_month, _ = month_of(this_month - dt.timedelta(days=1))
    return this_month, last_month


async def _made_at(
    database: Database, tenant_id: uuid.UUID, created_at: dt.datetime, orders_at: dt.datetime
) -> None:
    """Date the store's creation (and a 14-day trial from it) back, with 40 orders in one hour."""
    async with database.platform_session() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(created_at=created_at, trial_ends_at=created_at + dt.timedelta(days=14))
        )
        session.add(UsageHour(tenant_id=tenant_id, meter="orders", hour=orders_at, quantity=40))


async def _invoices(database: Database, tenant_id: uuid.UUID) -> list[tuple[dt.datetime, str, int]]:
    async with database.platform_session() as session:
        rows = await session.execute(
            select(BillingInvoice.period_start, BillingInvoice.plan, BillingInvoice.total_amount)
            .where(BillingInvoice.tenant_id == tenant_id)
            .order_by(BillingInvoice.period_start)
        )
        return [(row.period_start, row.plan, row.total_amount) for row in rows]


async def test_a_month_spent_on_the_trial_is_not_invoiced_when_a_plan_is_chosen_the_month_after(
    database: Database, tenant: TenantRecord
) -> None:
    now = dt.datetime.now(dt.UTC)
    this_month, last_month = _months(now)
    # Signed up 6 days before this month began; the 14-day trial ran into this month.
    await _made_at(database, tenant.id, this_month - dt.timedelta(days=6), this_month - dt.timedelta(days=2))
    with billing_with(BillingSettings()):
        # This month, after the trial, the owner chooses Growth; the daily job then runs.
        await change_plan(database, tenant.id, "growth", actor=SYSTEM)
        await close_last_month(database, now=now)
        assert await _invoices(database, tenant.id) == []
        # The month the plan was chosen in is billed, at its close.
        async with database.platform_session() as session:
            assert not await close_month(session, tenant.id, "growth", month_start=last_month)
            assert await close_month(session, tenant.id, "growth", month_start=this_month)

    assert await _invoices(database, tenant.id) == [(this_month, "growth", 9_900)]


async def test_a_store_made_on_a_paid_plan_is_invoiced_for_its_first_month(database: Database) -> None:
    now = dt.datetime.now(dt.UTC)
    _, last_month = _months(now)
    # An operator made it on Growth (no plan was ever chosen) ten days into last month.
    store = await provision_tenant(database, TENANT_SCHEMA, slug=new_slug(), name="Paid Shop", plan="growth")
    made_at = last_month + dt.timedelta(days=10)
    await _made_at(database, store.id, made_at, made_at + dt.timedelta(hours=3))

    with billing_with(BillingSettings()):
        await close_last_month(database, now=now)

    assert await _invoices(database, store.id) == [(last_month, "growth", 9_900)]
