"""The order tag filter ignores case: it matches a lower-cased copy of the tags.

Tags are kept as typed (and de-duplicated ignoring case), so `tag=VIP` used to miss an
order tagged `vip`. `tag_keys` is generated from `tags` by the database, so no writer
changes; the partial GIN index moves from `tags` to it. Adding a stored generated column
rewrites `orders` under an exclusive lock: a store's placements and lists wait while its
schema migrates, longer the more orders it has.

Revision ID: 0012_case_free_order_tags
Revises: 0011_order_review_threshold
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_case_free_order_tags"
down_revision = "0011_order_review_threshold"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Created in the tenant's schema, the first on the migration's search_path.
    op.execute(
        "CREATE FUNCTION lower_tags(tags varchar(50)[]) RETURNS varchar(50)[] "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "RETURN ARRAY(SELECT lower(tag) FROM unnest(tags) AS tag)"
    )
    op.add_column(
        "orders",
        sa.Column(
            "tag_keys",
            postgresql.ARRAY(sa.String(50)),
            sa.Computed("lower_tags(tags)", persisted=True),
            nullable=False,
        ),
    )
    op.drop_index("ix_orders_tags", "orders")
    op.create_index(
        "ix_orders_tag_keys",
        "orders",
        ["tag_keys"],
        postgresql_using="gin",
        postgresql_where=sa.text("cardinality(tag_keys) > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_tag_keys", "orders")
    op.create_index(
        "ix_orders_tags",
        "orders",
        ["tags"],
        postgresql_using="gin",
        postgresql_where=sa.text("cardinality(tags) > 0"),
    )
    op.drop_column("orders", "tag_keys")
    op.execute("DROP FUNCTION lower_tags(varchar(50)[])")
