"""Payments and their transaction ledger, payment provider settings.

Revision ID: 0004_payments
Revises: 0003_inventory_orders
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_payments"
down_revision = "0003_inventory_orders"
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _uuid(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, postgresql.UUID(as_uuid=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "payments",
        _uuid("id"),
        _uuid("order_id"),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("method", sa.String(100), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("provider_reference", sa.String(255), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by_type", sa.String(20), nullable=False),
        sa.Column("created_by_id", sa.String(100), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint("provider IN ('manual', 'stripe')", name=op.f("ck_payments_provider_known")),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_payments_currency_iso4217")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_payments_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    op.create_index("ix_payments_order_id_created_at", "payments", ["order_id", "created_at"])
    op.create_index(
        "uq_payments_provider_reference", "payments", ["provider", "provider_reference"], unique=True
    )

    op.create_table(
        "payment_transactions",
        _uuid("id"),
        _uuid("payment_id"),
        _uuid("order_id"),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _uuid("request_id", nullable=True),
        _uuid("retry_of_id", nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("provider_reference", sa.String(255), nullable=True),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_type", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(100), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "kind IN ('authorize', 'capture', 'void', 'refund', 'chargeback')",
            name=op.f("ck_payment_transactions_kind_known"),
        ),
        sa.CheckConstraint(
            "state IN ('request', 'success', 'failure', 'requires_action')",
            name=op.f("ck_payment_transactions_state_known"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_payment_transactions_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_transactions_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_payment_transactions_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["payment_transactions.id"],
            name=op.f("fk_payment_transactions_request_id_payment_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["retry_of_id"],
            ["payment_transactions.id"],
            name=op.f("fk_payment_transactions_retry_of_id_payment_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_transactions")),
    )
    op.create_index(
        "ix_payment_transactions_payment_id_created_at",
        "payment_transactions",
        ["payment_id", "created_at", "id"],
    )
    op.create_index("ix_payment_transactions_order_id", "payment_transactions", ["order_id"])
    op.create_index("ix_payment_transactions_idempotency_key", "payment_transactions", ["idempotency_key"])
    op.create_index(
        "ix_payment_transactions_provider_reference", "payment_transactions", ["provider_reference"]
    )

    op.create_table(
        "payment_settings",
        sa.Column("id", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "enabled_providers",
            postgresql.ARRAY(sa.String(20)),
            server_default=sa.text("'{manual}'"),
            nullable=False,
        ),
        sa.Column("capture_policy", sa.String(20), server_default="at_placement", nullable=False),
        sa.Column("stripe_secret_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("stripe_webhook_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("stripe_secret_key_hint", sa.String(40), nullable=True),
        _timestamp("updated_at"),
        sa.CheckConstraint("id = 1", name=op.f("ck_payment_settings_single_row")),
        sa.CheckConstraint(
            "capture_policy IN ('at_placement', 'at_shipment')",
            name=op.f("ck_payment_settings_capture_policy_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_settings")),
    )

    op.create_table(
        "payment_webhook_events",
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(100), nullable=False),
        _timestamp("received_at"),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_payment_webhook_events")),
    )


def downgrade() -> None:
    op.drop_table("payment_webhook_events")
    op.drop_table("payment_settings")
    op.drop_table("payment_transactions")
    op.drop_table("payments")
