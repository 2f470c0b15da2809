"""Tables of the returns context: returns and their lines, dispositions, resolutions, store credit."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
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
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase

RETURN_STATUSES = ("requested", "approved", "declined", "in_transit", "received", "closed")
# Why the customer sends a unit back.
REASON_CODES = (
    "damaged",  # arrived broken
    "defective",  # does not work
    "wrong_item",  # not what was ordered
    "not_as_described",  # differs from the listing
    "size_fit",  # wrong size or fit
    "changed_mind",  # no longer wanted
    "arrived_late",  # came too late to be of use
    "other",  # see the line's note
)
# What became of a unit when the return was received.
DISPOSITIONS = (
    "restock",  # sellable: back on a location's shelf, through the inventory ledger
    "damaged",  # received, not sellable
    "missing",  # announced but not in the parcel
    "inspect",  # received, waiting for someone to decide
)
# How the customer was made whole; a return may have several.
RESOLUTION_KINDS = ("refund", "store_credit", "exchange")


class Return(TenantBase):
    """A return merchandise authorization for units of one order."""

    __tablename__ = "returns"
    __table_args__ = (
        CheckConstraint(f"status IN {RETURN_STATUSES}", name="status_known"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint(
            "refunded_amount >= 0 AND store_credit_amount >= 0", name="resolved_amounts_not_negative"
        ),
        Index("ix_returns_order_id_created_at_id", "order_id", "created_at", "id"),
        Index("ix_returns_customer_id_created_at_id", "customer_id", "created_at", "id"),
        Index("ix_returns_status_created_at_id", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # The RMA number people quote: 1, 2, 3… per store.
    number: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(Text, server_default="")
    decline_reason: Mapped[str | None] = mapped_column(Text)
    # How the parcel comes back, once the customer has sent it.
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    tracking_url: Mapped[str | None] = mapped_column(String(2000))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    store_credit_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    exchange_order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    requested_by_type: Mapped[str] = mapped_column(String(20))
    requested_by_id: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    declined_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    in_transit_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReturnLine(TenantBase):
    """Units of one order line coming back, and why."""

    __tablename__ = "return_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(f"reason_code IN {REASON_CODES}", name="reason_code_known"),
        Index("ix_return_lines_return_id", "return_id"),
        Index("ix_return_lines_order_line_id", "order_line_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    return_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("returns.id"))
    order_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("order_lines.id"))
    line_number: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    reason_code: Mapped[str] = mapped_column(String(30))
    note: Mapped[str] = mapped_column(Text, server_default="")


class ReturnDisposition(TenantBase):
    """What became of some units of a return line on receipt; restocked units name their location."""

    __tablename__ = "return_dispositions"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(f"disposition IN {DISPOSITIONS}", name="disposition_known"),
        CheckConstraint(
            "(disposition = 'restock') = (location_id IS NOT NULL)", name="restock_names_location"
        ),
        Index("ix_return_dispositions_return_id", "return_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    return_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("returns.id"))
    return_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("return_lines.id"))
    disposition: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int] = mapped_column(Integer)
    location_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("locations.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReturnResolution(TenantBase):
    """One way the customer was made whole for a return: a refund, store credit or an exchange."""

    __tablename__ = "return_resolutions"
    __table_args__ = (
        CheckConstraint(f"kind IN {RESOLUTION_KINDS}", name="kind_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("(kind = 'exchange') = (exchange_order_id IS NOT NULL)", name="exchange_names_order"),
        Index("ix_return_resolutions_return_id", "return_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    return_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("returns.id"))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    # The payments ledger's transactions that moved the money, for a refund.
    payment_transaction_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'::uuid[]")
    )
    exchange_order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StoreCreditEntry(TenantBase):
    """One movement of a customer's store credit, append-only: the balance is the sum."""

    __tablename__ = "store_credit_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        Index("ix_store_credit_entries_customer_id_created_at_id", "customer_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    # Positive when credit is given, negative when it is spent.
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    return_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("returns.id"))
    order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("orders.id"))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
