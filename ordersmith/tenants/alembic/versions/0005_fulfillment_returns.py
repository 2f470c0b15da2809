"""Fulfillment orders, shipments, packages, returns.

Revision ID: 0005_fulfillment_returns
Revises: 0004_payments
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_fulfillment_returns"
down_revision = "0004_payments"
branch_labels = None
depends_on = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _uuid(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, postgresql.UUID(as_uuid=True), nullable=nullable)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def _actor(prefix: str) -> list[sa.Column[object]]:
    return [
        sa.Column(f"{prefix}_type", sa.String(20), nullable=False),
        sa.Column(f"{prefix}_id", sa.String(100), nullable=True),
    ]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def _check(table: str, name: str, condition: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(condition, name=op.f(f"ck_{table}_{name}"))


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _fulfillment() -> None:
    op.create_table(
        "fulfillment_orders",
        _uuid("id"),
        _uuid("order_id"),
        _uuid("location_id"),
        sa.Column("status", sa.String(20), nullable=False),
        _timestamp("closed_at", nullable=True),
        _timestamp("cancelled_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _check(
            "fulfillment_orders",
            "status_known",
            "status IN ('open', 'in_progress', 'on_hold', 'closed', 'cancelled')",
        ),
        _fk("fulfillment_orders", "order_id", "orders"),
        _fk("fulfillment_orders", "location_id", "locations"),
        _pk("fulfillment_orders"),
    )
    op.create_index("ix_fulfillment_orders_order_id", "fulfillment_orders", ["order_id"])
    op.create_index(
        "uq_fulfillment_orders_live_location",
        "fulfillment_orders",
        ["order_id", "location_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('open', 'in_progress', 'on_hold')"),
    )
    op.create_index(
        "ix_fulfillment_orders_location_status_created",
        "fulfillment_orders",
        ["location_id", "status", "created_at", "id"],
    )
    op.create_index("ix_fulfillment_orders_created_at_id", "fulfillment_orders", ["created_at", "id"])

    op.create_table(
        "fulfillment_order_lines",
        _uuid("id"),
        _uuid("fulfillment_order_id"),
        _uuid("order_line_id"),
        _count("quantity_shipped"),
        _count("quantity_rejected"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _check(
            "fulfillment_order_lines",
            "quantities_not_negative",
            "quantity_shipped >= 0 AND quantity_rejected >= 0",
        ),
        _fk("fulfillment_order_lines", "fulfillment_order_id", "fulfillment_orders"),
        _fk("fulfillment_order_lines", "order_line_id", "order_lines"),
        _pk("fulfillment_order_lines"),
    )
    op.create_index(
        "uq_fulfillment_order_lines_order_line",
        "fulfillment_order_lines",
        ["fulfillment_order_id", "order_line_id"],
        unique=True,
    )
    op.create_index("ix_fulfillment_order_lines_order_line_id", "fulfillment_order_lines", ["order_line_id"])

    op.create_table(
        "shipments",
        _uuid("id"),
        _uuid("order_id"),
        _uuid("fulfillment_order_id"),
        _uuid("location_id"),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("carrier", sa.String(100), nullable=False),
        sa.Column("service", sa.String(100), nullable=True),
        sa.Column("tracking_number", sa.String(100), nullable=True),
        sa.Column("tracking_url", sa.String(2000), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        _timestamp("delivered_at", nullable=True),
        *_actor("created_by"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _check("shipments", "status_known", "status IN ('shipped', 'delivered')"),
        _check("shipments", "delivered_when_dated", "(status = 'delivered') = (delivered_at IS NOT NULL)"),
        _fk("shipments", "order_id", "orders"),
        _fk("shipments", "fulfillment_order_id", "fulfillment_orders"),
        _fk("shipments", "location_id", "locations"),
        _pk("shipments"),
    )
    op.create_index("ix_shipments_order_id_created_at_id", "shipments", ["order_id", "created_at", "id"])
    op.create_index("ix_shipments_fulfillment_order_id", "shipments", ["fulfillment_order_id"])

    op.create_table(
        "shipment_lines",
        _uuid("id"),
        _uuid("shipment_id"),
        _uuid("order_line_id"),
        sa.Column("quantity", sa.Integer(), nullable=False),
        _check("shipment_lines", "quantity_positive", "quantity > 0"),
        _fk("shipment_lines", "shipment_id", "shipments"),
        _fk("shipment_lines", "order_line_id", "order_lines"),
        _pk("shipment_lines"),
    )
    op.create_index("ix_shipment_lines_shipment_id", "shipment_lines", ["shipment_id"])
    op.create_index("ix_shipment_lines_order_line_id", "shipment_lines", ["order_line_id"])

    op.create_table(
        "shipment_packages",
        _uuid("id"),
        _uuid("shipment_id"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight_grams", sa.Integer(), nullable=True),
        sa.Column("length_mm", sa.Integer(), nullable=True),
        sa.Column("width_mm", sa.Integer(), nullable=True),
        sa.Column("height_mm", sa.Integer(), nullable=True),
        _check(
            "shipment_packages",
            "measures_positive",
            "(weight_grams IS NULL OR weight_grams > 0) AND (length_mm IS NULL OR length_mm > 0) "
            "AND (width_mm IS NULL OR width_mm > 0) AND (height_mm IS NULL OR height_mm > 0)",
        ),
        _fk("shipment_packages", "shipment_id", "shipments"),
        _pk("shipment_packages"),
    )
    op.create_index("ix_shipment_packages_shipment_id", "shipment_packages", ["shipment_id"])


def _returns() -> None:
    op.create_table(
        "returns",
        _uuid("id"),
        sa.Column("number", sa.BigInteger(), sa.Identity(), nullable=False),
        _uuid("order_id"),
        _uuid("customer_id"),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("carrier", sa.String(100), nullable=True),
        sa.Column("tracking_number", sa.String(100), nullable=True),
        sa.Column("tracking_url", sa.String(2000), nullable=True),
        sa.Column("refunded_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("store_credit_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _uuid("exchange_order_id", nullable=True),
        *_actor("requested_by"),
        _timestamp("approved_at", nullable=True),
        _timestamp("declined_at", nullable=True),
        _timestamp("in_transit_at", nullable=True),
        _timestamp("received_at", nullable=True),
        _timestamp("closed_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _check(
            "returns",
            "status_known",
            "status IN ('requested', 'approved', 'declined', 'in_transit', 'received', 'closed')",
        ),
        _check("returns", "currency_iso4217", "currency ~ '^[A-Z]{3}$'"),
        _check(
            "returns",
            "resolved_amounts_not_negative",
            "refunded_amount >= 0 AND store_credit_amount >= 0",
        ),
        _fk("returns", "order_id", "orders"),
        _fk("returns", "customer_id", "customers"),
        _fk("returns", "exchange_order_id", "orders"),
        _pk("returns"),
        sa.UniqueConstraint("number", name=op.f("uq_returns_number")),
    )
    op.create_index("ix_returns_order_id_created_at_id", "returns", ["order_id", "created_at", "id"])
    op.create_index("ix_returns_customer_id_created_at_id", "returns", ["customer_id", "created_at", "id"])
    op.create_index("ix_returns_status_created_at_id", "returns", ["status", "created_at", "id"])

    op.create_table(
        "return_lines",
        _uuid("id"),
        _uuid("return_id"),
        _uuid("order_line_id"),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason_code", sa.String(30), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        _check("return_lines", "quantity_positive", "quantity > 0"),
        _check(
            "return_lines",
            "reason_code_known",
            "reason_code IN ('damaged', 'defective', 'wrong_item', 'not_as_described', 'size_fit', "
            "'changed_mind', 'arrived_late', 'other')",
        ),
        _fk("return_lines", "return_id", "returns"),
        _fk("return_lines", "order_line_id", "order_lines"),
        _pk("return_lines"),
    )
    op.create_index("ix_return_lines_return_id", "return_lines", ["return_id"])
    op.create_index("ix_return_lines_order_line_id", "return_lines", ["order_line_id"])

    op.create_table(
        "return_dispositions",
        _uuid("id"),
        _uuid("return_id"),
        _uuid("return_line_id"),
        sa.Column("disposition", sa.String(20), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        _uuid("location_id", nullable=True),
        _timestamp("created_at"),
        _check("return_dispositions", "quantity_positive", "quantity > 0"),
        _check(
            "return_dispositions",
            "disposition_known",
            "disposition IN ('restock', 'damaged', 'missing', 'inspect')",
        ),
        _check(
            "return_dispositions",
            "restock_names_location",
            "(disposition = 'restock') = (location_id IS NOT NULL)",
        ),
        _fk("return_dispositions", "return_id", "returns"),
        _fk("return_dispositions", "return_line_id", "return_lines"),
        _fk("return_dispositions", "location_id", "locations"),
        _pk("return_dispositions"),
    )
    op.create_index("ix_return_dispositions_return_id", "return_dispositions", ["return_id"])

    op.create_table(
        "return_resolutions",
        _uuid("id"),
        _uuid("return_id"),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "payment_transaction_ids",
            postgresql.ARRAY(postgresql.UUID(as_uuid=True)),
            server_default=sa.text("'{}'::uuid[]"),
            nullable=False,
        ),
        _uuid("exchange_order_id", nullable=True),
        *_actor("actor"),
        _timestamp("created_at"),
        _check("return_resolutions", "kind_known", "kind IN ('refund', 'store_credit', 'exchange')"),
        _check("return_resolutions", "amount_not_negative", "amount >= 0"),
        _check(
            "return_resolutions",
            "exchange_names_order",
            "(kind = 'exchange') = (exchange_order_id IS NOT NULL)",
        ),
        _fk("return_resolutions", "return_id", "returns"),
        _fk("return_resolutions", "exchange_order_id", "orders"),
        _pk("return_resolutions"),
    )
    op.create_index("ix_return_resolutions_return_id", "return_resolutions", ["return_id"])

    op.create_table(
        "store_credit_entries",
        _uuid("id"),
        _uuid("customer_id"),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        _uuid("return_id", nullable=True),
        _uuid("order_id", nullable=True),
        *_actor("actor"),
        _timestamp("created_at"),
        _check("store_credit_entries", "amount_not_zero", "amount <> 0"),
        _check("store_credit_entries", "currency_iso4217", "currency ~ '^[A-Z]{3}$'"),
        _fk("store_credit_entries", "customer_id", "customers"),
        _fk("store_credit_entries", "return_id", "returns"),
        _fk("store_credit_entries", "order_id", "orders"),
        _pk("store_credit_entries"),
    )
    op.create_index(
        "ix_store_credit_entries_customer_id_created_at_id",
        "store_credit_entries",
        ["customer_id", "created_at", "id"],
    )


def upgrade() -> None:
    _fulfillment()
    _returns()


def downgrade() -> None:
    for table in (
        "store_credit_entries",
        "return_resolutions",
        "return_dispositions",
        "return_lines",
        "returns",
        "shipment_packages",
        "shipment_lines",
        "shipments",
        "fulfillment_order_lines",
        "fulfillment_orders",
    ):
        op.drop_table(table)
