"""Draft orders: a line bucket for units not reserved until the draft is placed.

Revision ID: 0007_draft_orders
Revises: 0006_webhook_endpoints
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_draft_orders"
down_revision = "0006_webhook_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "order_lines",
        sa.Column("quantity_pending", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.drop_constraint(op.f("ck_order_lines_buckets_not_negative"), "order_lines", type_="check")
    op.drop_constraint(op.f("ck_order_lines_buckets_add_up"), "order_lines", type_="check")
    op.create_check_constraint(
        op.f("ck_order_lines_buckets_not_negative"),
        "order_lines",
        "quantity_cancelled >= 0 AND quantity_pending >= 0 AND quantity_allocated >= 0 "
        "AND quantity_backordered >= 0 AND quantity_shipped >= 0 AND quantity_returned >= 0",
    )
    op.create_check_constraint(
        op.f("ck_order_lines_buckets_add_up"),
        "order_lines",
        "quantity_ordered - quantity_cancelled "
        "= quantity_pending + quantity_allocated + quantity_backordered + quantity_shipped",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_order_lines_buckets_add_up"), "order_lines", type_="check")
    op.drop_constraint(op.f("ck_order_lines_buckets_not_negative"), "order_lines", type_="check")
    op.create_check_constraint(
        op.f("ck_order_lines_buckets_not_negative"),
        "order_lines",
        "quantity_cancelled >= 0 AND quantity_allocated >= 0 AND quantity_backordered >= 0 "
        "AND quantity_shipped >= 0 AND quantity_returned >= 0",
    )
    op.create_check_constraint(
        op.f("ck_order_lines_buckets_add_up"),
        "order_lines",
        "quantity_ordered - quantity_cancelled "
        "= quantity_allocated + quantity_backordered + quantity_shipped",
    )
    op.drop_column("order_lines", "quantity_pending")
