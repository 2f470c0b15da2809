"""Deliveries count their automatic attempts apart from replays.

The wait before the next retry and the dead-lettering after the last are decided by the
automatic attempts alone, so a replay that fails while the merchant is fixing their
receiver no longer uses up the delivery's retries. `attempt_count` still counts every
attempt (it numbers them in the log and the `Ordersmith-Delivery-Attempt` header).

Existing deliveries get their attempts less the replays in their log; an attempt never
logged (its sender died mid-send) stays counted as automatic, as it counted before.

Revision ID: 0021_automatic_webhook_attempts
Revises: 0020_chargeback_reversals
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_automatic_webhook_attempts"
down_revision = "0020_chargeback_reversals"
branch_labels = None
depends_on = None

COUNT_AUTOMATIC_ATTEMPTS = (
    "UPDATE webhook_deliveries SET automatic_attempt_count = GREATEST(attempt_count - ("
    "SELECT count(*) FROM webhook_delivery_attempts AS attempt"
    " WHERE attempt.delivery_id = webhook_deliveries.id AND attempt.trigger = 'replay'), 0)"
    " WHERE attempt_count > 0"
)


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column("automatic_attempt_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.execute(COUNT_AUTOMATIC_ATTEMPTS)
    op.create_check_constraint(
        op.f("ck_webhook_deliveries_automatic_attempt_count_not_negative"),
        "webhook_deliveries",
        "automatic_attempt_count >= 0",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_webhook_deliveries_automatic_attempt_count_not_negative"),
        "webhook_deliveries",
        type_="check",
    )
    op.drop_column("webhook_deliveries", "automatic_attempt_count")
