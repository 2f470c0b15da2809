"""Placing an order: one transaction that reserves stock and writes the order, or fails whole.

The steps, all in the caller's tenant transaction, in three statements:
1. check the request (422 naming each bad field);
2. read the SKUs and the customer and lock the SKUs' stock rows, in (variant, location)
   order like every stock change (ADR 0006), in one statement;
3. sum the demand per SKU (two lines of one SKU count together) and plan where each
   unit comes from (`inventory.reservations.plan_reservations`), under those locks: the
   plan never promises what the locked rows do not hold;
4. in one prebuilt statement, move the reserved totals and write the order, its lines,
   where each line's units are held and why, the holds, the timeline and the outbox
   events (`placement_write`).
Confirmation is automatic unless the order arrives with a hold or one of the store's
review rules holds it (`review.py`, read in step 2's statement); the rules' hold is
written beside the order's own, unless that is a fraud review already. Placement is
the hot path, so it uses Core statements built once at import (only parameters change
per order) and builds its response from the rows it wrote, reading nothing back.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Select, any_, bindparam, case, column, false, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Driver, TenantContext, driver_of
from ordersmith.platform.driver_sql import DriverStatement
from ordersmith.platform.errors import FieldError
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.catalog.models import Product, Variant
from ordersmith.tenants.customers.models import Customer
from ordersmith.tenants.inventory.models import Location, StockLevel
from ordersmith.tenants.inventory.reservations import Demand, StockRow, plan_reservations
from ordersmith.tenants.orders import review, timeline
from ordersmith.tenants.orders.placement_write import WRITE, Written, table_of
from ordersmith.tenants.orders.rules import OrderRequest, check_order, check_total, raise_if
from ordersmith.tenants.orders.views import OrderView
from ordersmith.tenants.store.models import StoreSettings

# Core tables: placement is the hot path, and Core statements skip the ORM's bookkeeping.
_VARIANTS = table_of(Variant)
_PRODUCTS = table_of(Product)
_CUSTOMERS = table_of(Customer)
_STOCK = table_of(StockLevel)
_LOCATIONS = table_of(Location)
_STORE = table_of(StoreSettings)


@dataclass(frozen=True)
class Sku:
    """A catalog SKU as an order line needs it (placement and edits)."""

    id: uuid.UUID
    code: str
    name: str
    price_amount: int
    currency: str
    is_active: bool
    allow_backorder: bool


# What a `Sku` is made of, in its fields' order. A SKU is for sale while it and its
# product are both active: switching a product off stops all its variants. Every
# statement selecting these joins the variant's product (`_WITH_PRODUCT`), by its key.
_SKU_COLUMNS = (
    _VARIANTS.c.id,
    _VARIANTS.c.sku_code,
    _VARIANTS.c.name,
    _VARIANTS.c.price_amount,
    _VARIANTS.c.currency,
    _VARIANTS.c.is_active & _PRODUCTS.c.is_active,
    _VARIANTS.c.allow_backorder,
)
_WITH_PRODUCT = _VARIANTS.join(_PRODUCTS, _PRODUCTS.c.id == _VARIANTS.c.product_id)
# The SKUs whose lower-case codes are in `codes`.
_SKUS_BY_CODE = (
    select(*_SKU_COLUMNS)
    .select_from(_WITH_PRODUCT)
    .where(
        func.lower(_VARIANTS.c.sku_code) == any_(bindparam("codes", type_=ARRAY(_VARIANTS.c.sku_code.type)))
    )
)
_SKUS_BY_CODE_ON_DRIVER = DriverStatement(_SKUS_BY_CODE)


def _live_customer() -> Any:
    """The live customer the order's `customer_id` is (or was merged into), by key."""
    return (
        select(func.coalesce(_CUSTOMERS.c.merged_into_id, _CUSTOMERS.c.id))
        .where(_CUSTOMERS.c.id == bindparam("customer_id", type_=_CUSTOMERS.c.id.type))
        .scalar_subquery()
    )


def _is_first_order(first_orders: Any) -> Any:
    """Whether this is the live customer's first order; looked into only when the store asks (CASE)."""
    return case((first_orders, ~review.has_ordered(_live_customer()).scalar_subquery()), else_=false())


# The live customer, the store's review rules and whether they apply to a first order.
_LIVE_CUSTOMER_AND_RULE = DriverStatement(
    select(
        _live_customer(),
        _STORE.c.review_orders_over_amount,
        _STORE.c.default_currency,
        _STORE.c.review_first_orders,
        _is_first_order(_STORE.c.review_first_orders),
    ).where(_STORE.c.id == 1)
)


def _lowered(codes: Sequence[str]) -> list[str]:
    return sorted({code.lower() for code in codes})


async def skus_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, Sku]:
    """The SKUs with these codes, matched case-insensitively, keyed by lower-case code."""
    rows = await session.execute(_SKUS_BY_CODE, {"codes": _lowered(codes)})
    return {row.sku_code.lower(): Sku(*row) for row in rows}


async def skus_by_id(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Sku]:
    """The SKUs with these ids, whatever their codes are now, keyed by id."""
    rows = await session.execute(
        select(*_SKU_COLUMNS).select_from(_WITH_PRODUCT).where(_VARIANTS.c.id.in_(sorted(set(ids))))
    )
    return {row[0]: Sku(*row) for row in rows}


def priced_lines(
    request: OrderRequest, skus: dict[str, Sku], currency: str, errors: list[FieldError]
) -> list[tuple[Sku, int, int]]:
    """(sku, quantity, unit price) per line, with 422s for unknown, inactive or mispriced SKUs."""
    priced = []
    for index, line in enumerate(request.lines):
        sku = skus.get(line.sku.lower())
        if sku is None:
            errors.append(FieldError(f"lines[{index}].sku", f"no SKU {line.sku!r} in this store"))
            continue
        if not sku.is_active:
            errors.append(FieldError(f"lines[{index}].sku", f"{sku.code} is not for sale (inactive)"))
            continue
        if line.unit_price_amount is None and sku.currency != currency:
            errors.append(
                FieldError(
                    f"lines[{index}].sku",
                    f"{sku.code} is priced in {sku.currency} but the order is in {currency}; "
                    f"give unit_price_amount in {currency}",
                )
            )
            continue
        price = sku.price_amount if line.unit_price_amount is None else line.unit_price_amount
        check_total(f"lines[{index}].unit_price_amount", price * line.quantity, errors)
        priced.append((sku, line.quantity, price))
    return priced


def demands_of(priced: list[tuple[Sku, int, int]]) -> list[Demand]:
    total: dict[uuid.UUID, int] = defaultdict(int)
    by_id = {}
    for sku, quantity, _ in priced:
        total[sku.id] += quantity
        by_id[sku.id] = sku
    return [
        Demand(sku_id, by_id[sku_id].code, qty, by_id[sku_id].allow_backorder)
        for sku_id, qty in total.items()
    ]


def _read_and_lock_statement() -> Select[Any]:
    customer = _live_customer()
    # By its key: read by a sequential scan, these subqueries kept every placement that
    # had waited for a locked stock row busy (active, not waiting) for about 0.2 s once
    # the row was free: the 200-order burst of test_order_concurrency.py took 38 s, not 3.
    review_threshold = select(_STORE.c.review_orders_over_amount).where(_STORE.c.id == 1).scalar_subquery()
    store_currency = select(_STORE.c.default_currency).where(_STORE.c.id == 1).scalar_subquery()
    first_orders = select(_STORE.c.review_first_orders).where(_STORE.c.id == 1).scalar_subquery()
    codes = bindparam("codes", type_=ARRAY(_VARIANTS.c.sku_code.type))
    wanted = (
        func.unnest(codes)
        .table_valued(column("code", _VARIANTS.c.sku_code.type), name="wanted")
        .render_derived()
    )
    return (
        select(
            *_SKU_COLUMNS,
            _STOCK.c.location_id,
            _LOCATIONS.c.code,
            _LOCATIONS.c.priority,
            # In bigint, as when locking stock elsewhere (inventory/reservations.py).
            _STOCK.c.on_hand.cast(BigInteger) - _STOCK.c.reserved - _STOCK.c.safety_stock,
            customer,
            review_threshold,
            store_currency,
            first_orders,
            _is_first_order(first_orders),
        )
        # Driven by the codes asked for, so that even the generic plan (ADR 0010) walks
        # the indexes: `lower(sku_code) = ANY(...)` planned without its array scanned
        # whole tables and hashed them.
        .select_from(
            wanted.join(_VARIANTS, func.lower(_VARIANTS.c.sku_code) == wanted.c.code)
            .join(_PRODUCTS, _PRODUCTS.c.id == _VARIANTS.c.product_id)
            .join(_STOCK, _STOCK.c.variant_id == _VARIANTS.c.id)
            .join(_LOCATIONS, (_LOCATIONS.c.id == _STOCK.c.location_id) & _LOCATIONS.c.is_active)
        )
        .order_by(_STOCK.c.variant_id, _STOCK.c.location_id)
        .with_for_update(of=_STOCK)
    )


# Built once: the hot path only binds parameters (see `_write_statement`).
_READ_AND_LOCK = DriverStatement(_read_and_lock_statement())


@dataclass(frozen=True)
class _Read:
    skus: dict[str, Sku]
    stock: list[StockRow]
    customer_id: uuid.UUID | None
    rules: review.ReviewRule
    is_first_order: bool


async def _read_and_lock(connection: Driver, schema: str, request: OrderRequest) -> _Read:
    """The SKUs, their stock rows at active locations (locked), the live customer id, the review rules.

    One round trip in the common case: the stock rows are locked in (variant, location)
    order like every other stock change (ADR 0006), with the customer and the store's
    rules (and, when it reviews first orders, whether this is one) as uncorrelated
    subqueries. A SKU with no stock row at an active location, and the customer and the
    rules when no row came back at all, are looked up on their own.
    """
    lowered = _lowered([line.sku for line in request.lines])
    rows = await _READ_AND_LOCK.fetch(
        connection, schema, {"codes": lowered, "customer_id": request.customer_id}
    )
    skus = {row[1].lower(): Sku(*row[:7]) for row in rows}
    stock = [StockRow(row[0], row[7], row[8], row[9], row[10]) for row in rows]
    missing = [code for code in lowered if code not in skus]
    if missing:
        found = await _SKUS_BY_CODE_ON_DRIVER.fetch(connection, schema, {"codes": missing})
        skus.update((row[1].lower(), Sku(*row)) for row in found)
    if rows:
        customer_id, threshold, store_currency, first_orders, first = rows[0][11:16]
    else:
        # The store's one settings row is always there: so is this row.
        row = await _LIVE_CUSTOMER_AND_RULE.fetchrow(connection, schema, {"customer_id": request.customer_id})
        assert row is not None
        customer_id, threshold, store_currency, first_orders, first = row[0:5]
    return _Read(skus, stock, customer_id, review.ReviewRule(threshold, store_currency, first_orders), first)


async def place_order(
    tenant: TenantContext, session: AsyncSession, request: OrderRequest, *, actor: Actor
) -> OrderView:
    """Reserve stock and write the order in the session's transaction, or raise and write nothing."""
    # Placement's statements run on the driver connection: whatever the session holds goes first.
    await session.flush()
    view = await place(tenant, await driver_of(session), request, actor=actor)
    # The order was written with its touch: later entries of this request add none.
    timeline.note_touched(session, view.order.id, actor)
    return view


async def place(
    tenant: TenantContext, connection: Driver, request: OrderRequest, *, actor: Actor
) -> OrderView:
    """Reserve stock and write the order in the connection's tenant transaction, or raise and write nothing.

    Two statements (driver_sql.py): read and lock, then (in Python) the checks and the
    plan, then one statement that moves the reserved totals and writes the order, its
    lines, their reservations, the holds, the timeline and the outbox events.
    """
    check_order(request)
    read = await _read_and_lock(connection, tenant.schema_name, request)
    skus, stock, customer_id = read.skus, read.stock, read.customer_id
    errors: list[FieldError] = []
    if customer_id is None:
        errors.append(FieldError("customer_id", "no such customer in this store; create it first"))
    # Without a currency, the order is in the first known SKU's currency.
    known = [skus[line.sku.lower()] for line in request.lines if line.sku.lower() in skus]
    currency = request.currency or (known[0].currency if known else "")
    priced = priced_lines(request, skus, currency, errors)
    subtotal = sum(price * quantity for _, quantity, price in priced)
    check_total("lines", subtotal, errors)
    raise_if(errors)
    assert customer_id is not None

    demands = sorted(demands_of(priced), key=lambda demand: demand.variant_id)
    plan = plan_reservations(demands, stock)
    # The store's review rules hold the order beside any hold of its own (review.py).
    rule_hold = None
    if not review.is_under_review([request.hold.type] if request.hold else []):
        rule_hold = read.rules.hold_for(currency, subtotal, is_first_order=read.is_first_order)
    written = Written.of(tenant, request, actor, customer_id, currency, subtotal, priced, plan, rule_hold)
    number, created_at = await WRITE.fetchrow(connection, tenant.schema_name, written.parameters())
    return written.view(number, created_at)
