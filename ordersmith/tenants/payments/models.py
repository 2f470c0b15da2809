"""Tables of the payments context: payments, their transaction ledger, settings, webhook inbox."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase

PROVIDERS = ("manual", "stripe")
# authorize: funds promised or held; capture: funds taken (for `manual`, money received);
# void: an authorization released; refund: money given back; chargeback: taken back by the bank;
# refund_reversal: a counted refund the provider failed later, so the money stayed with the merchant;
# chargeback_reversal: how a dispute ended, a success when the bank gave the chargeback back (won,
# or an inquiry closed), a failure when it kept it (lost).
TRANSACTION_KINDS = (
    "authorize",
    "capture",
    "void",
    "refund",
    "chargeback",
    "refund_reversal",
    "chargeback_reversal",
)
# request: asked of the provider; then one outcome row per request: success, failure, or
# requires_action (the customer must authenticate; a webhook brings the final outcome).
TRANSACTION_STATES = ("request", "success", "failure", "requires_action")
CAPTURE_POLICIES = ("at_placement", "at_shipment")


class Payment(TenantBase):
    """One way an order is paid (a card through Stripe, a bank transfer); its money is in the ledger."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"provider IN {PROVIDERS}", name="provider_known"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payments_order_id_created_at", "order_id", "created_at"),
        Index("uq_payments_provider_reference", "provider", "provider_reference", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    provider: Mapped[str] = mapped_column(String(20))
    # How the customer pays: cash, bank_transfer, invoice (manual) or a Stripe PaymentMethod id.
    method: Mapped[str | None] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    # What was asked for when the payment was created; the ledger says what happened.
    amount: Mapped[int] = mapped_column(BigInteger)
    # The provider's object (a Stripe PaymentIntent id); none for manual payments.
    provider_reference: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
    created_by_type: Mapped[str] = mapped_column(String(20))
    created_by_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentTransaction(TenantBase):
    """One ledger row: a request to the provider, or its outcome; rows are never changed."""

    __tablename__ = "payment_transactions"
    __table_args__ = (
        CheckConstraint(f"kind IN {TRANSACTION_KINDS}", name="kind_known"),
        CheckConstraint(f"state IN {TRANSACTION_STATES}", name="state_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("already_counted_amount >= 0", name="already_counted_amount_not_negative"),
        Index("ix_payment_transactions_payment_id_created_at", "payment_id", "created_at", "id"),
        Index("ix_payment_transactions_order_id", "order_id"),
        Index("ix_payment_transactions_idempotency_key", "idempotency_key"),
        Index("ix_payment_transactions_provider_reference", "provider_reference"),
        Index("uq_payment_transactions_provider_refund_id", "provider_refund_id", unique=True),
        # A provider's refund is taken back at most once (its id is the reversal's reference).
        Index(
            "uq_payment_transactions_refund_reversal",
            "provider_reference",
            unique=True,
            postgresql_where=text("kind = 'refund_reversal'"),
        ),
        # A dispute closes once (its id is the closing row's reference), however many events say so.
        Index(
            "uq_payment_transactions_chargeback_reversal",
            "provider_reference",
            unique=True,
            postgresql_where=text("kind = 'chargeback_reversal'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("payments.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # The request an outcome answers; None on requests and on changes the provider reported itself.
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payment_transactions.id")
    )
    # A retried request names the failed one it repeats (and repeats its idempotency key).
    retry_of_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payment_transactions.id")
    )
    # Sent to the provider with the request, so a repeated request is never executed twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # The provider's id for what happened: a refund, a dispute, the PaymentIntent.
    provider_reference: Mapped[str | None] = mapped_column(String(255))
    # On the one success row that counts a provider's refund (a Stripe `re_…`): unique, so
    # a refund the provider reports again (a retry answered from its memory, a webhook) is
    # never counted twice.
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    # Part of this refund the ledger had counted before this row: in a refunded total the
    # provider reported without naming its refunds (Stripe's `charge.refunded`), or in the
    # row that names the same refund. `amount` is only the rest; the refund is the sum.
    already_counted_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentSettings(TenantBase):
    """The store's payment settings: one row, written on first change (defaults until then)."""

    __tablename__ = "payment_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(f"capture_policy IN {CAPTURE_POLICIES}", name="capture_policy_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, server_default=text("1"))
    enabled_providers: Mapped[list[str]] = mapped_column(ARRAY(String(20)), server_default=text("'{manual}'"))
    capture_policy: Mapped[str] = mapped_column(String(20), server_default="at_placement")
    # The merchant's own Stripe secret key and webhook signing secret, sealed (see secrets.py).
    stripe_secret_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    stripe_webhook_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The key's mode and last four characters, to show which key is stored without revealing it.
    stripe_secret_key_hint: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentWebhookEvent(TenantBase):
    """A provider webhook event already applied: a redelivery has no second effect."""

    __tablename__ = "payment_webhook_events"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    # What it did: applied, or why it was ignored (unknown payment, nothing new).
    outcome: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
