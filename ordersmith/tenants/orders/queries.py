"""Finding orders: one order whole, or lists filtered the ways a team works them.

Every list is newest first on (created_at, id), and every filter has an index that
leads with it (see models.Order), so a page costs the same at 100 orders or 100,000.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.platform.times import range_errors
from ordersmith.tenants.catalog.models import Variant
from ordersmith.tenants.customers.errors import CustomerNotFoundError
from ordersmith.tenants.customers.service import customer_ids_for_history
from ordersmith.tenants.orders.models import (
    FULFILLMENT_STATUSES,
    ORDER_STATUSES,
    PAYMENT_STATUSES,
    Order,
    OrderLine,
)
from ordersmith.tenants.orders.views import OrderView, load_order


@dataclass(frozen=True)
class OrderFilter:
    """What a list of orders is narrowed to; None means any."""

    status: list[str] = field(default_factory=list)
    payment_status: str | None = None
    fulfillment_status: str | None = None
    customer_id: uuid.UUID | None = None
    # The SKU's code as it is now (a renamed SKU's orders are found under its new code).
    sku: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    tag: str | None = None
    channel: str | None = None
    has_open_hold: bool | None = None
    external_reference: str | None = None

    def check(self) -> None:
        errors = []
        for status in self.status:
            if status not in ORDER_STATUSES:
                errors.append(
                    FieldError("status", f"{status!r} is not a status; use {', '.join(ORDER_STATUSES)}")
                )
        if self.payment_status is not None and self.payment_status not in PAYMENT_STATUSES:
            errors.append(FieldError("payment_status", f"must be one of {', '.join(PAYMENT_STATUSES)}"))
        if self.fulfillment_status is not None and self.fulfillment_status not in FULFILLMENT_STATUSES:
            errors.append(
                FieldError("fulfillment_status", f"must be one of {', '.join(FULFILLMENT_STATUSES)}")
            )
        errors.extend(
            range_errors("created_after", self.created_after, "created_before", self.created_before)
        )
        for name, value in (("sku", self.sku), ("tag", self.tag), ("channel", self.channel)):
            if value is not None and not value.strip():
                errors.append(FieldError(name, "must not be empty; leave it out to match any"))
        if self.external_reference is not None and not 1 <= len(self.external_reference) <= 200:
            errors.append(FieldError("external_reference", "must be 1 to 200 characters"))
        if errors:
            raise ValidationFailedError("the order filters are invalid; see errors", errors=errors)


async def get_order(tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID) -> OrderView:
    return await load_order(session, order_id)


async def list_orders(
    tenant: TenantContext, session: AsyncSession, filters: OrderFilter, page: PageRequest
) -> Page[Order]:
    """Orders matching every filter given, newest first."""
    filters.check()
    query = select(Order)
    if filters.status:
        query = query.where(Order.status.in_(filters.status))
    if filters.payment_status is not None:
        query = query.where(Order.payment_status == filters.payment_status)
    if filters.fulfillment_status is not None:
        query = query.where(Order.fulfillment_status == filters.fulfillment_status)
    if filters.customer_id is not None:
        # A merged customer's history includes the orders of the duplicates merged into it.
        # A customer the store does not have has no orders: an empty list, as for an unknown SKU.
        try:
            history = await customer_ids_for_history(tenant, session, filters.customer_id)
        except CustomerNotFoundError:
            return Page([], None)
        query = query.where(Order.customer_id.in_(history))
    if filters.sku is not None:
        variant_id = await session.scalar(
            select(Variant.id).where(func.lower(Variant.sku_code) == filters.sku.strip().lower())
        )
        if variant_id is None:
            return Page([], None)
        query = query.where(
            exists().where(OrderLine.order_id == Order.id, OrderLine.variant_id == variant_id)
        )
    if filters.created_after is not None:
        query = query.where(Order.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Order.created_at < filters.created_before)
    if filters.tag is not None:
        # Folded by PostgreSQL as the stored keys are (`lower_tags`): Python's lower()
        # differs for some letters (İ, a final Σ). With the tag index's predicate, spelled
        # as in the index (a constant, not a parameter), so that PostgreSQL can prove the
        # partial index covers the filter.
        wanted = array([filters.tag.strip()], type_=Order.tag_keys.type.item_type)
        query = query.where(
            Order.tag_keys.contains(func.lower_tags(wanted, type_=Order.tag_keys.type)),
            func.cardinality(Order.tag_keys) > literal_column("0"),
        )
    if filters.external_reference is not None:
        query = query.where(Order.external_reference == filters.external_reference)
    if filters.channel is not None:
        # Channels are stored lower-case (rules.py): WEB finds the orders of web.
        query = query.where(Order.channel == filters.channel.strip().lower())
    if filters.has_open_hold is not None:
        query = query.where(
            Order.open_hold_count > 0 if filters.has_open_hold else Order.open_hold_count == 0
        )
    rows = list(await session.scalars(page.apply(query, Order.created_at, Order.id, newest_first=True)))
    return page.cut(rows, lambda row: (row.created_at, row.id))


async def backordered_units(tenant: TenantContext, session: AsyncSession, variant_id: uuid.UUID) -> int:
    """How many units of a SKU live orders wait for beyond the stock they could reserve."""
    total = await session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity_backordered), 0)).where(
            OrderLine.variant_id == variant_id, OrderLine.quantity_backordered > 0
        )
    )
    return int(total or 0)
