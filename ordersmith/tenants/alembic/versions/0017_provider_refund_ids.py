"""Each refund the provider made is counted once: its id is unique in the ledger.

`payment_transactions.provider_refund_id` names the refund (a Stripe `re_…`) on the one
success row that counts it; the unique index makes a second row counting it impossible,
whether it comes from a retry the provider answered from memory or from a webhook.
`already_counted_amount` is the part of a refund the ledger had counted before that row
(through a refunded total reported without naming refunds), so `amount` stays what the
row adds to the refunded total.

Refunds this app already recorded from the provider's answer carry the refund's id in
`provider_reference`; they are given it in `provider_refund_id` too, so a webhook naming
one of them later is recognised.

Revision ID: 0017_provider_refund_ids
Revises: 0016_merged_customer_emails
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_provider_refund_ids"
down_revision = "0016_merged_customer_emails"
branch_labels = None
depends_on = None

# Run by the upgrade: successes answering a refund request name the refund they counted
# (a reference recorded twice, which the ledger never wrote, would stay unnamed).
FILL_IN = (
    "UPDATE payment_transactions AS refund SET provider_refund_id = refund.provider_reference"
    " WHERE refund.kind = 'refund' AND refund.state = 'success' AND refund.request_id IS NOT NULL"
    " AND refund.provider_reference IS NOT NULL AND NOT EXISTS ("
    "  SELECT 1 FROM payment_transactions AS other"
    "  WHERE other.id <> refund.id AND other.kind = 'refund' AND other.state = 'success'"
    "  AND other.request_id IS NOT NULL AND other.provider_reference = refund.provider_reference"
    " )"
)


def upgrade() -> None:
    op.add_column("payment_transactions", sa.Column("provider_refund_id", sa.String(255), nullable=True))
    op.add_column(
        "payment_transactions",
        sa.Column("already_counted_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_check_constraint(
        "ck_payment_transactions_already_counted_amount_not_negative",
        "payment_transactions",
        "already_counted_amount >= 0",
    )
    op.execute(FILL_IN)
    op.create_index(
        "uq_payment_transactions_provider_refund_id",
        "payment_transactions",
        ["provider_refund_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_payment_transactions_provider_refund_id", table_name="payment_transactions")
    op.drop_constraint(
        "ck_payment_transactions_already_counted_amount_not_negative", "payment_transactions", type_="check"
    )
    op.drop_column("payment_transactions", "already_counted_amount")
    op.drop_column("payment_transactions", "provider_refund_id")
