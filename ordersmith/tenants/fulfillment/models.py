"""Tables of the fulfillment context.

A fulfillment order is what one location is asked to ship for one order. What it still
has to ship is not copied onto it: it is the order's live reservations at that
location, so a cancellation or an edit that gives stock back is reflected at once.
Its lines keep what it shipped and what it rejected.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase

FULFILLMENT_ORDER_STATUSES = ("open", "in_progress", "on_hold", "closed", "cancelled")
SHIPMENT_STATUSES = ("shipped", "delivered")
# A location has at most one fulfillment order per order that is still being worked.
LIVE_WHERE = "status IN ('open', 'in_progress', 'on_hold')"


class FulfillmentOrder(TenantBase):
    """One location's part of an order: ship what the order holds there."""

    __tablename__ = "fulfillment_orders"
    __table_args__ = (
        CheckConstraint(f"status IN {FULFILLMENT_ORDER_STATUSES}", name="status_known"),
        Index("ix_fulfillment_orders_order_id", "order_id"),
        Index(
            "uq_fulfillment_orders_live_location",
            "order_id",
            "location_id",
            unique=True,
            postgresql_where=text(LIVE_WHERE),
        ),
        # A location's work queue: its fulfillment orders by status, oldest first.
        Index("ix_fulfillment_orders_location_status_created", "location_id", "status", "created_at", "id"),
        Index("ix_fulfillment_orders_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("locations.id"))
    status: Mapped[str] = mapped_column(String(20))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FulfillmentOrderLine(TenantBase):
    """An order line a fulfillment order was given: what it shipped and what it turned down."""

    __tablename__ = "fulfillment_order_lines"
    __table_args__ = (
        CheckConstraint("quantity_shipped >= 0 AND quantity_rejected >= 0", name="quantities_not_negative"),
        Index(
            "uq_fulfillment_order_lines_order_line",
            "fulfillment_order_id",
            "order_line_id",
            unique=True,
        ),
        Index("ix_fulfillment_order_lines_order_line_id", "order_line_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    fulfillment_order_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("fulfillment_orders.id")
    )
    order_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("order_lines.id"))
    quantity_shipped: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quantity_rejected: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Shipment(TenantBase):
    """Units that left one location together, with the carrier's tracking."""

    __tablename__ = "shipments"
    __table_args__ = (
        CheckConstraint(f"status IN {SHIPMENT_STATUSES}", name="status_known"),
        CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="delivered_when_dated"),
        Index("ix_shipments_order_id_created_at_id", "order_id", "created_at", "id"),
        Index("ix_shipments_fulfillment_order_id", "fulfillment_order_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    fulfillment_order_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("fulfillment_orders.id")
    )
    location_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("locations.id"))
    status: Mapped[str] = mapped_column(String(20))
    carrier: Mapped[str] = mapped_column(String(100))
    service: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    tracking_url: Mapped[str | None] = mapped_column(String(2000))
    shipped_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_type: Mapped[str] = mapped_column(String(20))
    created_by_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ShipmentLine(TenantBase):
    """How many units of one order line a shipment carried."""

    __tablename__ = "shipment_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_shipment_lines_shipment_id", "shipment_id"),
        Index("ix_shipment_lines_order_line_id", "order_line_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    shipment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("shipments.id"))
    order_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("order_lines.id"))
    quantity: Mapped[int] = mapped_column(Integer)


class ShipmentPackage(TenantBase):
    """One parcel of a shipment; weight in grams and dimensions in millimetres, when known."""

    __tablename__ = "shipment_packages"
    __table_args__ = (
        CheckConstraint(
            "(weight_grams IS NULL OR weight_grams > 0) AND (length_mm IS NULL OR length_mm > 0) "
            "AND (width_mm IS NULL OR width_mm > 0) AND (height_mm IS NULL OR height_mm > 0)",
            name="measures_positive",
        ),
        Index("ix_shipment_packages_shipment_id", "shipment_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    shipment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("shipments.id"))
    position: Mapped[int] = mapped_column(Integer)
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    length_mm: Mapped[int | None] = mapped_column(Integer)
    width_mm: Mapped[int | None] = mapped_column(Integer)
    height_mm: Mapped[int | None] = mapped_column(Integer)
