"""The offline ledger: without Stripe, each paid tenant's month is rated and kept as a local invoice.

A daily job closes the last calendar month of every active tenant on a paid plan: the
month's usage rated on the tenant's plan (`rating.rate`), stored once per tenant and
month (a unique key, so a second run or a second scheduler adds nothing). Nothing leaves
the process. With Stripe configured the job does nothing: Stripe invoices, and its
`invoice.*` webhooks mirror them into the same list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.billing.gateway import current_settings
from ordersmith.billing.metering import month_of, usage_for_period
from ordersmith.billing.rating import InvoicePreview, rate
from ordersmith.platform.billing_models import BillingInvoice
from ordersmith.platform.database import Database
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import Tenant, TenantStatus
from ordersmith.platform.plans import PLANS

logger = logging.getLogger(__name__)


def lines_of(preview: InvoicePreview) -> list[dict[str, Any]]:
    """An invoice's lines as JSON-ready dictionaries."""
    return [
        {key: (value.value if key == "meter" and value is not None else value) for key, value in line.items()}
        for line in (dataclasses.asdict(line) for line in preview.lines)
    ]


async def close_month(
    session: AsyncSession, tenant_id: uuid.UUID, plan_code: str, *, month_start: dt.datetime
) -> bool:
    """Rate one tenant's month on its plan and keep it as a local invoice, once; True if new."""
    start, end = month_of(month_start)
    usage = await usage_for_period(session, tenant_id, start, end)
    preview = rate(plan_code, usage.totals)
    inserted = await session.execute(
        pg_insert(BillingInvoice)
        .values(
            id=uuid7(),
            tenant_id=tenant_id,
            source="local",
            plan=plan_code,
            period_start=start,
            period_end=end,
            currency=preview.currency,
            total_amount=preview.total,
            lines=lines_of(preview),
            status="open",
        )
        .on_conflict_do_nothing()
        .returning(BillingInvoice.id)
    )
    return inserted.first() is not None


async def close_last_month(database: Database, *, now: dt.datetime | None = None) -> None:
    """The daily job: offline, invoice last month for every active tenant on a paid plan."""
    if current_settings().is_online:
        return
    this_month, _ = month_of(now or dt.datetime.now(dt.UTC))
    last_month, _ = month_of(this_month - dt.timedelta(days=1))
    paid = [code for code, plan in PLANS.items() if plan.is_paid]
    async with database.platform_session() as session:
        tenants = (
            await session.execute(
                select(Tenant.id, Tenant.plan).where(
                    Tenant.status == TenantStatus.ACTIVE.value,
                    Tenant.plan.in_(paid),
                    # A store that did not exist yet last month owes nothing for it.
                    Tenant.created_at < this_month,
                )
            )
        ).all()
    closed = 0
    for tenant_id, plan_code in tenants:
        async with database.platform_session() as session:
            closed += await close_month(session, tenant_id, plan_code, month_start=last_month)
    logger.info("offline ledger closed %d invoices for %s", closed, f"{last_month:%Y-%m}")
