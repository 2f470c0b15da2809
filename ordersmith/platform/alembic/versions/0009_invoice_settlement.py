"""Each Stripe invoice knows its subscription, and an invoice can end voided or written off.

A past-due store comes back only when no invoice of its current subscription is left
unpaid after a failed attempt, so `billing_invoices` keeps the subscription that billed
each Stripe invoice (`stripe_subscription_id`; invoices mirrored before this revision
learn it from their next event) and two more ways an invoice stops being owed: `void`
and `uncollectible` (Stripe's `invoice.voided` and `invoice.marked_uncollectible`).

One period per store is unique among the offline ledger's invoices only: Stripe may bill a
period twice (a plan change invoiced at once, prorated), and the second invoice's webhook
failed on the old constraint, so Stripe retried it for days and it was never kept. The
downgrade keeps this narrower uniqueness: revision 0008's code runs on it as it did on the
old constraint, which a store billed twice in one period could not be given back.

Revision ID: 0009_invoice_settlement
Revises: 0008_outbox_row_security
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_invoice_settlement"
down_revision = "0008_outbox_row_security"
branch_labels = None
depends_on = None

SCHEMA = "platform"
PERIOD_PER_SOURCE = "uq_billing_invoices_tenant_id_source_period_start"
LOCAL_PERIOD = "uq_billing_invoices_local_period"


def upgrade() -> None:
    op.add_column(
        "billing_invoices", sa.Column("stripe_subscription_id", sa.String(100), nullable=True), schema=SCHEMA
    )
    op.drop_constraint(op.f("ck_billing_invoices_status_known"), "billing_invoices", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_billing_invoices_status_known"),
        "billing_invoices",
        "status IN ('open', 'paid', 'payment_failed', 'void', 'uncollectible')",
        schema=SCHEMA,
    )
    # Gone already after a downgrade and upgrade again, which keep the index below.
    op.execute(f"ALTER TABLE {SCHEMA}.billing_invoices DROP CONSTRAINT IF EXISTS {PERIOD_PER_SOURCE}")
    op.create_index(
        LOCAL_PERIOD,
        "billing_invoices",
        ["tenant_id", "period_start"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("source = 'local'"),
        if_not_exists=True,
    )


def downgrade() -> None:
    # The local periods' uniqueness stays (see above).
    # Before this revision such an invoice was simply not paid: `open` says that and nothing more.
    op.execute(
        "UPDATE platform.billing_invoices SET status = 'open' WHERE status IN ('void', 'uncollectible')"
    )
    op.drop_constraint(op.f("ck_billing_invoices_status_known"), "billing_invoices", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_billing_invoices_status_known"),
        "billing_invoices",
        "status IN ('open', 'paid', 'payment_failed')",
        schema=SCHEMA,
    )
    op.drop_column("billing_invoices", "stripe_subscription_id", schema=SCHEMA)
