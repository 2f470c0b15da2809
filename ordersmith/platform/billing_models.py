"""Platform tables of the billing room: usage, its hourly totals, Stripe sync records, invoices.

They live in `platform` (one row per tenant, read by the vendor's billing, never by a tenant
role) and are declared here because the platform's migration stream and its
models-versus-migrations check must see every platform table; `ordersmith/billing/` owns
what is done with them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.models import PlatformBase

_TENANT_FK = "platform.tenants.id"


class UsageEvent(PlatformBase):
    """One unit of metered usage, recorded once: its id is the id of the event that announced it."""

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_usage_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
    )

    # The outbox event's id for orders: a redelivered event finds its row already there.
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_TENANT_FK, ondelete="CASCADE")
    )
    meter: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int] = mapped_column(Integer)
    # When the usage happened (the order's placement), which decides its hour.
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # What was counted: the event topic and the object (`order.placed`, the order's id).
    source: Mapped[str] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UsageHour(PlatformBase):
    """A tenant's usage of one meter in one hour: the sum of its usage events, kept as they arrive."""

    __tablename__ = "usage_hours"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_TENANT_FK, ondelete="CASCADE"), primary_key=True
    )
    meter: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BillingAccount(PlatformBase):
    """A tenant's standing with Stripe: its customer and subscription, as last known."""

    __tablename__ = "billing_accounts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_TENANT_FK, ondelete="CASCADE"), primary_key=True
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # Stripe's status of the subscription (active, past_due, unpaid, canceled, …).
    subscription_status: Mapped[str | None] = mapped_column(String(40))
    # The plan the subscription bills; usage is reported from `metered_since` on.
    plan: Mapped[str | None] = mapped_column(String(40))
    metered_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MeterReport(PlatformBase):
    """One hour's total of a meter for a tenant, as sent (or to be sent) to Stripe."""

    __tablename__ = "meter_reports"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'sent', 'superseded', 'failed')", name="status_known"),
        # An hour is reported once per total it reaches: a resend can never add a second copy.
        UniqueConstraint("tenant_id", "meter", "hour", "quantity"),
        Index("ix_meter_reports_status_created_at", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_TENANT_FK, ondelete="CASCADE")
    )
    meter: Mapped[str] = mapped_column(String(40))
    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The hour's whole total so far: Stripe keeps the latest event of an hour, so it replaces.
    quantity: Mapped[int] = mapped_column(BigInteger)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(100))
    # queued until Stripe has it; superseded by a larger total of the hour; failed when Stripe
    # refused it for good (`last_error` says why), so it never holds back the rows behind it.
    status: Mapped[str] = mapped_column(String(20), server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class StripeCatalogEntry(PlatformBase):
    """A Stripe object Ordersmith created for its plans (meter, product, price), by our key."""

    __tablename__ = "stripe_catalog"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    stripe_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StripeWebhookEvent(PlatformBase):
    """A Stripe webhook event received: its id makes a redelivery a no-op."""

    __tablename__ = "stripe_webhook_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # What came of it: applied, unknown_customer, meter_error, or ignored (a type we do not act
    # on, or an event arriving after a newer one it would undo; `detail` says which).
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StripeSubscription(PlatformBase):
    """A Stripe subscription as its webhooks last moved it: Stripe does not deliver them in order."""

    __tablename__ = "stripe_subscriptions"
    __table_args__ = (Index("ix_stripe_subscriptions_tenant_id", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_TENANT_FK, ondelete="CASCADE")
    )
    # Stripe's `created` of the subscription: another one replaces it only if created later.
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The `created` of the last event applied: an event older than this changes nothing.
    last_event_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # Its Stripe status after that event; `canceled` is final in Stripe, so nothing reopens it.
    status: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BillingInvoice(PlatformBase):
    """An invoice: rated locally by the offline ledger, or mirrored from Stripe's webhooks."""

    __tablename__ = "billing_invoices"
    __table_args__ = (
        CheckConstraint("source IN ('local', 'stripe')", name="source_known"),
        # Stripe's invoices are paid, payment_failed (still owed), void or uncollectible (written off).
        CheckConstraint(
            "status IN ('open', 'paid', 'payment_failed', 'void', 'uncollectible')", name="status_known"
        ),
        # The offline ledger closes each period once. Stripe may bill one period more than once
        # (a plan change invoiced at once, prorated), so its invoices are told apart by id only.
        Index(
            "uq_billing_invoices_local_period",
            "tenant_id",
            "period_start",
            unique=True,
            postgresql_where=text("source = 'local'"),
        ),
        Index("ix_billing_invoices_tenant_id_period_start", "tenant_id", "period_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_TENANT_FK, ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(20))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # The subscription that billed it: only the store's current subscription's unpaid invoices hold
    # it past due (None for a local invoice, one made outside a subscription, or one not heard of since
    # platform revision 0009).
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(100))
    plan: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    status: Mapped[str] = mapped_column(String(20))
    hosted_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
