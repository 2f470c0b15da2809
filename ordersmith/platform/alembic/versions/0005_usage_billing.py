"""Usage events and hourly aggregates, Stripe sync records, local invoices, billing webhooks.

Revision ID: 0005_usage_billing
Revises: 0004_entitlements
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_usage_billing"
down_revision = "0004_entitlements"
branch_labels = None
depends_on = None

SCHEMA = "platform"
TABLES = (
    "billing_invoices",
    "stripe_webhook_events",
    "stripe_catalog",
    "meter_reports",
    "billing_accounts",
    "usage_hours",
    "usage_events",
)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["platform.tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("meter", sa.String(40), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("subject_id", sa.String(100), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_usage_events_quantity_positive")),
        _tenant_fk("usage_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_usage_events_tenant_id_occurred_at", "usage_events", ["tenant_id", "occurred_at"], schema=SCHEMA
    )
    op.create_table(
        "usage_hours",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("meter", sa.String(40), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        _tenant_fk("usage_hours"),
        sa.PrimaryKeyConstraint("tenant_id", "meter", "hour", name=op.f("pk_usage_hours")),
        schema=SCHEMA,
    )
    op.create_table(
        "billing_accounts",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("stripe_customer_id", sa.String(100), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(100), nullable=True),
        sa.Column("subscription_status", sa.String(40), nullable=True),
        sa.Column("plan", sa.String(40), nullable=True),
        sa.Column("metered_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        _tenant_fk("billing_accounts"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_billing_accounts")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_billing_accounts_stripe_customer_id")),
        sa.UniqueConstraint(
            "stripe_subscription_id", name=op.f("uq_billing_accounts_stripe_subscription_id")
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "meter_reports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("meter", sa.String(40), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.String(100), nullable=False),
        sa.Column("stripe_customer_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'superseded')", name=op.f("ck_meter_reports_status_known")
        ),
        _tenant_fk("meter_reports"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_reports")),
        sa.UniqueConstraint("identifier", name=op.f("uq_meter_reports_identifier")),
        sa.UniqueConstraint(
            "tenant_id",
            "meter",
            "hour",
            "quantity",
            name=op.f("uq_meter_reports_tenant_id_meter_hour_quantity"),
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_meter_reports_status_created_at", "meter_reports", ["status", "created_at"], schema=SCHEMA
    )
    op.create_table(
        "stripe_catalog",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("stripe_id", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_stripe_catalog")),
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_webhook_events",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_webhook_events")),
        schema=SCHEMA,
    )
    op.create_table(
        "billing_invoices",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(100), nullable=True),
        sa.Column("plan", sa.String(40), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("hosted_url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("source IN ('local', 'stripe')", name=op.f("ck_billing_invoices_source_known")),
        sa.CheckConstraint(
            "status IN ('open', 'paid', 'payment_failed')", name=op.f("ck_billing_invoices_status_known")
        ),
        _tenant_fk("billing_invoices"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_invoices")),
        sa.UniqueConstraint("stripe_invoice_id", name=op.f("uq_billing_invoices_stripe_invoice_id")),
        sa.UniqueConstraint(
            "tenant_id",
            "source",
            "period_start",
            name=op.f("uq_billing_invoices_tenant_id_source_period_start"),
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_billing_invoices_tenant_id_period_start",
        "billing_invoices",
        ["tenant_id", "period_start"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table, schema=SCHEMA)
