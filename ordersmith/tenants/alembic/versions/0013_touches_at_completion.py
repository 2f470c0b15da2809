"""An order's touches up to its completion, kept apart from the touches that follow.

The touchless-order rate counts orders completed with zero touches. It read
`touch_count`, which keeps growing after completion: a person archiving an untouched
completed order, or taking a return on it, turned it "touched" after the fact.
`touches_at_completion` is `touch_count` as the order completed; NULL until then.

Completed orders are filled in from their timelines: the distinct moments at which a
person changed the order up to its `completed` entry. The entries of one request share
their transaction's time, so this counts requests, as `touch_count` does; the bound is
the entry's time, not `completed_at`, which the app's clock wrote, not the database's.

Roll it out with the code that writes the column: an instance still running the code
before it fails to complete orders (the CHECK wants the count with `completed_at`).

Revision ID: 0013_touches_at_completion
Revises: 0012_case_free_order_tags
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_touches_at_completion"
down_revision = "0012_case_free_order_tags"
branch_labels = None
depends_on = None


# Run by the upgrade; a test runs it on orders completed through the API.
FILL_IN = (
    "UPDATE orders SET touches_at_completion = ("
    " SELECT count(DISTINCT touch.created_at) FROM order_events AS touch"
    " WHERE touch.order_id = orders.id AND touch.is_touch AND touch.created_at <= ("
    "  SELECT max(done.created_at) FROM order_events AS done"
    "  WHERE done.order_id = orders.id AND done.kind = 'completed'"
    " )"
    ") WHERE completed_at IS NOT NULL"
)


def upgrade() -> None:
    op.add_column("orders", sa.Column("touches_at_completion", sa.Integer(), nullable=True))
    op.execute(FILL_IN)
    op.create_check_constraint(
        "ck_orders_touches_at_completion_when_completed",
        "orders",
        "(completed_at IS NULL) = (touches_at_completion IS NULL) AND touches_at_completion >= 0",
    )


def downgrade() -> None:
    op.drop_constraint("ck_orders_touches_at_completion_when_completed", "orders", type_="check")
    op.drop_column("orders", "touches_at_completion")
