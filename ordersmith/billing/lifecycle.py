"""A store's billing lifecycle: plan changes, payment trouble, the trial's end, and the notices they send.

The plan and billing status live on `platform.tenants`; every function here runs in the
caller's platform transaction, so the state moves with whatever caused it (a Stripe
webhook, a plan change). Read-only is not a stored state: `entitlements.access_of`
derives it from the plan, the trial's end and the billing status, so a trial ends on time
without any job. A store that fell behind (past_due, unpaid) is active again only once no
invoice of its current subscription is left unpaid after a failed attempt: paying one invoice,
or Stripe calling the subscription active, does not settle another one still owed. The
hourly `billing.trial_sweep` only sends the emails: a reminder 3 days and 1 day before the
end and a notice at the end, each at most once per trial end.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.billing_models import BillingAccount, BillingInvoice
from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.entitlement_usage import require_known_plan
from ordersmith.platform.entitlements import SOFT_LIMIT_EXCEEDED, bump_revision
from ordersmith.platform.events import Event, consumers
from ordersmith.platform.identity.audit import SYSTEM, record_audit
from ordersmith.platform.identity.models import Membership, User
from ordersmith.platform.mail import queue_email
from ordersmith.platform.models import BillingStatus, Tenant, TenantPlacement, TenantStatus, TrialNotice
from ordersmith.platform.plans import PLANS, Limit
from ordersmith.platform.tenancy import record_of
from ordersmith.platform.workers import PeriodicJob

logger = logging.getLogger(__name__)

# Stripe's subscription statuses and the billing status each one means for us.
_STRIPE_STATUSES = {
    "active": BillingStatus.ACTIVE,
    "trialing": BillingStatus.ACTIVE,
    "past_due": BillingStatus.PAST_DUE,
    "unpaid": BillingStatus.UNPAID,
    "canceled": BillingStatus.CANCELED,
    "incomplete_expired": BillingStatus.CANCELED,
    # A subscription whose Stripe trial ended without a payment method.
    "paused": BillingStatus.CANCELED,
}
# Reminders are sent from these many days before the end; the sweep sends the latest due.
TRIAL_NOTICES = (
    ("ended", dt.timedelta(0)),
    ("ends_in_1_day", dt.timedelta(days=1)),
    ("ends_in_3_days", dt.timedelta(days=3)),
)
# An end the sweep first sees later than this (it was down, say) gets no notice any more.
TRIAL_NOTICE_HORIZON = dt.timedelta(days=7)
SOFT_LIMIT_NOTIFIER = "billing.soft_limit_notifier"
# Billing statuses a store leaves for `active` only once it owes no invoice.
_BEHIND = frozenset({BillingStatus.PAST_DUE, BillingStatus.UNPAID})


# ---- plan and payment state (called by subscriptions and webhooks) --------------------------------


async def plan_changed(session: AsyncSession, tenant_id: uuid.UUID, plan_code: str) -> None:
    """Put the store on `plan_code` (a paid plan): it leaves the trial, and a canceled store comes back."""
    require_known_plan(plan_code)
    await session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(plan=plan_code)
        .execution_options(synchronize_session=False)
    )
    # A new subscription restarts billing; overdue payments stay overdue until they are paid.
    await _set_status(
        session, tenant_id, BillingStatus.ACTIVE, only_from={BillingStatus.CANCELED}, why=plan_code
    )
    await bump_revision(session, tenant_id)


async def _set_status(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    status: BillingStatus,
    *,
    only_from: set[BillingStatus] | None = None,
    since: dt.datetime | None = None,
    why: str,
) -> None:
    """Move the billing status (and `past_due_since`), auditing a real change."""
    row = (
        await session.execute(
            select(Tenant.billing_status, Tenant.past_due_since)
            .where(Tenant.id == tenant_id)
            .with_for_update()
        )
    ).one()
    old = BillingStatus(row.billing_status)
    if old == status or (only_from is not None and old not in only_from):
        return
    if status == BillingStatus.ACTIVE and old in _BEHIND:
        # Read under the tenant row's lock: a settlement committed meanwhile is seen here.
        unpaid = await unpaid_invoices(session, tenant_id)
        if unpaid:
            logger.info(
                "tenant %s stays %s after %s: invoices %s are still unpaid",
                tenant_id,
                old.value,
                why,
                ", ".join(unpaid),
            )
            return
    past_due_since = (row.past_due_since or since) if status == BillingStatus.PAST_DUE else None
    if status == BillingStatus.UNPAID:
        past_due_since = row.past_due_since
    await session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(billing_status=status.value, past_due_since=past_due_since)
        .execution_options(synchronize_session=False)
    )
    await record_audit(
        session,
        tenant_id=tenant_id,
        actor=SYSTEM,
        action="billing.status_changed",
        target_type="tenant",
        target_id=str(tenant_id),
        data={"from": old.value, "to": status.value, "because": why},
    )


async def subscription_status_changed(
    session: AsyncSession, tenant_id: uuid.UUID, status: str, *, now: dt.datetime
) -> None:
    """Follow the Stripe subscription's status: active (once nothing is owed), past_due, unpaid, canceled."""
    ours = _STRIPE_STATUSES.get(status)
    if ours is None:
        # `incomplete`: the first payment is still being attempted; nothing changes yet.
        logger.info("subscription status %r of tenant %s changes nothing", status, tenant_id)
        return
    await _set_status(session, tenant_id, ours, since=now, why=f"subscription {status}")


async def payment_failed(session: AsyncSession, tenant_id: uuid.UUID, *, now: dt.datetime) -> None:
    """A payment failed: an active store becomes past_due, and its grace period starts now."""
    await _set_status(
        session,
        tenant_id,
        BillingStatus.PAST_DUE,
        only_from={BillingStatus.ACTIVE},
        since=now,
        why="payment failed",
    )


async def payment_succeeded(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """An invoice was paid: a past_due or unpaid store that owes no other invoice is active again."""
    await _set_status(session, tenant_id, BillingStatus.ACTIVE, only_from=set(_BEHIND), why="invoice paid")


async def invoice_written_off(session: AsyncSession, tenant_id: uuid.UUID, *, why: str) -> None:
    """An invoice was voided or marked uncollectible: it is owed no more, as if it had been paid."""
    await _set_status(session, tenant_id, BillingStatus.ACTIVE, only_from=set(_BEHIND), why=why)


async def unpaid_invoices(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    """The Stripe ids of the store's invoices still owed after a failed attempt, oldest period first.

    Only its current subscription's count: an ended subscription's open invoices are no
    longer collected by Stripe, so they must not hold the store's new subscription back.
    """
    current = (
        select(BillingAccount.stripe_subscription_id)
        .where(BillingAccount.tenant_id == tenant_id)
        .scalar_subquery()
    )
    rows = await session.scalars(
        select(BillingInvoice.stripe_invoice_id)
        .where(
            BillingInvoice.tenant_id == tenant_id,
            BillingInvoice.status == "payment_failed",
            BillingInvoice.stripe_subscription_id == current,
        )
        .order_by(BillingInvoice.period_start, BillingInvoice.stripe_invoice_id)
    )
    return [str(row) for row in rows]


# ---- the trial's end -------------------------------------------------------------------------------


def trial_notice_due(trial_ends_at: dt.datetime, now: dt.datetime) -> str | None:
    """The trial email due at `now`: the latest of 3 days before, 1 day before, and the end."""
    for kind, before in TRIAL_NOTICES:
        if now >= trial_ends_at - before:
            return kind
    return None


async def _owner_emails(
    session: AsyncSession, tenant_id: uuid.UUID, roles: tuple[str, ...] = ("owner",)
) -> list[str]:
    rows = await session.scalars(
        select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id, Membership.status == "active", Membership.role.in_(roles))
        .order_by(User.email)
    )
    return list(rows)


async def _send_trial_notice(
    session: AsyncSession,
    tenant: TenantContext,
    name: str,
    trial_ends_at: dt.datetime,
    kind: str,
    now: dt.datetime,
) -> bool:
    claimed = await session.scalar(
        pg_insert(TrialNotice)
        .values(id=uuid.uuid4(), tenant_id=tenant.tenant_id, trial_ends_at=trial_ends_at, kind=kind)
        .on_conflict_do_nothing()
        .returning(TrialNotice.id)
    )
    if claimed is None:
        return False
    ends_on = f"{trial_ends_at:%Y-%m-%d}"
    for email in await _owner_emails(session, tenant.tenant_id):
        if kind == "ended":
            await queue_email(
                session,
                tenant,
                to=email,
                template="trial_ended",
                context={"store_name": name, "ended_on": ends_on},
            )
        else:
            days_left = max(1, -(-int((trial_ends_at - now).total_seconds()) // 86_400))
            await queue_email(
                session,
                tenant,
                to=email,
                template="trial_reminder",
                context={"store_name": name, "days_left": days_left, "ends_on": ends_on},
            )
    if kind == "ended":
        await record_audit(
            session,
            tenant_id=tenant.tenant_id,
            actor=SYSTEM,
            action="trial.ended",
            target_type="tenant",
            target_id=str(tenant.tenant_id),
            data={"trial_ended_at": trial_ends_at.isoformat()},
        )
    return True


async def sweep_trials(database: Database, *, now: dt.datetime | None = None) -> int:
    """Send the trial reminders and end notices that are due, each once; return how many were sent."""
    now = now or dt.datetime.now(dt.UTC)
    trial_plans = [code for code, plan in PLANS.items() if not plan.is_paid]
    async with database.platform_session() as session:
        rows = (
            await session.execute(
                select(Tenant, TenantPlacement)
                .join(TenantPlacement, TenantPlacement.tenant_id == Tenant.id)
                .where(
                    Tenant.status == TenantStatus.ACTIVE.value,
                    Tenant.plan.in_(trial_plans),
                    Tenant.trial_ends_at <= now + TRIAL_NOTICES[-1][1],
                    Tenant.trial_ends_at > now - TRIAL_NOTICE_HORIZON,
                )
                .order_by(Tenant.trial_ends_at)
            )
        ).all()
    sent = 0
    for tenant, placement in rows:
        record = record_of(tenant, placement)
        assert record.trial_ends_at is not None
        kind = trial_notice_due(record.trial_ends_at, now)
        if kind is None:
            continue
        # One transaction per tenant: one store's failure does not hold back the others.
        try:
            async with database.platform_session() as session:
                sent += await _send_trial_notice(
                    session, record.context, record.name, record.trial_ends_at, kind, now
                )
        except Exception:
            logger.exception("sending the %s trial notice of tenant %s failed", kind, record.slug)
    logger.info("trial sweep sent %d notices", sent)
    return sent


# ---- soft limits: tell the admins -------------------------------------------------------------------


@consumers.platform_consumer(SOFT_LIMIT_NOTIFIER, SOFT_LIMIT_EXCEEDED)
async def notify_soft_limit(session: AsyncSession, event: Event) -> None:
    """Email the store's owners and admins that a soft limit was gone over (once per event)."""
    if event.tenant_id is None:
        return
    row = (
        await session.execute(
            select(Tenant, TenantPlacement)
            .join(TenantPlacement, TenantPlacement.tenant_id == Tenant.id)
            .where(Tenant.id == event.tenant_id)
        )
    ).one_or_none()
    if row is None:
        logger.info("soft limit event %s belongs to a dropped tenant; ignored", event.id)
        return
    record = record_of(*row)
    payload = event.payload
    plan = PLANS.get(str(payload["plan"]))
    for email in await _owner_emails(session, record.id, ("owner", "admin")):
        await queue_email(
            session,
            record.context,
            to=email,
            template="limit_exceeded",
            context={
                "store_name": record.name,
                "limit": Limit(payload["limit"]).value.replace("_", " "),
                "used": int(payload["used"]),
                "allowed": int(payload["allowed"]),
                "plan_name": plan.name if plan else str(payload["plan"]),
            },
        )


JOBS = [PeriodicJob(name="billing.trial_sweep", every_seconds=3600, run=sweep_trials)]
