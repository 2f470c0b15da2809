"""A store may hold a customer's first order for review before it is confirmed.

`store_settings.review_first_orders`: when true, an order from a customer with no order
placed before (counting the customers merged into them) gets the review rule's
`fraud_review` hold. Off for every store until it turns it on.

Revision ID: 0015_review_first_orders
Revises: 0014_backordered_lines
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_review_first_orders"
down_revision = "0014_backordered_lines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "store_settings",
        sa.Column("review_first_orders", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("store_settings", "review_first_orders")
