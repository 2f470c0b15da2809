"""Changing plan: refused first if the store outgrew the plan, then Stripe, then our records.

With Stripe, the first paid plan creates the customer and a subscription of two prices
(the monthly base and the metered orders); a later change swaps both prices on the same
subscription with `proration_behavior=create_prorations`, so Stripe credits the unused
part of the old plan and charges the new one from today. Offline, the change is recorded
locally and the offline ledger invoices the plan at the month's end. Either way the plan
itself is set by `lifecycle.plan_changed` in the same transaction as our billing record
and the audit entry, and only after Stripe accepted the change.

A store's plan changes one at a time: one transaction holds the store's plan-change lock,
its members lock and its locations lock from the downgrade check to the recorded plan,
Stripe's calls included. So two plan choices at once make one subscription (the second
waits, then changes it), and no seat or location is added between the check and the plan
that check allowed. Invitations and location changes of the store wait meanwhile (past the
lock timeout they answer 503 `busy`).

Dropping a store ends its subscription first (`cancel_subscription`, registered with
`tenancy.before_drop`), after sending Stripe the store's orders it was not told of yet
(the hour under way too), since the cancellation invoices at once and the drop deletes
the store's usage: Stripe unreachable, or any of them not taken, the drop is refused
(503) and nothing changes. A subscription that ended on its own (canceled, or
`incomplete_expired` when its first payment never succeeded) is not changed again:
choosing a plan makes a new one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import stripe
from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.billing import lifecycle
from ordersmith.billing.accounts import ENDED_STATUSES, ensure_customer
from ordersmith.billing.catalog import PlanPrices, ensure_plan_prices
from ordersmith.billing.gateway import (
    BillingOfflineError,
    BillingProviderUnavailableError,
    call,
    client_for,
    current_settings,
)
from ordersmith.billing.rating import price_of
from ordersmith.billing.reporting import report_store_usage
from ordersmith.platform.billing_models import BillingAccount
from ordersmith.platform.database import Database
from ordersmith.platform.entitlement_usage import check_downgrade, lock_locations, require_known_plan
from ordersmith.platform.errors import NotFoundError
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.members import lock_members
from ordersmith.platform.models import Tenant
from ordersmith.platform.settings import BillingSettings
from ordersmith.platform.tenancy import TenantRecord, before_drop


async def _create_subscription(
    client: stripe.StripeClient,
    tenant_id: uuid.UUID,
    plan_code: str,
    prices: PlanPrices,
    customer_id: str,
    replaces: str | None,
) -> dict[str, Any]:
    """A new Stripe subscription to `plan_code`, in place of `replaces` (none, or one that ended)."""
    subscription = await call(
        client.v1.subscriptions.create_async(
            {
                "customer": customer_id,
                "items": [{"price": prices.base_price_id}, {"price": prices.metered_price_id}],
                "metadata": {"tenant_id": str(tenant_id), "plan": plan_code},
            },
            # Keyed on the subscription it replaces, not on the plan: a retry never makes a
            # second one, even with another plan (Stripe refuses the key's other parameters).
            {"idempotency_key": f"ordersmith-subscribe-{tenant_id}-{replaces or 'none'}"},
        )
    )
    return {
        "stripe_subscription_id": subscription.id,
        "subscription_status": subscription.status,
        "metered_since": dt.datetime.now(dt.UTC),
    }


async def _subscribe_in_stripe(
    database: Database, tenant_id: uuid.UUID, plan_code: str, account: BillingAccount | None
) -> dict[str, Any]:
    """Create or change the tenant's Stripe subscription to `plan_code`; the fields to record."""
    settings = current_settings()
    client = client_for(settings)
    prices = await ensure_plan_prices(database, client, settings, plan_code)
    customer_id = await ensure_customer(database, client, tenant_id)
    subscription_id = account.stripe_subscription_id if account else None
    if account is None or subscription_id is None or account.subscription_status in ENDED_STATUSES:
        return await _create_subscription(client, tenant_id, plan_code, prices, customer_id, subscription_id)
    current = await call(client.v1.subscriptions.retrieve_async(subscription_id))
    if current.status in ENDED_STATUSES:
        # Ended in Stripe before its webhook reached us: Stripe changes it no more, so it is replaced.
        return await _create_subscription(client, tenant_id, plan_code, prices, customer_id, subscription_id)
    items: list[dict[str, str]] = []
    for item in current.to_dict()["items"]["data"]:
        is_metered = (item["price"].get("recurring") or {}).get("usage_type") == "metered"
        items.append(
            {"id": item["id"], "price": prices.metered_price_id if is_metered else prices.base_price_id}
        )
    change: dict[str, Any] = {
        "items": items,
        "proration_behavior": "create_prorations",
        "metadata": {"plan": plan_code},
    }
    changed = await call(
        client.v1.subscriptions.update_async(
            subscription_id,
            change,  # type: ignore[arg-type]
            # The same change retried replays; a later change (after the record moved on) is new.
            {
                "idempotency_key": f"ordersmith-plan-{subscription_id}-{plan_code}-"
                f"{int(account.updated_at.timestamp() * 1_000_000)}"
            },
        )
    )
    return {"stripe_subscription_id": changed.id, "subscription_status": changed.status}


async def _lock_plan_changes(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Hold off the store's other plan changes, and new seats and locations, until the transaction ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ordersmith.plan:{tenant_id}"}
    )
    # Members before locations, as nothing takes them the other way round.
    await lock_members(session, tenant_id)
    await lock_locations(session, tenant_id)


async def change_plan(database: Database, tenant_id: uuid.UUID, plan_code: str, *, actor: Actor) -> None:
    """Move the store to a paid plan: with proration in Stripe, or recorded locally offline."""
    require_known_plan(plan_code)
    price_of(plan_code)
    async with database.platform_session() as session:
        await _lock_plan_changes(session, tenant_id)
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError("This store no longer exists.")
        # Refused before anything reaches Stripe: a plan the store outgrew (with what to
        # shed first). What it counted cannot grow until this transaction ends.
        await check_downgrade(database, tenant_id, plan_code)
        account = await session.get(BillingAccount, tenant_id)
        previous_plan = tenant.plan
        settings = current_settings()
        is_subscribed = (
            account is not None
            and account.stripe_subscription_id is not None
            and account.subscription_status not in ENDED_STATUSES
        )
        if previous_plan == plan_code and (is_subscribed or not settings.is_online):
            return
        recorded: dict[str, Any] = {}
        if settings.is_online:
            recorded = await _subscribe_in_stripe(database, tenant_id, plan_code, account)
        values = {"plan": plan_code, "updated_at": func.now(), **recorded}
        statement = pg_insert(BillingAccount).values(tenant_id=tenant_id, **values)
        await session.execute(
            statement.on_conflict_do_update(index_elements=[BillingAccount.tenant_id], set_=values)
        )
        await lifecycle.plan_changed(session, tenant_id, plan_code)
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="billing.plan_changed",
            target_type="plan",
            target_id=plan_code,
            data={
                "from": previous_plan,
                "to": plan_code,
                "via": "stripe" if settings.is_online else "offline",
            },
        )


async def _report_last_usage(database: Database, settings: BillingSettings, tenant_id: uuid.UUID) -> None:
    """Tell Stripe every order of the store it does not know of yet, or refuse to cancel.

    The cancellation invoices at once and a dropped store's usage goes with it, so an hour
    not reported by then would never be billed.
    """
    left = await report_store_usage(database, settings, tenant_id, now=dt.datetime.now(dt.UTC))
    if left:
        raise BillingProviderUnavailableError(
            f"Stripe has not taken {left} of the store's hourly order totals, which its final invoice "
            "must bill; the subscription was not canceled: try again in a few minutes."
        )


async def cancel_subscription(database: Database, tenant_id: uuid.UUID, *, actor: Actor) -> None:
    """End the store's Stripe subscription now (no credit for the unused part); nothing to do without one.

    The store's orders Stripe does not know of yet are sent first, since the cancellation
    invoices at once. Raises `BillingProviderUnavailableError` (nothing changed) when Stripe
    cannot be reached or has not taken all of them, and `BillingOfflineError` when the store
    has a subscription but this process no Stripe key.
    """
    async with database.platform_session() as session:
        # After any plan change under way: it cannot make a new subscription behind this one.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ordersmith.plan:{tenant_id}"}
        )
        account = await session.get(BillingAccount, tenant_id)
        if (
            account is None
            or account.stripe_subscription_id is None
            or account.subscription_status in ENDED_STATUSES
        ):
            return
        subscription_id = account.stripe_subscription_id
        settings = current_settings()
        if not settings.is_online:
            raise BillingOfflineError(
                f"The store has a Stripe subscription ({subscription_id}) but billing runs offline "
                "(no STRIPE_API_KEY): set the key and try again; nothing was changed."
            )
        client = client_for(settings)
        # Read first: a retry after a cancellation whose record was lost must not cancel twice.
        subscription = await call(client.v1.subscriptions.retrieve_async(subscription_id))
        if subscription.status not in ENDED_STATUSES:
            await _report_last_usage(database, settings, tenant_id)
            # Usage reported is invoiced now rather than left without an invoice.
            subscription = await call(
                client.v1.subscriptions.cancel_async(subscription_id, {"invoice_now": True, "prorate": False})
            )
        await session.execute(
            update(BillingAccount)
            .where(BillingAccount.tenant_id == tenant_id)
            .values(subscription_status=subscription.status, updated_at=func.now())
            .execution_options(synchronize_session=False)
        )
        await lifecycle.subscription_status_changed(
            session, tenant_id, subscription.status, now=dt.datetime.now(dt.UTC)
        )
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="billing.subscription_canceled",
            target_type="subscription",
            target_id=subscription_id,
            data={"status": subscription.status},
        )


@before_drop
async def cancel_before_drop(database: Database, tenant: TenantRecord, actor: Actor) -> None:
    """Nobody pays on for a dropped store: its subscription ends first, or the drop is refused."""
    await cancel_subscription(database, tenant.id, actor=actor)
