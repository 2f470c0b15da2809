"""The offline ledger: without Stripe, each paid tenant's month is rated and kept as a local invoice.

A daily job closes the last calendar month of every active tenant on a paid plan: the
month's usage rated on the tenant's plan (`rating.rate`), stored once per tenant and
month (a unique key, so a second run or a second scheduler adds nothing). A month is
billed only if the store was on its paid plan at some time during it: a month spent
wholly on the free trial owes nothing, even once a plan is chosen later (`paid_since`). Nothing leaves
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
from ordersmith.platform.billing_models import BillingAccount, BillingInvoice
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry
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


async def paid_since(session: AsyncSession, tenant_id: uuid.UUID) -> dt.datetime | None:
    """When the store went onto a paid plan; None while it is on none (its trial).

    Every plan choice writes `billing.plan_changed` to the store's audit trail in the same
    transaction as the plan, and the trail is never purged: its first entry, from the trial,
    is when paying began. A store whose first change was from a paid plan, or that has none
    (made on a paid plan by an operator), pays from its creation. A subscription learnt only
    from Stripe's webhook left no entry; its `metered_since` is when it began.
    """
    tenant = await session.get(Tenant, tenant_id)
    plan = PLANS.get(tenant.plan) if tenant is not None else None
    if tenant is None or plan is None or not plan.is_paid:
        return None
    first_change = (
        await session.execute(
            select(AuditEntry.created_at, AuditEntry.data)
            .where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "billing.plan_changed")
            .order_by(AuditEntry.id)
            .limit(1)
        )
    ).one_or_none()
    if first_change is not None:
        previous = PLANS.get(str(first_change.data.get("from")))
        return tenant.created_at if previous is not None and previous.is_paid else first_change.created_at
    metered_since = await session.scalar(
        select(BillingAccount.metered_since).where(BillingAccount.tenant_id == tenant_id)
    )
    return metered_since or tenant.created_at


async def close_month(
    session: AsyncSession, tenant_id: uuid.UUID, plan_code: str, *, month_start: dt.datetime
) -> bool:
    """Rate one tenant's month on its plan and keep it as a local invoice, once; True if new.

    A month the store spent wholly before its paid plan began (on its trial) owes nothing.
    """
    start, end = month_of(month_start)
    began = await paid_since(session, tenant_id)
    if began is None or began >= end:
        return False
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
