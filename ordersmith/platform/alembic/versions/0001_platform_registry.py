"""Tenant registry, placement, outbox, processed events, scheduled jobs.

Revision ID: 0001_platform_registry
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0001_platform_registry"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "platform"


def upgrade() -> None:
    roles = context.config.attributes["roles"]
    op.create_table(
        "tenants",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("slug", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("schema_name", sa.String(63), nullable=False),
        sa.Column("db_role", sa.String(63), nullable=False),
        sa.Column("status", sa.String(20), server_default="active", nullable=False),
        sa.Column("plan", sa.String(40), server_default="trial", nullable=False),
        sa.Column("revision", sa.String(64), nullable=True),
        sa.Column("migrated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("migration_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("slug ~ '^[a-z0-9-]{3,40}$'", name=op.f("ck_tenants_slug_format")),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_tenants_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
        sa.UniqueConstraint("schema_name", name=op.f("uq_tenants_schema_name")),
        sa.UniqueConstraint("db_role", name=op.f("uq_tenants_db_role")),
        schema=SCHEMA,
    )
    op.create_table(
        "tenant_placements",
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("cluster", sa.String(63), nullable=False),
        sa.Column("database_name", sa.String(63), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["platform.tenants.id"],
            name=op.f("fk_tenant_placements_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_placements")),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("publish_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_events")),
        schema=SCHEMA,
    )
    op.create_table(
        "scheduled_jobs",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("last_enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduled_jobs")),
        schema=SCHEMA,
    )
    # Tenant roles may append events, nothing more: they cannot read other tenants' rows.
    op.execute(f'GRANT INSERT ON platform.outbox TO "{roles["tenant_group"]}"')


def downgrade() -> None:
    for table in ("scheduled_jobs", "processed_events", "outbox", "tenant_placements", "tenants"):
        op.drop_table(table, schema=SCHEMA)
