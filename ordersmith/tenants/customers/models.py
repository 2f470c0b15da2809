"""Tables of the customers context."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase


class Customer(TenantBase):
    """A buyer; once merged into another customer, `merged_into_id` points at the survivor."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("merged_into_id IS NULL OR merged_into_id <> id", name="not_merged_into_self"),
        # Only live customers claim their email: a merged duplicate keeps its address for history.
        Index(
            "uq_customers_email_live",
            "email",
            unique=True,
            postgresql_where=text("merged_into_id IS NULL"),
        ),
        # ...and it still names the survivor (customers/service.py, `_email_holder`).
        Index("ix_customers_email_merged", "email", postgresql_where=text("merged_into_id IS NOT NULL")),
        Index("ix_customers_created_at_id", "created_at", "id"),
        Index("ix_customers_merged_into_id", "merged_into_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Stored lower-cased and trimmed, so uniqueness and lookups ignore case.
    email: Mapped[str | None] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default=text("'{}'::varchar[]"))
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    merged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomerAddress(TenantBase):
    """A postal address of a customer; merging moves it to the surviving customer."""

    __tablename__ = "customer_addresses"
    __table_args__ = (
        CheckConstraint("country_code ~ '^[A-Z]{2}$'", name="country_iso3166"),
        Index("ix_customer_addresses_customer_id_created_at", "customer_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    label: Mapped[str | None] = mapped_column(String(100))
    recipient_name: Mapped[str] = mapped_column(String(200))
    line1: Mapped[str] = mapped_column(String(300))
    line2: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country_code: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomerNote(TenantBase):
    """A note about a customer, append-only; `original_customer_id` remembers where it was written."""

    __tablename__ = "customer_notes"
    __table_args__ = (Index("ix_customer_notes_customer_id_created_at", "customer_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    original_customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    body: Mapped[str] = mapped_column(Text)
    author_type: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
