"""A rotated webhook secret can keep signing beside the new one for a while.

Revision ID: 0009_webhook_secret_overlap
Revises: 0008_partial_order_indexes
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_webhook_secret_overlap"
down_revision = "0008_partial_order_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True))
    op.add_column(
        "webhook_endpoints",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_check_constraint(
        "ck_webhook_endpoints_previous_secret_has_expiry",
        "webhook_endpoints",
        "(previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint("ck_webhook_endpoints_previous_secret_has_expiry", "webhook_endpoints", type_="check")
    op.drop_column("webhook_endpoints", "previous_secret_expires_at")
    op.drop_column("webhook_endpoints", "previous_secret_sealed")
