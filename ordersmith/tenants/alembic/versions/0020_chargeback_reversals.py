"""How a dispute ended is one `chargeback_reversal` row: the bank gave the money back, or kept it.

`payment_transactions.kind` gains `chargeback_reversal`: Stripe's `charge.dispute.closed`
is written as a success when the chargeback came back (a dispute won, an inquiry closed
without becoming one) and as a failure when the bank kept it (a dispute lost), its
`provider_reference` the dispute's id (a Stripe `dp_…`). A partial unique index on that
reference among closings means a dispute is closed at most once, however many events say so.

The downgrade refuses while any closing exists: the earlier code cannot read one, and
dropping a won dispute's row would count again as taken money the bank gave back.

Revision ID: 0020_chargeback_reversals
Revises: 0019_ledger_times_at_insert
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_chargeback_reversals"
down_revision = "0019_ledger_times_at_insert"
branch_labels = None
depends_on = None

KINDS = (
    "kind IN ('authorize', 'capture', 'void', 'refund', 'chargeback', 'refund_reversal',"
    " 'chargeback_reversal')"
)
EARLIER_KINDS = "kind IN ('authorize', 'capture', 'void', 'refund', 'chargeback', 'refund_reversal')"

# Run by the downgrade (rendered offline, so the check is SQL).
REFUSE_WITH_CLOSINGS = (
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM payment_transactions WHERE kind = 'chargeback_reversal') THEN"
    " RAISE EXCEPTION 'payment_transactions holds closed disputes; revision 0019 cannot represent them,"
    " so keep this revision (the money of a won dispute would count as taken again)'; END IF; END $$"
)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_payment_transactions_kind_known"), "payment_transactions", type_="check")
    op.create_check_constraint(op.f("ck_payment_transactions_kind_known"), "payment_transactions", KINDS)
    op.create_index(
        "uq_payment_transactions_chargeback_reversal",
        "payment_transactions",
        ["provider_reference"],
        unique=True,
        postgresql_where=sa.text("kind = 'chargeback_reversal'"),
    )


def downgrade() -> None:
    op.execute(REFUSE_WITH_CLOSINGS)
    op.drop_index("uq_payment_transactions_chargeback_reversal", table_name="payment_transactions")
    op.drop_constraint(op.f("ck_payment_transactions_kind_known"), "payment_transactions", type_="check")
    op.create_check_constraint(
        op.f("ck_payment_transactions_kind_known"), "payment_transactions", EARLIER_KINDS
    )
