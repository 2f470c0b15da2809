"""Plan state of each store, entitlement overrides.

Each tenant gets its billing status (active, past_due since when, unpaid, canceled) and
an entitlements revision bumped on every plan or override change; vendor staff's
per-tenant overrides and the trial emails already sent get tables of their own.

Revision ID: 0004_entitlements
Revises: 0003_attempt_counters
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_entitlements"
down_revision = "0003_attempt_counters"
branch_labels = None
depends_on = None

SCHEMA = "platform"


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("billing_status", sa.String(20), server_default="active", nullable=False),
        schema=SCHEMA,
    )
    op.add_column("tenants", sa.Column("past_due_since", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column(
        "tenants",
        sa.Column("entitlements_revision", sa.Integer(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_tenants_billing_status_known"),
        "tenants",
        "billing_status IN ('active', 'past_due', 'unpaid', 'canceled')",
        schema=SCHEMA,
    )
    op.create_table(
        "entitlement_overrides",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("limit_value", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.CheckConstraint("kind IN ('feature', 'limit')", name=op.f("ck_entitlement_overrides_kind_known")),
        sa.CheckConstraint(
            "(kind = 'feature' AND enabled IS NOT NULL AND limit_value IS NULL)"
            " OR (kind = 'limit' AND enabled IS NULL AND (limit_value IS NULL OR limit_value >= 0))",
            name=op.f("ck_entitlement_overrides_value_fits_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["platform.tenants.id"],
            name=op.f("fk_entitlement_overrides_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlement_overrides")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_entitlement_overrides_live",
        "entitlement_overrides",
        ["tenant_id", "key"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "trial_notices",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('ends_in_3_days', 'ends_in_1_day', 'ended')", name=op.f("ck_trial_notices_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["platform.tenants.id"],
            name=op.f("fk_trial_notices_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_notices")),
        sa.UniqueConstraint(
            "tenant_id", "trial_ends_at", "kind", name=op.f("uq_trial_notices_tenant_id_trial_ends_at_kind")
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("trial_notices", schema=SCHEMA)
    op.drop_index("uq_entitlement_overrides_live", table_name="entitlement_overrides", schema=SCHEMA)
    op.drop_table("entitlement_overrides", schema=SCHEMA)
    op.drop_constraint(op.f("ck_tenants_billing_status_known"), "tenants", schema=SCHEMA)
    for column in ("entitlements_revision", "past_due_since", "billing_status"):
        op.drop_column("tenants", column, schema=SCHEMA)
