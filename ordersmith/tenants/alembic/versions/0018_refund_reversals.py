"""A refund the provider fails after the ledger counted it is taken back by a `refund_reversal` row.

`payment_transactions.kind` gains `refund_reversal`: a success row giving the merchant back
a counted refund the provider later reported `failed` or `canceled`, its `provider_reference`
the refund's id (a Stripe `re_…`). A partial unique index on that reference among reversals
means a refund is taken back at most once, however many events report its failure.

The downgrade refuses while any reversal exists: the earlier code cannot read one, and
dropping it would count again money the customer never got.

Revision ID: 0018_refund_reversals
Revises: 0017_provider_refund_ids
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_refund_reversals"
down_revision = "0017_provider_refund_ids"
branch_labels = None
depends_on = None

KINDS = "kind IN ('authorize', 'capture', 'void', 'refund', 'chargeback', 'refund_reversal')"
EARLIER_KINDS = "kind IN ('authorize', 'capture', 'void', 'refund', 'chargeback')"

# Run by the downgrade (rendered offline, so the check is SQL).
REFUSE_WITH_REVERSALS = (
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM payment_transactions WHERE kind = 'refund_reversal') THEN"
    " RAISE EXCEPTION 'payment_transactions holds refund reversals; revision 0017 cannot represent them,"
    " so keep this revision (the customers never got those refunds)'; END IF; END $$"
)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_payment_transactions_kind_known"), "payment_transactions", type_="check")
    op.create_check_constraint(op.f("ck_payment_transactions_kind_known"), "payment_transactions", KINDS)
    op.create_index(
        "uq_payment_transactions_refund_reversal",
        "payment_transactions",
        ["provider_reference"],
        unique=True,
        postgresql_where=sa.text("kind = 'refund_reversal'"),
    )


def downgrade() -> None:
    op.execute(REFUSE_WITH_REVERSALS)
    op.drop_index("uq_payment_transactions_refund_reversal", table_name="payment_transactions")
    op.drop_constraint(op.f("ck_payment_transactions_kind_known"), "payment_transactions", type_="check")
    op.create_check_constraint(
        op.f("ck_payment_transactions_kind_known"), "payment_transactions", EARLIER_KINDS
    )
