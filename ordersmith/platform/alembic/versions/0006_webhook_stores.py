"""The webhook sender's list of stores: those with (or lately with) an active endpoint.

Every existing store is marked: the sender removes the marks of stores without an
active endpoint once they are older than `webhook_stores.UNMARK_AFTER`, so no store
that already has endpoints waits for a change to be sent to again.

Revision ID: 0006_webhook_stores
Revises: 0005_usage_billing
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_webhook_stores"
down_revision = "0005_usage_billing"
branch_labels = None
depends_on = None

SCHEMA = "platform"


def upgrade() -> None:
    op.create_table(
        "webhook_stores",
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["platform.tenants.id"],
            name=op.f("fk_webhook_stores_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_webhook_stores")),
        schema=SCHEMA,
    )
    op.execute("INSERT INTO platform.webhook_stores (tenant_id) SELECT id FROM platform.tenants")


def downgrade() -> None:
    op.drop_table("webhook_stores", schema=SCHEMA)
