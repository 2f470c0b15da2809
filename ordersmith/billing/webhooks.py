"""Stripe's webhooks to Ordersmith: verified, applied once per event id, about our customers only.

The signature (`Stripe-Signature`, HMAC-SHA256 over `t.payload` with the endpoint's
secret) and its timestamp (at most five minutes old) are checked before the body is even
parsed; a failure is a 400 and nothing is recorded. Then, in one platform transaction,
the event id is claimed in `stripe_webhook_events` and its effect applied: a redelivered
event finds its id and changes nothing, and an effect that fails rolls the claim back so
Stripe's retry applies it. An event about a customer we do not know is logged and
acknowledged (Stripe would otherwise retry it for days), with nothing changed.

Stripe does not deliver events in the order they happened, so a late event must not undo
a newer one: a paid or voided invoice stays so, a written-off one is not owed again unless
paid, a subscription event older than the last one
applied to that subscription (or about a subscription that has ended) is ignored, and an
event about a subscription other than the store's current one is ignored unless it is the
creation of a newer one. Ignored events are acknowledged and kept with the reason. Each
invoice's state is kept in `billing_invoices`, so a store behind on payments is active
again only once none of its subscription's invoices is left unpaid, whatever the order the
events came in. A failed payment of an invoice of another subscription than the store's
current one (an ended one, whose invoices Stripe collects no more) is kept but leaves the
store's standing alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.billing import lifecycle
from ordersmith.billing.accounts import ENDED_STATUSES
from ordersmith.billing.catalog import plan_of_prices
from ordersmith.platform.billing_models import (
    BillingAccount,
    BillingInvoice,
    StripeSubscription,
    StripeWebhookEvent,
)
from ordersmith.platform.database import Database
from ordersmith.platform.errors import OrdersmithError
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import Tenant
from ordersmith.platform.settings import BillingSettings

logger = logging.getLogger(__name__)

# Stripe's own default: a signed timestamp older than this is a replay, not a delivery.
TOLERANCE_SECONDS = 300
SUBSCRIPTION_EVENTS = frozenset(
    {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"}
)
# The status each invoice event leaves a Stripe invoice in (`payment_failed`: still owed).
INVOICE_STATUSES = {
    "invoice.paid": "paid",
    "invoice.payment_failed": "payment_failed",
    "invoice.voided": "void",
    "invoice.marked_uncollectible": "uncollectible",
}
INVOICE_EVENTS = frozenset(INVOICE_STATUSES)
# What an invoice can still become from each status: paid and void are final, and a written-off
# invoice can be paid or voided but is never owed again. `open` is a row put back by a downgrade.
_INVOICE_MAY_BECOME = {
    "open": frozenset(INVOICE_STATUSES.values()),
    "payment_failed": frozenset(INVOICE_STATUSES.values()),
    "uncollectible": frozenset({"uncollectible", "paid", "void"}),
    "paid": frozenset({"paid"}),
    "void": frozenset({"void"}),
}
# Why an invoice written off may bring the store back, as its audit entry says.
_WRITTEN_OFF_BECAUSE = {"void": "invoice voided", "uncollectible": "invoice marked uncollectible"}
METER_ERROR_EVENTS = frozenset(
    {"v1.billing.meter.error_report_triggered", "billing.meter.error_report_triggered"}
)


class WebhookSignatureError(OrdersmithError):
    status = 400
    code = "webhook_signature_invalid"
    title = "Webhook signature invalid"


class WebhookNotConfiguredError(OrdersmithError):
    status = 404
    code = "webhook_not_configured"
    title = "Stripe webhooks not configured"


def verified_event(settings: BillingSettings, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event in a webhook body whose signature and timestamp check out; 400 otherwise."""
    if settings.stripe_webhook_secret is None:
        raise WebhookNotConfiguredError(
            "This deployment receives no Stripe webhooks (STRIPE_WEBHOOK_SECRET is not set)."
        )
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode(), signature, settings.stripe_webhook_secret, tolerance=TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
        raise WebhookSignatureError(
            "The Stripe-Signature header does not match this body, or its timestamp is over five minutes "
            "old; check the endpoint's signing secret."
        ) from error
    try:
        event = json.loads(payload)
    except ValueError as error:
        raise WebhookSignatureError("The webhook body is not JSON.") from error
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or "type" not in event:
        raise WebhookSignatureError("The webhook body is not a Stripe event.")
    return event


async def _tenant_of_customer(session: AsyncSession, customer_id: str | None) -> uuid.UUID | None:
    if not customer_id:
        return None
    return await session.scalar(
        select(BillingAccount.tenant_id).where(BillingAccount.stripe_customer_id == customer_id)
    )


def _moment(stamp: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(stamp), dt.UTC) if stamp is not None else None


async def _stale_subscription_event(
    session: AsyncSession,
    account: BillingAccount,
    kind: str,
    obj: dict[str, Any],
    happened_at: dt.datetime,
    known: StripeSubscription | None,
) -> str | None:
    """Why this event must not be applied (Stripe delivers out of order), or None to apply it."""
    current = account.stripe_subscription_id
    if current is not None and current != obj["id"]:
        # Only a subscription begun after the store's current one may take its place.
        created = _moment(obj.get("created"))
        if kind != "customer.subscription.created" or created is None:
            return "not_the_current_subscription"
        current_row = await session.get(StripeSubscription, current)
        # A current subscription of unknown age (no event of it applied yet) stays current.
        if current_row is None or current_row.created_at is None or created <= current_row.created_at:
            return "older_than_the_current_subscription"
    if known is not None:
        if known.status in ENDED_STATUSES:
            return "subscription_ended"
        if happened_at < known.last_event_at:
            return "older_than_the_last_event_applied"
    return None


async def _apply_subscription(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    kind: str,
    obj: dict[str, Any],
    happened_at: dt.datetime,
    now: dt.datetime,
) -> tuple[str, dict[str, Any]]:
    account = await session.get(BillingAccount, tenant_id, with_for_update=True)
    assert account is not None
    status = "canceled" if kind == "customer.subscription.deleted" else str(obj.get("status"))
    # The account's lock (above) serializes this store's events, so the subscription row needs none.
    known = await session.get(StripeSubscription, obj["id"])
    stale = await _stale_subscription_event(session, account, kind, obj, happened_at, known)
    if stale is not None:
        logger.info("stripe %s of subscription %s ignored: %s", kind, obj["id"], stale)
        return "ignored", {"subscription": obj["id"], "status": status, "stale": stale}
    await session.execute(
        pg_insert(StripeSubscription)
        .values(
            id=obj["id"],
            tenant_id=tenant_id,
            created_at=_moment(obj.get("created")),
            last_event_at=happened_at,
            status=status,
        )
        .on_conflict_do_update(
            index_elements=[StripeSubscription.id],
            set_={"last_event_at": happened_at, "status": status, "updated_at": now},
        )
    )
    is_new_here = account.stripe_subscription_id != obj["id"] or account.metered_since is None
    if is_new_here and status not in ENDED_STATUSES:
        # A subscription learnt from its webhook (our record of Stripe's answer was lost, or it was
        # made in Stripe's dashboard): its orders are reported from its start, as `change_plan` records.
        account.metered_since = _moment(obj.get("created")) or now
    account.stripe_subscription_id = obj["id"]
    account.subscription_status = status
    account.updated_at = now
    price_ids = {item["price"]["id"] for item in obj.get("items", {}).get("data", []) if item.get("price")}
    plan = await plan_of_prices(session, price_ids) if price_ids else None
    tenant_plan = await session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id))
    if plan is not None and status not in ENDED_STATUSES and plan != tenant_plan:
        # Changed in Stripe's portal or dashboard: our plan follows the subscription.
        account.plan = plan
        await lifecycle.plan_changed(session, tenant_id, plan)
    await lifecycle.subscription_status_changed(session, tenant_id, status, now=now)
    return "applied", {"status": status, "plan": plan}


def _subscription_of_invoice(obj: dict[str, Any]) -> str | None:
    """The subscription that billed an invoice: in `parent` since Stripe's 2025-03-31 API, on top before."""
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or obj.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return str(subscription) if subscription else None


async def _apply_invoice(
    session: AsyncSession, tenant_id: uuid.UUID, kind: str, obj: dict[str, Any], now: dt.datetime
) -> tuple[str, dict[str, Any]]:
    status = INVOICE_STATUSES[kind]
    # The account's lock serializes this store's events, so the invoice's state read here stays true.
    account = await session.get(BillingAccount, tenant_id, with_for_update=True)
    assert account is not None
    known = await session.scalar(
        select(BillingInvoice.status).where(BillingInvoice.stripe_invoice_id == obj["id"])
    )
    if known is not None and status not in _INVOICE_MAY_BECOME[known]:
        # Stripe sends events in no set order: this one would undo a settlement already recorded.
        logger.info("stripe %s of invoice %s ignored: the invoice is %s", kind, obj["id"], known)
        return "ignored", {"invoice": obj["id"], "status": known, "stale": f"invoice_{known}"}
    plan = await session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id))
    start = obj.get("period_start") or int(now.timestamp())
    end = obj.get("period_end") or start
    statement = pg_insert(BillingInvoice).values(
        id=uuid7(),
        tenant_id=tenant_id,
        source="stripe",
        stripe_invoice_id=obj["id"],
        stripe_subscription_id=_subscription_of_invoice(obj),
        plan=plan or "unknown",
        period_start=dt.datetime.fromtimestamp(start, dt.UTC),
        period_end=dt.datetime.fromtimestamp(end, dt.UTC),
        currency=str(obj.get("currency", "usd"))[:3],
        total_amount=int(obj.get("total") or obj.get("amount_due") or 0),
        status=status,
        hosted_url=obj.get("hosted_invoice_url"),
    )
    billed_by = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=[BillingInvoice.stripe_invoice_id],
            set_={
                "status": status,
                "total_amount": statement.excluded.total_amount,
                # Rows mirrored before the subscription was kept learn it from their next event.
                "stripe_subscription_id": func.coalesce(
                    statement.excluded.stripe_subscription_id, BillingInvoice.stripe_subscription_id
                ),
            },
        ).returning(BillingInvoice.stripe_subscription_id)
    )
    if status == "payment_failed":
        if billed_by is not None and billed_by != account.stripe_subscription_id:
            # Stripe collects an ended subscription's invoices no more: the store's standing is its
            # current subscription's, so this one is kept as owed without making the store past due.
            logger.info(
                "failed payment of invoice %s of subscription %s leaves the store as it is",
                obj["id"],
                billed_by,
            )
            return "applied", {
                "invoice": obj["id"],
                "status": status,
                "standing": "not_the_current_subscription",
            }
        await lifecycle.payment_failed(session, tenant_id, now=now)
        return "applied", {"invoice": obj["id"], "status": status}
    if status == "paid":
        await lifecycle.payment_succeeded(session, tenant_id)
    else:
        await lifecycle.invoice_written_off(session, tenant_id, why=_WRITTEN_OFF_BECAUSE[status])
    # Shown to support: why a store that just paid may still be past due.
    still_unpaid = await lifecycle.unpaid_invoices(session, tenant_id)
    return "applied", {"invoice": obj["id"], "status": status, "still_unpaid": still_unpaid}


def _customer_of(kind: str, obj: dict[str, Any]) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        return str(customer.get("id"))
    return str(customer) if customer else None


async def handle_webhook(
    database: Database,
    settings: BillingSettings,
    payload: bytes,
    signature: str | None,
    *,
    now: dt.datetime | None = None,
) -> str:
    """Verify and apply one Stripe webhook, once per event id; what came of it."""
    event = verified_event(settings, payload, signature)
    now = now or dt.datetime.now(dt.UTC)
    kind = str(event["type"])
    obj: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    async with database.platform_session() as session:
        claimed = await session.execute(
            pg_insert(StripeWebhookEvent)
            .values(id=event["id"], type=kind, outcome="received")
            .on_conflict_do_nothing()
            .returning(StripeWebhookEvent.id)
        )
        if claimed.first() is None:
            logger.info("stripe event %s (%s) already handled", event["id"], kind)
            return "duplicate"
        tenant_id: uuid.UUID | None = None
        detail: dict[str, Any] = {}
        if kind in METER_ERROR_EVENTS:
            # Stripe could not use some usage we sent: an operator must look (the reasons are inside).
            logger.error("stripe reports meter errors: %s", json.dumps(obj)[:2000])
            outcome, detail = "meter_error", {"report": obj}
        elif kind in SUBSCRIPTION_EVENTS or kind in INVOICE_EVENTS:
            customer_id = _customer_of(kind, obj)
            tenant_id = await _tenant_of_customer(session, customer_id)
            if tenant_id is None:
                logger.warning(
                    "stripe event %s (%s) is about unknown customer %s; acknowledged",
                    event["id"],
                    kind,
                    customer_id,
                )
                outcome, detail = "unknown_customer", {"customer": customer_id}
            elif kind in SUBSCRIPTION_EVENTS:
                happened_at = _moment(event.get("created")) or now
                outcome, detail = await _apply_subscription(session, tenant_id, kind, obj, happened_at, now)
            else:
                outcome, detail = await _apply_invoice(session, tenant_id, kind, obj, now)
        else:
            outcome = "ignored"
        row = await session.get(StripeWebhookEvent, event["id"])
        assert row is not None
        row.outcome, row.tenant_id, row.detail = outcome, tenant_id, detail
    return outcome
