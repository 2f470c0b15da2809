"""Merchant webhook endpoints, their deliveries and the delivery log.

Revision ID: 0006_webhook_endpoints
Revises: 0005_fulfillment_returns
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_webhook_endpoints"
down_revision = "0005_fulfillment_returns"
branch_labels = None
depends_on = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _uuid(name: str) -> sa.Column[object]:
    return sa.Column(name, postgresql.UUID(as_uuid=True), nullable=False)


def _check(table: str, name: str, condition: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(condition, name=op.f(f"ck_{table}_{name}"))


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        _uuid("id"),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("topics", postgresql.ARRAY(sa.String(100)), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("secret_hint", sa.String(20), nullable=False),
        _timestamp("secret_rotated_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_created_at_id", "webhook_endpoints", ["created_at", "id"])

    op.create_table(
        "webhook_deliveries",
        _uuid("id"),
        _uuid("endpoint_id"),
        _uuid("event_id"),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _timestamp("next_attempt_at", nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("delivered_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _check("webhook_deliveries", "status_known", "status IN ('pending', 'succeeded', 'failed')"),
        _check("webhook_deliveries", "attempt_count_not_negative", "attempt_count >= 0"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "uq_webhook_deliveries_event_endpoint", "webhook_deliveries", ["event_id", "endpoint_id"], unique=True
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_created_at_id",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "webhook_delivery_attempts",
        _uuid("id"),
        _uuid("delivery_id"),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        _check("webhook_delivery_attempts", "trigger_known", "trigger IN ('automatic', 'replay')"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_delivery_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery_attempts")),
    )
    op.create_index(
        "ix_webhook_delivery_attempts_delivery_id_number",
        "webhook_delivery_attempts",
        ["delivery_id", "attempt_number"],
    )


def downgrade() -> None:
    for table in ("webhook_delivery_attempts", "webhook_deliveries", "webhook_endpoints"):
        op.drop_table(table)
