"""Find the order lines still waiting for a SKU's stock (backordered) without reading them all.

`GET /api/v1/inventory?sku=` shows how many units of a SKU are backordered: the sum of
`order_lines.quantity_backordered`. Few lines ever have backordered units, so a partial
index holding only those keeps the sum one short index scan for any SKU, however many
lines it has sold on.

Revision ID: 0014_backordered_lines
Revises: 0013_touches_at_completion
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_backordered_lines"
down_revision = "0013_touches_at_completion"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_order_lines_backordered_variant_id",
        "order_lines",
        ["variant_id"],
        postgresql_where=sa.text("quantity_backordered > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_order_lines_backordered_variant_id", table_name="order_lines")
