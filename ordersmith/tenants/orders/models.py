"""Tables of the orders context."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase

ORDER_STATUSES = ("draft", "placed", "confirmed", "completed", "cancelled", "archived")
PAYMENT_STATUSES = (
    "unpaid",
    "authorized",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
    "requires_action",
    "overpaid",
)
FULFILLMENT_STATUSES = ("unfulfilled", "partially_fulfilled", "fulfilled")
HOLD_TYPES = ("fraud_review", "payment", "address", "customer_request", "stock", "manual")


class Order(TenantBase):
    """An order; `payment_status` and `fulfillment_status` are kept in step with their ledgers."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(f"status IN {ORDER_STATUSES}", name="status_known"),
        CheckConstraint(f"payment_status IN {PAYMENT_STATUSES}", name="payment_status_known"),
        CheckConstraint(f"fulfillment_status IN {FULFILLMENT_STATUSES}", name="fulfillment_status_known"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint("subtotal_amount >= 0 AND total_amount >= 0", name="amounts_not_negative"),
        CheckConstraint("touch_count >= 0", name="touch_count_not_negative"),
        CheckConstraint(
            "(completed_at IS NULL) = (touches_at_completion IS NULL) AND touches_at_completion >= 0",
            name="touches_at_completion_when_completed",
        ),
        # Every list is newest first and each filter has an index leading with it.
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
        Index("ix_orders_payment_status_created_at_id", "payment_status", "created_at", "id"),
        Index("ix_orders_fulfillment_status_created_at_id", "fulfillment_status", "created_at", "id"),
        Index("ix_orders_customer_id_created_at_id", "customer_id", "created_at", "id"),
        Index("ix_orders_channel_created_at_id", "channel", "created_at", "id"),
        # Partial: most orders have no reference and no tags, and an entry nobody can find
        # by is a write for nothing. The tag filter repeats the predicate (queries.py).
        Index(
            "ix_orders_external_reference",
            "external_reference",
            postgresql_where=text("external_reference IS NOT NULL"),
        ),
        Index(
            "ix_orders_tag_keys",
            "tag_keys",
            postgresql_using="gin",
            postgresql_where=text("cardinality(tag_keys) > 0"),
        ),
        Index(
            "ix_orders_open_holds_created_at_id",
            "created_at",
            "id",
            postgresql_where=text("open_hold_count > 0"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # The number people quote on the phone: 1, 2, 3… per store.
    number: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    payment_status: Mapped[str] = mapped_column(String(20), server_default="unpaid")
    fulfillment_status: Mapped[str] = mapped_column(String(20), server_default="unfulfilled")
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_amount: Mapped[int] = mapped_column(BigInteger)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    channel: Mapped[str] = mapped_column(String(40))
    external_reference: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default=text("'{}'"))
    # The tags lower-cased, made by the database (tenant migration 0012): what the tag filter matches.
    tag_keys: Mapped[list[str]] = mapped_column(
        ARRAY(String(50)), Computed("lower_tags(tags)", persisted=True)
    )
    open_hold_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    touch_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # touch_count as the order completed (NULL before): what the touchless rate counts, so
    # archiving a completed order or taking a return on it does not make it "touched".
    touches_at_completion: Mapped[int | None] = mapped_column(Integer)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    placed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    archived_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped by every change; an edit previewed at one version commits only at that version.
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderLine(TenantBase):
    """One SKU on an order and where each unit of it stands.

    The buckets always add up: ordered - cancelled = pending + allocated + backordered +
    shipped, where `pending` holds a draft's units, not reserved until the draft is placed.
    A partial cancellation is a quantity moving between buckets, never a deleted line.
    """

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity_ordered > 0", name="quantity_ordered_positive"),
        CheckConstraint(
            "quantity_cancelled >= 0 AND quantity_pending >= 0 AND quantity_allocated >= 0 "
            "AND quantity_backordered >= 0 AND quantity_shipped >= 0 AND quantity_returned >= 0",
            name="buckets_not_negative",
        ),
        CheckConstraint(
            "quantity_ordered - quantity_cancelled "
            "= quantity_pending + quantity_allocated + quantity_backordered + quantity_shipped",
            name="buckets_add_up",
        ),
        CheckConstraint("quantity_returned <= quantity_shipped", name="returned_within_shipped"),
        CheckConstraint("unit_price_amount >= 0", name="unit_price_not_negative"),
        Index("uq_order_lines_order_id_line_number", "order_id", "line_number", unique=True),
        Index("ix_order_lines_variant_id_order_id", "variant_id", "order_id"),
        # Only lines waiting for stock: what a SKU's backordered total sums (queries.py).
        Index(
            "ix_order_lines_backordered_variant_id",
            "variant_id",
            postgresql_where=text("quantity_backordered > 0"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    line_number: Mapped[int] = mapped_column(Integer)
    variant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("variants.id"))
    # Copied at placement: the order keeps what was sold even if the catalog changes.
    sku_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    unit_price_amount: Mapped[int] = mapped_column(BigInteger)
    quantity_ordered: Mapped[int] = mapped_column(Integer)
    quantity_cancelled: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # A draft's units: not reserved, not backordered, until the draft is placed.
    quantity_pending: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quantity_allocated: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quantity_backordered: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quantity_shipped: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quantity_returned: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderEvent(TenantBase):
    """One entry of an order's timeline: what changed, from what to what, and who did it."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id_created_at_id", "order_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(40))
    # {"field": {"old": …, "new": …}, …} plus free details such as reservation reasons.
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    # A change made by a person (a user or staff), as opposed to an API key or automation.
    is_touch: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderHold(TenantBase):
    """A reason an order must not be fulfilled yet; open until released."""

    __tablename__ = "order_holds"
    __table_args__ = (
        CheckConstraint(f"type IN {HOLD_TYPES}", name="type_known"),
        Index("ix_order_holds_order_id_open", "order_id", postgresql_where=text("released_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    type: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    # The least role that may release it (owner > admin > manager > agent).
    release_role: Mapped[str] = mapped_column(String(20))
    placed_by_type: Mapped[str] = mapped_column(String(20))
    placed_by_id: Mapped[str | None] = mapped_column(String(100))
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    released_by_type: Mapped[str | None] = mapped_column(String(20))
    released_by_id: Mapped[str | None] = mapped_column(String(100))
    release_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
