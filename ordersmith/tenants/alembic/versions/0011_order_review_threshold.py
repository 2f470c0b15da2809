"""A store may hold orders over an amount for review before they are confirmed.

`store_settings.review_orders_over_amount`: minor units of the store's default
currency; NULL (the default) holds nothing.

Revision ID: 0011_order_review_threshold
Revises: 0010_append_only_stock_ledger
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_order_review_threshold"
down_revision = "0010_append_only_stock_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("store_settings", sa.Column("review_orders_over_amount", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        "ck_store_settings_review_threshold_positive",
        "store_settings",
        "review_orders_over_amount > 0",
    )


def downgrade() -> None:
    op.drop_constraint("ck_store_settings_review_threshold_positive", "store_settings", type_="check")
    op.drop_column("store_settings", "review_orders_over_amount")
