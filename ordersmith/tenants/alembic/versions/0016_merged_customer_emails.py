"""A merged duplicate's email can be looked up: it still names the customer it was merged into.

`ix_customers_email_merged` indexes the emails of merged customers only (live customers'
are in `uq_customers_email_live`), for the lookup by email and the check that a new
customer does not take an email a merge absorbed.

Revision ID: 0016_merged_customer_emails
Revises: 0015_review_first_orders
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_merged_customer_emails"
down_revision = "0015_review_first_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_customers_email_merged",
        "customers",
        ["email"],
        postgresql_where=sa.text("merged_into_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_customers_email_merged", table_name="customers")
