"""A tenant's billing account: its Stripe customer, the billing portal, its invoices and billing period."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.billing.gateway import BillingOfflineError, call, client_for
from ordersmith.billing.metering import hour_of, month_of
from ordersmith.platform.billing_models import BillingAccount, BillingInvoice
from ordersmith.platform.database import Database
from ordersmith.platform.errors import NotFoundError
from ordersmith.platform.models import Tenant
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.platform.settings import BillingSettings

# Stripe's final subscription statuses: such a subscription bills no more, and no change brings it back
# (`incomplete_expired`: its first payment never succeeded). A store in one subscribes anew.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


class InvoiceNotFoundError(NotFoundError):
    code = "invoice_not_found"
    title = "Invoice not found"


async def billing_account(session: AsyncSession, tenant_id: uuid.UUID) -> BillingAccount | None:
    """The tenant's billing account, or None before its first paid plan or portal visit."""
    return await session.get(BillingAccount, tenant_id)


async def ensure_customer(database: Database, client: stripe.StripeClient, tenant_id: uuid.UUID) -> str:
    """The tenant's Stripe customer id, creating the customer (once, whatever the retries) if needed."""
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant_id)
        if account is not None and account.stripe_customer_id is not None:
            return account.stripe_customer_id
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError("This store no longer exists.")
        name, slug = tenant.name, tenant.slug
    customer = await call(
        client.v1.customers.create_async(
            {"name": name, "metadata": {"tenant_id": str(tenant_id), "slug": slug}},
            # One customer per tenant: a retry after a lost answer gets the same customer back.
            {"idempotency_key": f"ordersmith-customer-{tenant_id}"},
        )
    )
    async with database.platform_session() as session:
        statement = pg_insert(BillingAccount).values(tenant_id=tenant_id, stripe_customer_id=customer.id)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[BillingAccount.tenant_id],
                set_={"stripe_customer_id": customer.id},
                where=BillingAccount.stripe_customer_id.is_(None),
            )
        )
        account = await session.get(BillingAccount, tenant_id, populate_existing=True)
        assert account is not None
        assert account.stripe_customer_id is not None
        return account.stripe_customer_id


async def portal_link(
    database: Database, settings: BillingSettings, tenant_id: uuid.UUID, *, return_url: str
) -> str:
    """A short-lived link to Stripe's billing portal for the tenant (payment methods, invoices)."""
    if not settings.is_online:
        raise BillingOfflineError(
            "Billing runs offline, so there is no billing portal; "
            "your invoices are listed at GET /api/v1/billing/invoices."
        )
    client = client_for(settings)
    customer_id = await ensure_customer(database, client, tenant_id)
    portal = await call(
        client.v1.billing_portal.sessions.create_async(
            {"customer": customer_id, "return_url": return_url},
            # A portal session is a fresh link each time; no replay wanted across clicks.
            {"idempotency_key": f"ordersmith-portal-{uuid.uuid4()}"},
        )
    )
    return str(portal.url)


async def list_invoices(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest
) -> Page[BillingInvoice]:
    """The tenant's invoices, newest first."""
    query = page.apply(
        select(BillingInvoice).where(BillingInvoice.tenant_id == tenant_id),
        BillingInvoice.created_at,
        BillingInvoice.id,
        newest_first=True,
    )
    rows = (await session.scalars(query)).all()
    return page.cut(rows, lambda row: (row.created_at, row.id))


async def get_invoice(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> BillingInvoice:
    """One of the tenant's invoices; another tenant's answers 404 like a missing one."""
    invoice = await session.scalar(
        select(BillingInvoice).where(BillingInvoice.id == invoice_id, BillingInvoice.tenant_id == tenant_id)
    )
    if invoice is None:
        raise InvoiceNotFoundError("No such invoice; list your invoices at GET /api/v1/billing/invoices.")
    return invoice


@dataclass(frozen=True)
class BilledPeriod:
    """The period the store's next invoice covers, and the first hour of usage it bills."""

    start: dt.datetime
    end: dt.datetime
    usage_from: dt.datetime


def _subscription_period(subscription: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    # Stripe keeps the period on each item (API 2025-03-31 on); the metered item's is the usage's.
    items = subscription["items"]["data"]
    metered = [
        item for item in items if (item["price"].get("recurring") or {}).get("usage_type") == "metered"
    ]
    item = (metered or items)[0]
    return (
        dt.datetime.fromtimestamp(item["current_period_start"], dt.UTC),
        dt.datetime.fromtimestamp(item["current_period_end"], dt.UTC),
    )


async def billed_period(
    database: Database, settings: BillingSettings, tenant_id: uuid.UUID, *, now: dt.datetime
) -> BilledPeriod:
    """The period the store's next invoice covers: its Stripe subscription's, else the calendar month.

    With a live subscription, its current period: usage counts from the period's start or,
    in the period the subscription began, from the hour of `metered_since` (the first hour
    the hourly reporting sends). Offline, and before a first subscription (or after one
    ended), the UTC calendar month with all its usage, as the offline ledger invoices.
    """
    async with database.platform_reader() as session:
        account = await session.get(BillingAccount, tenant_id)
    if (
        not settings.is_online
        or account is None
        or account.stripe_subscription_id is None
        or account.subscription_status in ENDED_STATUSES
    ):
        start, end = month_of(now)
        return BilledPeriod(start, end, start)
    client = client_for(settings)
    subscription = await call(client.v1.subscriptions.retrieve_async(account.stripe_subscription_id))
    start, end = _subscription_period(subscription.to_dict())
    first_hour = hour_of(account.metered_since) if account.metered_since is not None else None
    if first_hour is None or first_hour < hour_of(start):
        return BilledPeriod(start, end, start)
    # The first period begins within the hour of `metered_since`, which reporting sends whole.
    return BilledPeriod(start, end, first_hour)
