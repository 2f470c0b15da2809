"""Stripe's billing events applied in their own order, and usage reports Stripe refuses for good.

`stripe_subscriptions` keeps, per Stripe subscription, its creation time, the `created` of
the last webhook event applied to it and its status, so a late event cannot undo a newer
one. `meter_reports` may end `failed`: a report Stripe refused for good stops being sent.

Revision ID: 0007_billing_event_order
Revises: 0006_webhook_stores
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_billing_event_order"
down_revision = "0006_webhook_stores"
branch_labels = None
depends_on = None

SCHEMA = "platform"


def upgrade() -> None:
    op.create_table(
        "stripe_subscriptions",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["platform.tenants.id"],
            name=op.f("fk_stripe_subscriptions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_subscriptions")),
        schema=SCHEMA,
    )
    op.create_index("ix_stripe_subscriptions_tenant_id", "stripe_subscriptions", ["tenant_id"], schema=SCHEMA)
    op.drop_constraint(op.f("ck_meter_reports_status_known"), "meter_reports", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_meter_reports_status_known"),
        "meter_reports",
        "status IN ('queued', 'sent', 'superseded', 'failed')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    # Before this revision a refused report stayed queued: it goes back to being retried.
    op.execute("UPDATE platform.meter_reports SET status = 'queued' WHERE status = 'failed'")
    op.drop_constraint(op.f("ck_meter_reports_status_known"), "meter_reports", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_meter_reports_status_known"),
        "meter_reports",
        "status IN ('queued', 'sent', 'superseded')",
        schema=SCHEMA,
    )
    op.drop_index("ix_stripe_subscriptions_tenant_id", "stripe_subscriptions", schema=SCHEMA)
    op.drop_table("stripe_subscriptions", schema=SCHEMA)
