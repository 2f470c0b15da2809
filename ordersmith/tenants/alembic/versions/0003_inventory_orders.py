"""Locations, stock levels, the adjustment ledger, reservations, orders, holds, idempotency keys.

Revision ID: 0003_inventory_orders
Revises: 0002_catalog_customers
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_inventory_orders"
down_revision = "0002_catalog_customers"
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _uuid(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, postgresql.UUID(as_uuid=True), nullable=nullable)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def _actor(prefix: str, *, nullable: bool = False) -> list[sa.Column[object]]:
    return [
        sa.Column(f"{prefix}_type", sa.String(20), nullable=nullable),
        sa.Column(f"{prefix}_id", sa.String(100), nullable=True),
    ]


def _inventory() -> None:
    op.add_column(
        "variants",
        sa.Column("allow_backorder", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_table(
        "locations",
        _uuid("id"),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("address", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint("kind IN ('warehouse', 'store')", name=op.f("ck_locations_kind_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
    )
    op.create_index("uq_locations_code_lower", "locations", [sa.text("lower(code)")], unique=True)
    op.create_index("ix_locations_priority", "locations", ["priority", "id"])

    op.create_table(
        "stock_levels",
        _uuid("variant_id"),
        _uuid("location_id"),
        _count("on_hand"),
        _count("reserved"),
        _count("safety_stock"),
        _timestamp("updated_at"),
        sa.CheckConstraint("on_hand >= 0", name=op.f("ck_stock_levels_on_hand_not_negative")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_stock_levels_reserved_not_negative")),
        sa.CheckConstraint("safety_stock >= 0", name=op.f("ck_stock_levels_safety_stock_not_negative")),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_stock_levels_variant_id_variants")
        ),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_stock_levels_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("variant_id", "location_id", name=op.f("pk_stock_levels")),
    )
    op.create_index("ix_stock_levels_location_id", "stock_levels", ["location_id"])

    op.create_table(
        "inventory_adjustments",
        _uuid("id"),
        _uuid("variant_id"),
        _uuid("location_id"),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("on_hand_after", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("reference", sa.String(100), nullable=True),
        *_actor("actor"),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "kind IN ('receive', 'count', 'damage', 'correction', 'shipment', 'return')",
            name=op.f("ck_inventory_adjustments_kind_known"),
        ),
        sa.CheckConstraint(
            "quantity <> 0 OR kind = 'count'", name=op.f("ck_inventory_adjustments_quantity_changes_stock")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id", "location_id"],
            ["stock_levels.variant_id", "stock_levels.location_id"],
            name=op.f("fk_inventory_adjustments_variant_id_stock_levels"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_adjustments")),
    )
    op.create_index(
        "ix_inventory_adjustments_stock_created",
        "inventory_adjustments",
        ["variant_id", "location_id", "created_at", "id"],
    )


def _orders() -> None:
    op.create_table(
        "orders",
        _uuid("id"),
        sa.Column("number", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("payment_status", sa.String(20), server_default="unpaid", nullable=False),
        sa.Column("fulfillment_status", sa.String(20), server_default="unfulfilled", nullable=False),
        _uuid("customer_id"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal_amount", sa.BigInteger(), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("shipping_address", postgresql.JSONB(), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("external_reference", sa.String(200), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.String(50)), server_default=sa.text("'{}'"), nullable=False),
        _count("open_hold_count"),
        _count("touch_count"),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('draft', 'placed', 'confirmed', 'completed', 'cancelled', 'archived')",
            name=op.f("ck_orders_status_known"),
        ),
        sa.CheckConstraint(
            "payment_status IN ('unpaid', 'authorized', 'partially_paid', 'paid', 'partially_refunded', "
            "'refunded', 'voided', 'requires_action', 'overpaid')",
            name=op.f("ck_orders_payment_status_known"),
        ),
        sa.CheckConstraint(
            "fulfillment_status IN ('unfulfilled', 'partially_fulfilled', 'fulfilled')",
            name=op.f("ck_orders_fulfillment_status_known"),
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_orders_currency_iso4217")),
        sa.CheckConstraint(
            "subtotal_amount >= 0 AND total_amount >= 0", name=op.f("ck_orders_amounts_not_negative")
        ),
        sa.CheckConstraint("touch_count >= 0", name=op.f("ck_orders_touch_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_orders_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_orders_number")),
    )
    for name, columns in [
        ("ix_orders_created_at_id", ["created_at", "id"]),
        ("ix_orders_status_created_at_id", ["status", "created_at", "id"]),
        ("ix_orders_payment_status_created_at_id", ["payment_status", "created_at", "id"]),
        ("ix_orders_fulfillment_status_created_at_id", ["fulfillment_status", "created_at", "id"]),
        ("ix_orders_customer_id_created_at_id", ["customer_id", "created_at", "id"]),
        ("ix_orders_channel_created_at_id", ["channel", "created_at", "id"]),
        ("ix_orders_external_reference", ["external_reference"]),
    ]:
        op.create_index(name, "orders", columns)
    op.create_index("ix_orders_tags", "orders", ["tags"], postgresql_using="gin")
    op.create_index(
        "ix_orders_open_holds_created_at_id",
        "orders",
        ["created_at", "id"],
        postgresql_where=sa.text("open_hold_count > 0"),
    )

    op.create_table(
        "order_lines",
        _uuid("id"),
        _uuid("order_id"),
        sa.Column("line_number", sa.Integer(), nullable=False),
        _uuid("variant_id"),
        sa.Column("sku_code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("unit_price_amount", sa.BigInteger(), nullable=False),
        sa.Column("quantity_ordered", sa.Integer(), nullable=False),
        _count("quantity_cancelled"),
        _count("quantity_allocated"),
        _count("quantity_backordered"),
        _count("quantity_shipped"),
        _count("quantity_returned"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint("quantity_ordered > 0", name=op.f("ck_order_lines_quantity_ordered_positive")),
        sa.CheckConstraint(
            "quantity_cancelled >= 0 AND quantity_allocated >= 0 AND quantity_backordered >= 0 "
            "AND quantity_shipped >= 0 AND quantity_returned >= 0",
            name=op.f("ck_order_lines_buckets_not_negative"),
        ),
        sa.CheckConstraint(
            "quantity_ordered - quantity_cancelled "
            "= quantity_allocated + quantity_backordered + quantity_shipped",
            name=op.f("ck_order_lines_buckets_add_up"),
        ),
        sa.CheckConstraint(
            "quantity_returned <= quantity_shipped", name=op.f("ck_order_lines_returned_within_shipped")
        ),
        sa.CheckConstraint("unit_price_amount >= 0", name=op.f("ck_order_lines_unit_price_not_negative")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_lines_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_order_lines_variant_id_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
    )
    op.create_index(
        "uq_order_lines_order_id_line_number", "order_lines", ["order_id", "line_number"], unique=True
    )
    op.create_index("ix_order_lines_variant_id_order_id", "order_lines", ["variant_id", "order_id"])

    op.create_table(
        "reservations",
        _uuid("id"),
        _uuid("order_id"),
        _uuid("line_id"),
        _uuid("variant_id"),
        _uuid("location_id"),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_reservations_quantity_not_negative")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_reservations_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["line_id"], ["order_lines.id"], name=op.f("fk_reservations_line_id_order_lines")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id", "location_id"],
            ["stock_levels.variant_id", "stock_levels.location_id"],
            name=op.f("fk_reservations_variant_id_stock_levels"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    op.create_index("ix_reservations_line_id", "reservations", ["line_id"])
    op.create_index("ix_reservations_order_id", "reservations", ["order_id"])
    op.create_index(
        "ix_reservations_stock_live",
        "reservations",
        ["variant_id", "location_id"],
        postgresql_where=sa.text("quantity > 0"),
    )

    op.create_table(
        "order_events",
        _uuid("id"),
        _uuid("order_id"),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("changes", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        *_actor("actor"),
        sa.Column("is_touch", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_events_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    op.create_index(
        "ix_order_events_order_id_created_at_id", "order_events", ["order_id", "created_at", "id"]
    )

    op.create_table(
        "order_holds",
        _uuid("id"),
        _uuid("order_id"),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("release_role", sa.String(20), nullable=False),
        *_actor("placed_by"),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        *_actor("released_by", nullable=True),
        sa.Column("release_note", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "type IN ('fraud_review', 'payment', 'address', 'customer_request', 'stock', 'manual')",
            name=op.f("ck_order_holds_type_known"),
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_holds_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_holds")),
    )
    op.create_index(
        "ix_order_holds_order_id_open",
        "order_holds",
        ["order_id"],
        postgresql_where=sa.text("released_at IS NULL"),
    )


def upgrade() -> None:
    _inventory()
    _orders()
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    for table in (
        "order_holds",
        "order_events",
        "reservations",
        "order_lines",
        "orders",
        "inventory_adjustments",
        "stock_levels",
        "locations",
    ):
        op.drop_table(table)
    op.drop_column("variants", "allow_backorder")
