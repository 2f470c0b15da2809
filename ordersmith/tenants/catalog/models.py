"""Tables of the catalog context."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
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

# The largest amount a JSON client can hold exactly (2^53).
MAX_AMOUNT = 2**53


class Product(TenantBase):
    """Something the merchant sells; what is actually stocked and priced are its variants."""

    __tablename__ = "products"
    __table_args__ = (Index("ix_products_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, server_default="")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Variant(TenantBase):
    """One SKU: a code unique in the store, a price in minor units, weight and barcode."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint(f"price_amount >= 0 AND price_amount <= {MAX_AMOUNT}", name="price_amount_range"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint("weight_grams IS NULL OR weight_grams >= 0", name="weight_not_negative"),
        # Codes are unique ignoring case, so "TSHIRT-1" and "tshirt-1" cannot both exist.
        Index("uq_variants_sku_code_lower", func.lower(text("sku_code")), unique=True),
        # Prefix search on code and barcode: left-anchored LIKE can use these.
        Index(
            "ix_variants_sku_code_pattern",
            func.lower(text("sku_code")),
            postgresql_ops={"lower(sku_code)": "text_pattern_ops"},
        ),
        Index(
            "ix_variants_barcode_pattern",
            func.lower(text("barcode")),
            postgresql_ops={"lower(barcode)": "text_pattern_ops"},
        ),
        Index("ix_variants_product_id_position", "product_id", "position"),
        Index("ix_variants_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("products.id"))
    # Display order within the product (the merchant's S, M, L, not the alphabet's).
    position: Mapped[int] = mapped_column(Integer)
    sku_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    barcode: Mapped[str | None] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Orders may take more than is available only when the merchant allows it for this SKU.
    allow_backorder: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
