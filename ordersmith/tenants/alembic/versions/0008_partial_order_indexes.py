"""Orders' external-reference and tag indexes hold only orders that have one.

Revision ID: 0008_partial_order_indexes
Revises: 0007_draft_orders
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_partial_order_indexes"
down_revision = "0007_draft_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_orders_external_reference", "orders")
    op.drop_index("ix_orders_tags", "orders")
    op.create_index(
        "ix_orders_external_reference",
        "orders",
        ["external_reference"],
        postgresql_where=sa.text("external_reference IS NOT NULL"),
    )
    op.create_index(
        "ix_orders_tags",
        "orders",
        ["tags"],
        postgresql_using="gin",
        postgresql_where=sa.text("cardinality(tags) > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_tags", "orders")
    op.drop_index("ix_orders_external_reference", "orders")
    op.create_index("ix_orders_external_reference", "orders", ["external_reference"])
    op.create_index("ix_orders_tags", "orders", ["tags"], postgresql_using="gin")
