"""Tables of the inventory context.

`on_hand` is a running total of the adjustment ledger and `reserved` a running total
of live reservations; both totals sit on `stock_levels` so that a reservation is one
conditional UPDATE, and the invariants (total = ledger sum) are checked by tests.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase

LOCATION_KINDS = ("warehouse", "store")
# Why on_hand changed. Merchants record the first four; shipments and returns come
# from fulfillment and returns.
ADJUSTMENT_KINDS = ("receive", "count", "damage", "correction", "shipment", "return")


class Location(TenantBase):
    """A place stock is kept: a warehouse or a store; lower priority numbers are tried first."""

    __tablename__ = "locations"
    __table_args__ = (
        CheckConstraint(f"kind IN {LOCATION_KINDS}", name="kind_known"),
        Index("uq_locations_code_lower", func.lower(text("code")), unique=True),
        Index("ix_locations_priority", "priority", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    address: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StockLevel(TenantBase):
    """One SKU at one location: what is there, what is promised, what is kept back."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),
        Index("ix_stock_levels_location_id", "location_id"),
    )

    variant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("variants.id"), primary_key=True
    )
    location_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("locations.id"), primary_key=True
    )
    on_hand: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    reserved: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    safety_stock: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InventoryAdjustment(TenantBase):
    """One change of on_hand, append-only: the ledger whose sum on_hand always equals."""

    __tablename__ = "inventory_adjustments"
    __table_args__ = (
        CheckConstraint(f"kind IN {ADJUSTMENT_KINDS}", name="kind_known"),
        CheckConstraint("quantity <> 0 OR kind = 'count'", name="quantity_changes_stock"),
        ForeignKeyConstraint(
            ["variant_id", "location_id"], ["stock_levels.variant_id", "stock_levels.location_id"]
        ),
        Index("ix_inventory_adjustments_stock_created", "variant_id", "location_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    variant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    location_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(20))
    # Signed change of on_hand; a count records the difference to what was counted.
    quantity: Mapped[int] = mapped_column(Integer)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, server_default="")
    # The order, shipment or return that caused it, when one did.
    reference: Mapped[str | None] = mapped_column(String(100))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    # When the row was written (after any lock it waited for), so the ledger lists in commit order.
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )


class Reservation(TenantBase):
    """Stock promised to one order line at one location; `quantity` is what is still held."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        ForeignKeyConstraint(
            ["variant_id", "location_id"], ["stock_levels.variant_id", "stock_levels.location_id"]
        ),
        Index("ix_reservations_line_id", "line_id"),
        Index("ix_reservations_order_id", "order_id"),
        Index(
            "ix_reservations_stock_live", "variant_id", "location_id", postgresql_where=text("quantity > 0")
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("order_lines.id"))
    variant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    location_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    quantity: Mapped[int] = mapped_column(Integer)
    # Why this location was chosen, in words a merchant reads on the timeline.
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
