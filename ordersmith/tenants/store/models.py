"""Tables of the store context."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, SmallInteger, String, false, func
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase


class StoreSettings(TenantBase):
    """The one row describing the merchant's store."""

    __tablename__ = "store_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("default_currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint("review_orders_over_amount > 0", name="review_threshold_positive"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    display_name: Mapped[str] = mapped_column(String(200))
    default_currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    # Orders in the default currency whose total is over this (minor units) are held for
    # review instead of confirmed; NULL holds nothing (`orders/review.py`).
    review_orders_over_amount: Mapped[int | None] = mapped_column(BigInteger)
    # A customer's first order (none placed before, merged duplicates counted) is held for
    # review too.
    review_first_orders: Mapped[bool] = mapped_column(Boolean, server_default=false())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
