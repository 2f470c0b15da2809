"""The stock ledger's times are when each adjustment was written, not when its transaction began.

`inventory_adjustments.created_at` defaulted to `now()`, the transaction's start: an
adjustment that waited for a stock row's lock was dated before one committed while it
waited, so the ledger (newest first) listed them out of order and its newest entry's
`on_hand_after` was not always the shelf's figure. `clock_timestamp()` dates each row when
it is written, which is after the lock it waited for. Rows written before keep their times.

Revision ID: 0019_ledger_times_at_insert
Revises: 0018_refund_reversals
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_ledger_times_at_insert"
down_revision = "0018_refund_reversals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("inventory_adjustments", "created_at", server_default=sa.text("clock_timestamp()"))


def downgrade() -> None:
    op.alter_column("inventory_adjustments", "created_at", server_default=sa.text("now()"))
